"""What every venue module shares: instruments, the trade-column accumulator, the venue spec and
the ``VenueProtocol`` interface (client side: parse, subscribe, ping, REST; replay side: encode,
answer, serve REST).

Parsers are pure: ``parser(frame, recv_ns, out)`` appends the frame's trades to ``out`` and
returns how many; a frame that carries no trades (ack, pong) returns 0; anything unusable raises
``FrameError`` with a reason and appends nothing, so the caller can dead-letter it and carry on.
That includes frames the decoder cannot read at all (``malformed``). Impossible values (a time
before 2009, a price <= 0, a broken symbol) are not checked per trade: the feed validates each
drained batch at once (vectorised, ``TradeBatch.invalid_mask``) and dead-letters a bad row with the
raw frame it came from; the per-trade check cost a fifth of a parser's time for rules the batch
check repeats anyway. REST replies keep ``check_trade_values`` (a bad row fails the request).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from ..errors import FrameError
from ..models import MAX_FUTURE_NS, MIN_TS_NS, NO_SEQUENCE, Trade, TradeBatch, constant_column, symbol_problem

Frame = bytes | str

# Quote assets tried (longest first) when a venue's concatenated symbol is not in its symbol list.
QUOTE_SUFFIXES = (
    "FDUSD",
    "USDT",
    "USDC",
    "TUSD",
    "BUSD",
    "USDE",
    "USD",
    "EUR",
    "TRY",
    "BRL",
    "KRW",
    "BTC",
    "ETH",
    "BNB",
)
# Venue-specific asset codes mapped to the common name.
_ASSET_ALIASES = {"XBT": "BTC"}


def asset(code: str) -> str:
    """Upper-case asset code with venue aliases resolved (KuCoin's XBT is BTC)."""
    upper = code.upper()
    return _ASSET_ALIASES.get(upper, upper)


def split_concatenated(venue_symbol: str) -> tuple[str, str] | None:
    """``SOMIUSDT`` → ``("SOMI", "USDT")`` by known quote suffix; None when no suffix fits."""
    upper = venue_symbol.upper()
    for quote in QUOTE_SUFFIXES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return asset(upper[: -len(quote)]), quote
    return None


def _ratio(multiplier: str | float | Decimal) -> tuple[int, int]:
    num, den = Decimal(str(multiplier)).as_integer_ratio()
    if num <= 0:
        raise ValueError(f"contract multiplier must be > 0, got {multiplier!r}")
    return num, den


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable market as a venue names it, and how to turn its numbers into base units.

    ``size_num/size_den`` is the contract size as an exact ratio (0.0001 → 1/10000), so
    ``contracts * num / den`` is one correctly rounded division instead of a float product.
    """

    venue_symbol: str
    base: str
    quote: str
    size_num: int = 1
    size_den: int = 1
    price_scale: int = 0
    qty_scale: int = 0

    @property
    def symbol(self) -> str:
        return f"{self.base}-{self.quote}"

    @property
    def multiplier(self) -> float:
        return self.size_num / self.size_den

    def to_base(self, contracts: float) -> float:
        """Base-unit quantity of ``contracts`` (identity for spot)."""
        if self.size_num == self.size_den:
            return float(contracts)
        return contracts * self.size_num / self.size_den

    def to_contracts(self, base_quantity: float) -> float:
        """Inverse of ``to_base`` (used by the replay encoders)."""
        return base_quantity * self.size_den / self.size_num

    @classmethod
    def make(
        cls,
        venue_symbol: str,
        base: str,
        quote: str,
        *,
        multiplier: str | float | Decimal = 1,
        price_scale: int = 0,
        qty_scale: int = 0,
    ) -> Instrument:
        num, den = _ratio(multiplier)
        return cls(venue_symbol, asset(base), asset(quote), num, den, price_scale, qty_scale)


class Instruments(Mapping[str, Instrument]):
    """A venue's instruments by venue symbol (what its frames carry)."""

    def __init__(self, items: Iterable[Instrument] = ()) -> None:
        self._by_venue = {inst.venue_symbol: inst for inst in items}

    def __getitem__(self, venue_symbol: str) -> Instrument:
        return self._by_venue[venue_symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_venue)

    def __len__(self) -> int:
        return len(self._by_venue)

    def add(self, inst: Instrument) -> None:
        self._by_venue[inst.venue_symbol] = inst

    def symbol_of(self, venue_symbol: str) -> str:
        """Normalised ``BASE-QUOTE`` for a spot-style symbol; falls back to the quote-suffix split."""
        inst = self._by_venue.get(venue_symbol)
        if inst is not None:
            return inst.symbol
        return _fallback_symbol(venue_symbol)


_FALLBACK_CACHE: dict[str, str] = {}


def _fallback_symbol(venue_symbol: str) -> str:
    cached = _FALLBACK_CACHE.get(venue_symbol)
    if cached is not None:
        return cached
    for sep in ("-", "_", "/"):
        if sep in venue_symbol:
            base, _, quote = venue_symbol.partition(sep)
            result = f"{asset(base)}-{asset(quote.split(sep)[0])}"
            break
    else:
        pair = split_concatenated(venue_symbol)
        result = f"{pair[0]}-{pair[1]}" if pair else venue_symbol.upper()
    if len(_FALLBACK_CACHE) < 100_000:
        _FALLBACK_CACHE[venue_symbol] = result
    return result


class TradeColumns:
    """Normalised trades as growing Python lists; parsers append, the connector drains.

    A parser computes every value of a frame before appending, so a bad frame leaves no partial
    rows behind.
    """

    __slots__ = ("price", "quantity", "recv_ns", "sequence", "side", "symbol", "trade_id", "ts_ns")

    def __init__(self) -> None:
        self.ts_ns: list[int] = []
        self.symbol: list[str] = []
        self.price: list[float] = []
        self.quantity: list[float] = []
        self.side: list[str] = []
        self.trade_id: list[str] = []
        self.sequence: list[int] = []
        self.recv_ns: list[int] = []

    def __len__(self) -> int:
        return len(self.ts_ns)

    def add(
        self,
        ts_ns: int,
        symbol: str,
        price: float,
        quantity: float,
        side: str,
        trade_id: str,
        recv_ns: int,
        sequence: int = NO_SEQUENCE,
    ) -> None:
        self.ts_ns.append(ts_ns)
        self.symbol.append(symbol)
        self.price.append(price)
        self.quantity.append(quantity)
        self.side.append(side)
        self.trade_id.append(trade_id)
        self.sequence.append(sequence)
        self.recv_ns.append(recv_ns)

    def drain(self, exchange: str, market_type: str) -> TradeBatch:
        """Everything collected so far as a ``TradeBatch``; the accumulator starts empty again."""
        n = len(self.ts_ns)
        batch = TradeBatch(
            ts_ns=_int64(self.ts_ns, 0),
            exchange=constant_column(exchange, n),
            market_type=constant_column(market_type, n),
            symbol=_objects(self.symbol),
            price=_float64(self.price),
            quantity=_float64(self.quantity),
            side=_objects(self.side),
            trade_id=_objects(self.trade_id),
            sequence_number=_int64(self.sequence, NO_SEQUENCE),
            recv_ns=_int64(self.recv_ns, 0),
        )
        self.clear()
        return batch

    def clear(self) -> None:
        for name in self.__slots__:
            getattr(self, name).clear()

    def rows(self) -> list[dict[str, object]]:
        """Row dicts (tests and dead-letter context; not a hot path)."""
        return [
            {
                "symbol": self.symbol[i],
                "price": self.price[i],
                "quantity": self.quantity[i],
                "side": self.side[i],
                "trade_id": self.trade_id[i],
                "ts_ns": self.ts_ns[i],
            }
            for i in range(len(self))
        ]


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _int64(values: list[int], out_of_range: int) -> npt.NDArray[np.int64]:
    """int64 column; a value a venue sent beyond int64 becomes ``out_of_range`` (0 fails validation)."""
    try:
        return np.array(values, dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        return np.array(
            [v if isinstance(v, int) and _I64_MIN <= v <= _I64_MAX else out_of_range for v in values], dtype=np.int64
        )


def _float64(values: list[float]) -> npt.NDArray[np.float64]:
    """float64 column; anything that is not a finite-able number becomes NaN (fails validation)."""
    try:
        return np.array(values, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        return np.array([_as_float(v) for v in values], dtype=np.float64)


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return float("nan")


def _objects(values: list[str]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


class FrameParser(Protocol):
    def __call__(self, frame: Frame, recv_ns: int, out: TradeColumns) -> int: ...


class RestClient(Protocol):
    """What venue modules need from HTTP (implemented over aiohttp in ``rest.py``)."""

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes: ...

    async def post(self, url: str, body: bytes = b"") -> bytes: ...


@dataclass(frozen=True)
class VenueSpec:
    """A connector's endpoints and the limits the shared connection layer must respect."""

    connector: str
    exchange: str
    market_type: str
    ws_url: str
    rest_url: str
    topics_per_connection: int
    topics_per_message: int
    subscribe_pause: float  # seconds between subscribe messages (venue message-rate limits)
    ping_interval: float  # seconds between our heartbeats
    app_ping: bool  # True: venue-level ping message; False: WebSocket ping frames
    watchdog_timeout: float  # no frame and no pong for this long → reconnect
    max_lifetime: float | None = None  # venue cuts connections after this; rotate before it
    notes: str = ""

    def with_base_url(self, base_url: str) -> VenueSpec:
        """Endpoints under ``base_url`` (the replay server): ``<base>/<connector>/ws`` and ``<base>/<connector>``."""
        base = base_url.rstrip("/")
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        return replace(self, ws_url=f"{ws_base}/{self.connector}/ws", rest_url=f"{base}/{self.connector}")


@dataclass(frozen=True)
class Answer:
    """The replay server's reaction to one client frame."""

    replies: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)  # venue symbols to start streaming
    unsubscribe: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestReply:
    """A replay REST response."""

    body: bytes
    status: int = 200


class RecentTrades(Protocol):
    def __call__(self, venue_symbol: str) -> Sequence[Trade]: ...


class VenueProtocol(ABC):
    """One connector's protocol. Subclasses are stateless apart from request ids."""

    supports_backfill = False
    # The most trades one recent-trades request returns. A shorter reply is every trade the venue
    # has of the instrument (one listed moments ago), so a back-fill from it reaches any gap start.
    recent_page = 0
    # True when a subscribe request replaces the connection's whole set (Upbit, Bithumb).
    replaces_subscriptions = False
    # True when trade ids are consecutive integers per instrument (Binance ``t`` / ``a``): a jump in
    # them is trades missed on a live socket (a stall shorter than the watchdog), recorded as a gap.
    contiguous_ids = False

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self._next_id = 0

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ---- client side -------------------------------------------------------------------
    @abstractmethod
    def make_parser(self, instruments: Instruments) -> FrameParser:
        """A pure frame parser bound to the current instrument list."""

    @abstractmethod
    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Subscribe requests for ``instruments``, chunked to ``spec.topics_per_message``."""

    def ping_message(self) -> str | None:
        """The venue-level heartbeat to send every ``spec.ping_interval`` (None: ping frames)."""
        return None

    async def connect_url(self, rest: RestClient) -> str:
        """Where to connect (KuCoin asks a REST endpoint for a token URL first)."""
        return self.spec.ws_url

    @abstractmethod
    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        """The venue's tradable instruments from its REST symbol list."""

    async def fetch_recent_trades(self, rest: RestClient, inst: Instrument, out: TradeColumns, recv_ns: int) -> int:
        """Append the venue's most recent trades of ``inst`` to ``out`` (backfill after a gap)."""
        raise NotImplementedError(f"{self.spec.connector} has no recent-trades endpoint")

    # ---- replay side -------------------------------------------------------------------
    @abstractmethod
    def instrument_for(self, base: str, quote: str) -> Instrument:
        """The instrument this venue would list for ``base``/``quote`` (replay universes)."""

    @abstractmethod
    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        """Frames in the venue's wire format carrying ``trades`` (all of ``inst``)."""

    @abstractmethod
    def answer(self, frame: Frame) -> Answer:
        """How the venue answers a client frame (subscribe ack, pong, error)."""

    def greeting(self) -> list[str]:
        """Frames the venue sends right after the handshake (KuCoin's welcome)."""
        return []

    @abstractmethod
    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        """A REST endpoint of the venue (symbol list, recent trades, token); None for unknown paths."""


def sequence_or_none(value: int | str | None) -> int:
    """The venue's sequence number as int64, or NO_SEQUENCE when absent, non-numeric or out of range."""
    if isinstance(value, str):
        value = int(value) if value.isascii() and value.isdigit() else None
    if value is None or not NO_SEQUENCE < value <= _I64_MAX:
        return NO_SEQUENCE
    return value


_INF = math.inf
_GOOD_SYMBOLS: set[str] = set()  # symbols that passed ``symbol_problem`` (bounded below)
# Latest trade time accepted without reading the clock: "now + 1 day" as of the last refresh. It only
# lags the true bound, so comparing against it never accepts too much; a later time refreshes it.
_ts_ceiling = 0


def check_trade_values(ts_ns: int, symbol: str, price: float, quantity: float) -> None:
    """Reject a trade no venue can have sent: a time outside 2009-01-01 .. now + 1 day, a price or
    quantity that is not finite and > 0, a symbol that is not ``BASE-QUOTE``. The recent-trades
    (REST) readers run it on every row, so a bad reply fails as a ``VenueRequestError``; streamed
    trades are checked per batch by the feed instead. The rule is ``TradeBatch.validate``'s; this
    is its per-trade fast path (no clock read, one set lookup)."""
    if MIN_TS_NS <= ts_ns <= _ts_ceiling and 0.0 < price < _INF and 0.0 < quantity < _INF and symbol in _GOOD_SYMBOLS:
        return
    _check_slowly(ts_ns, symbol, price, quantity)


def _check_slowly(ts_ns: int, symbol: str, price: float, quantity: float) -> None:
    """``check_trade_values`` past its fast path: refresh the time bound, name what is wrong."""
    global _ts_ceiling
    if ts_ns > _ts_ceiling:
        _ts_ceiling = time.time_ns() + MAX_FUTURE_NS
    if not MIN_TS_NS <= ts_ns <= _ts_ceiling:
        raise FrameError(f"invalid trade: ts_ns={ts_ns} outside 2009-01-01 .. now + 1 day")
    if not (0.0 < price < _INF and 0.0 < quantity < _INF):
        raise FrameError(f"invalid trade: price={price} quantity={quantity} must be finite and > 0")
    if symbol not in _GOOD_SYMBOLS:
        problem = symbol_problem(symbol)
        if problem is not None:
            raise FrameError(f"invalid trade: symbol={symbol!r} {problem}")
        if len(_GOOD_SYMBOLS) < 100_000:
            _GOOD_SYMBOLS.add(symbol)


def malformed(exc: Exception) -> FrameError:
    """The ``FrameError`` for a frame the JSON decoder cannot read at all: nested deeper than the
    decoder's recursion limit (``RecursionError``), or a text frame that is not valid Unicode (a
    lone surrogate: ``UnicodeEncodeError``). Parsers raise it so such frames are dead letters too."""
    if isinstance(exc, RecursionError):
        return FrameError("malformed frame: nested too deeply to decode")
    return FrameError(f"malformed frame: {type(exc).__name__}: {exc}")


# What decoding an untrusted frame may raise besides ``msgspec.DecodeError`` (see ``malformed``).
UNREADABLE = (RecursionError, ValueError, TypeError)


def num_text(value: float) -> str:
    """A float as the shortest decimal string that reads back to it, never in exponent form."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        return np.format_float_positional(value, trim="-")
    return text


def decimal_ms_to_ns(text: str) -> int:
    """``"1758067201193.4521"`` (ms with a fraction) → exact integer ns, without a float."""
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a decimal millisecond time: {text!r}")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


def json_body(payload: object) -> bytes:
    return msgspec.json.encode(payload)
