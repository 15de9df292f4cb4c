"""Records the product writes: ``Trade`` (per row), ``TradeBatch`` (columnar hot path),
``HealthEvent`` and ``ListingEvent``.

Timestamps are integer nanoseconds since the epoch end to end, so a venue's exact time is
never rounded through a float. Validation runs before anything is sent and raises a
``ValidationError`` naming the field, the value and the row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pandas as pd

from .errors import ValidationError

# Earliest plausible trade time, 2009-01-01: Bitcoin's genesis block is 2009-01-03, so no crypto trade
# is older; a time before it is a unit mix-up or a zero (1970), not a trade.
MIN_TS_NS = 1_230_768_000_000_000_000
# Exchange clocks run a little ahead at most; a trade more than a day in the future is bogus.
MAX_FUTURE_NS = 86_400 * 1_000_000_000
# Marks "the venue gives no sequence number"; written as NULL.
NO_SEQUENCE = int(np.iinfo(np.int64).min)


class Side(StrEnum):
    """Aggressor (taker) side of a trade."""

    BUY = "buy"
    SELL = "sell"


class MarketType(StrEnum):
    SPOT = "spot"
    FUTURES = "futures"


class HealthStatus(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"


SIDES = frozenset(s.value for s in Side)
MARKET_TYPES = frozenset(m.value for m in MarketType)
_STATUSES = frozenset(s.value for s in HealthStatus)


def now_ns() -> int:
    return time.time_ns()


def _check_ts(field: str, ts: int, now: int, row: int | None = None) -> None:
    if not MIN_TS_NS <= ts <= now + MAX_FUTURE_NS:
        raise ValidationError(field, ts, "timestamp (ns) outside 2009-01-01 .. now + 1 day", row)


SYMBOL_RULE = "must be BASE-QUOTE: two non-empty parts joined by one '-', printable, no whitespace"
_VALID_SYMBOLS: set[str] = set()  # symbols already checked (a venue has a few thousand at most)


def symbol_problem(symbol: object) -> str | None:
    """Why ``symbol`` is not a normalised ``BASE-QUOTE`` (None when it is). A blank or one-sided
    symbol (``" "``, ``"-"``, ``"KRW-"``) would be stored as a market that does not exist."""
    if isinstance(symbol, str) and symbol in _VALID_SYMBOLS:
        return None
    if not isinstance(symbol, str):
        return "must be a string"
    base, sep, quote = symbol.partition("-")
    if not (sep and base and quote) or "-" in quote:
        return SYMBOL_RULE
    if not symbol.isprintable() or any(c.isspace() for c in symbol):
        return SYMBOL_RULE
    if len(_VALID_SYMBOLS) < 100_000:
        _VALID_SYMBOLS.add(symbol)
    return None


def _check_positive(field: str, value: float, row: int | None = None) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(field, value, "must be finite and > 0", row)


def _check_text(field: str, value: str, row: int | None = None) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, value, "must be a non-empty string", row)


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One normalised public trade. ``ts_ns`` is the exchange's trade time."""

    ts_ns: int
    exchange: str
    market_type: str
    symbol: str
    price: float
    quantity: float
    side: str
    trade_id: str
    sequence_number: int | None = None
    recv_ns: int | None = None

    def validate(self, now: int | None = None) -> Trade:
        TradeBatch.from_trades([self]).validate(now)
        return self


class HealthEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A connector's state at ``ts_ns`` (periodic, and on every change)."""

    ts_ns: int
    exchange: str
    market_type: str
    status: str
    last_trade_ns: int | None = None
    message_count: int = 0
    error_message: str = ""

    def validate(self, now: int | None = None) -> HealthEvent:
        now = now_ns() if now is None else now
        _check_ts("ts_ns", self.ts_ns, now)
        _check_text("exchange", self.exchange)
        _check_text("market_type", self.market_type)
        if self.market_type not in MARKET_TYPES:
            raise ValidationError("market_type", self.market_type, f"must be one of {sorted(MARKET_TYPES)}")
        if self.status not in _STATUSES:
            raise ValidationError("status", self.status, f"must be one of {sorted(_STATUSES)}")
        if self.last_trade_ns is not None:
            _check_ts("last_trade_ns", self.last_trade_ns, now)
        if self.message_count < 0:
            raise ValidationError("message_count", self.message_count, "must be >= 0")
        return self


class GapEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A window in which one connection received nothing (disconnect, stall), and whether the
    trades missed in it were fetched back over REST."""

    start_ns: int
    end_ns: int
    exchange: str
    market_type: str
    scope: str
    reason: str
    filled: bool = False
    backfilled_trades: int = 0
    symbols: int = 0
    session_id: str = ""

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def validate(self, now: int | None = None) -> GapEvent:
        now = now_ns() if now is None else now
        _check_ts("start_ns", self.start_ns, now)
        _check_ts("end_ns", self.end_ns, now)
        if self.end_ns < self.start_ns:
            raise ValidationError("end_ns", self.end_ns, "must be >= start_ns")
        _check_text("exchange", self.exchange)
        if self.market_type not in MARKET_TYPES:
            raise ValidationError("market_type", self.market_type, f"must be one of {sorted(MARKET_TYPES)}")
        _check_text("scope", self.scope)
        return self


class ListingEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A detected new listing and what was collected around its trigger."""

    ts_ns: int
    symbol: str
    announced_ns: int | None
    detected_ns: int
    trigger_delay_ms: int
    collected_trades: int
    exchanges_with_data: int

    def validate(self, now: int | None = None) -> ListingEvent:
        now = now_ns() if now is None else now
        _check_ts("ts_ns", self.ts_ns, now)
        _check_text("symbol", self.symbol)
        _check_ts("detected_ns", self.detected_ns, now)
        if self.announced_ns is not None:
            _check_ts("announced_ns", self.announced_ns, now)
        for name in ("trigger_delay_ms", "collected_trades", "exchanges_with_data"):
            if getattr(self, name) < 0:
                raise ValidationError(name, getattr(self, name), "must be >= 0")
        return self


class CompareRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One venue's outcome of a hybrid compare: safe source ``a`` against candidate ``b``."""

    ts_ns: int
    symbol: str
    exchange_market: str
    source_a: str
    source_b: str
    window_start_ns: int
    window_end_ns: int
    rows_a: int
    rows_b: int
    missing: int
    extra: int
    mismatched: int
    sample_ids: str = ""
    latency_a_ms: float = 0.0
    latency_b_ms: float = 0.0

    def validate(self, now: int | None = None) -> CompareRecord:
        now = now_ns() if now is None else now
        _check_ts("ts_ns", self.ts_ns, now)
        for name in ("symbol", "exchange_market", "source_a", "source_b"):
            _check_text(name, getattr(self, name))
        for name in ("rows_a", "rows_b", "missing", "extra", "mismatched"):
            if getattr(self, name) < 0:
                raise ValidationError(name, getattr(self, name), "must be >= 0")
        return self


class RolloutEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A rollout phase change (operator command, automatic rollback or advance) and why."""

    ts_ns: int
    action: str  # advance | rollback | set
    from_phase: int
    to_phase: int
    reason: str
    error_rate: float | None = None
    mean_latency_ms: float | None = None
    disk_usage: float | None = None
    spool_growth_bytes: int | None = None

    def validate(self, now: int | None = None) -> RolloutEvent:
        _check_ts("ts_ns", self.ts_ns, now_ns() if now is None else now)
        _check_text("action", self.action)
        if self.from_phase < 0 or self.to_phase < 0:
            raise ValidationError("to_phase", self.to_phase, "phases are >= 0")
        return self


ObjArray = npt.NDArray[np.object_]
I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]

TRADE_SYMBOL_COLUMNS = ("exchange", "market_type", "symbol", "side")


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """Trades as parallel column arrays: the unit every hot path passes around.

    String columns are object arrays of ``str``; numeric columns are int64/float64.
    ``sequence_number`` uses ``NO_SEQUENCE`` for "none"; ``recv_ns`` uses 0 for "unknown".
    """

    ts_ns: I64Array
    exchange: ObjArray
    market_type: ObjArray
    symbol: ObjArray
    price: F64Array
    quantity: F64Array
    side: ObjArray
    trade_id: ObjArray
    sequence_number: I64Array
    recv_ns: I64Array

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        for name in self.column_names():
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, expected {n}")

    @staticmethod
    def column_names() -> tuple[str, ...]:
        return TradeBatch.__slots__

    def __len__(self) -> int:
        return len(self.ts_ns)

    @classmethod
    def from_columns(
        cls,
        *,
        ts_ns: Sequence[int] | I64Array,
        exchange: Sequence[str] | ObjArray,
        market_type: Sequence[str] | ObjArray,
        symbol: Sequence[str] | ObjArray,
        price: Sequence[float] | F64Array,
        quantity: Sequence[float] | F64Array,
        side: Sequence[str] | ObjArray,
        trade_id: Sequence[str] | ObjArray,
        sequence_number: Sequence[int] | I64Array | None = None,
        recv_ns: Sequence[int] | I64Array | None = None,
    ) -> TradeBatch:
        """Build a batch, converting each column to its canonical dtype."""
        n = len(ts_ns)
        return cls(
            ts_ns=np.asarray(ts_ns, dtype=np.int64),
            exchange=_obj(exchange),
            market_type=_obj(market_type),
            symbol=_obj(symbol),
            price=np.asarray(price, dtype=np.float64),
            quantity=np.asarray(quantity, dtype=np.float64),
            side=_obj(side),
            trade_id=_obj(trade_id),
            sequence_number=(
                np.full(n, NO_SEQUENCE, dtype=np.int64)
                if sequence_number is None
                else np.asarray(sequence_number, dtype=np.int64)
            ),
            recv_ns=np.zeros(n, dtype=np.int64) if recv_ns is None else np.asarray(recv_ns, dtype=np.int64),
        )

    @classmethod
    def from_trades(cls, trades: Iterable[Trade]) -> TradeBatch:
        rows = list(trades)
        return cls.from_columns(
            ts_ns=[t.ts_ns for t in rows],
            exchange=[t.exchange for t in rows],
            market_type=[t.market_type for t in rows],
            symbol=[t.symbol for t in rows],
            price=[t.price for t in rows],
            quantity=[t.quantity for t in rows],
            side=[t.side for t in rows],
            trade_id=[t.trade_id for t in rows],
            sequence_number=[NO_SEQUENCE if t.sequence_number is None else t.sequence_number for t in rows],
            recv_ns=[t.recv_ns or 0 for t in rows],
        )

    @classmethod
    def empty(cls) -> TradeBatch:
        return cls.from_trades([])

    @classmethod
    def concat(cls, batches: Sequence[TradeBatch]) -> TradeBatch:
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(**{name: np.concatenate([getattr(b, name) for b in batches]) for name in cls.column_names()})

    def take(self, index: slice | npt.NDArray[Any]) -> TradeBatch:
        """Rows selected by a slice, boolean mask or index array (views where numpy allows)."""
        return TradeBatch(**{name: getattr(self, name)[index] for name in self.column_names()})

    def to_trades(self) -> list[Trade]:
        return [
            Trade(
                ts_ns=int(self.ts_ns[i]),
                exchange=str(self.exchange[i]),
                market_type=str(self.market_type[i]),
                symbol=str(self.symbol[i]),
                price=float(self.price[i]),
                quantity=float(self.quantity[i]),
                side=str(self.side[i]),
                trade_id=str(self.trade_id[i]),
                sequence_number=None if self.sequence_number[i] == NO_SEQUENCE else int(self.sequence_number[i]),
                recv_ns=int(self.recv_ns[i]) or None,
            )
            for i in range(len(self))
        ]

    def validate(self, now: int | None = None) -> TradeBatch:
        """Raise ``ValidationError`` for the first bad value (field, value, row); return self."""
        if len(self) == 0:
            return self
        self.validate_numbers(now)
        _check_members("side", self.side, SIDES)
        _check_members("market_type", self.market_type, MARKET_TYPES)
        for name in ("exchange", "trade_id"):
            _check_nonempty(name, getattr(self, name))
        _check_symbols(self.symbol)
        return self

    def _bad_numbers(self, now: int) -> dict[str, npt.NDArray[np.bool_]]:
        """Per numeric column, the rows out of bounds (shared by ``validate_numbers`` and ``invalid_mask``)."""
        return {
            "price": ~(np.isfinite(self.price) & (self.price > 0)),
            "quantity": ~(np.isfinite(self.quantity) & (self.quantity > 0)),
            "ts_ns": (self.ts_ns < MIN_TS_NS) | (self.ts_ns > now + MAX_FUTURE_NS),
        }

    def validate_numbers(self, now: int | None = None) -> None:
        """The numeric half of ``validate`` (prices, quantities, timestamps), vectorised."""
        now = now_ns() if now is None else now
        for name, bad in self._bad_numbers(now).items():
            if bad.any():
                row = int(np.argmax(bad))
                if name == "ts_ns":
                    _check_ts(name, int(self.ts_ns[row]), now, row)
                else:
                    _check_positive(name, float(getattr(self, name)[row]), row)

    def invalid_mask(self, now: int | None = None) -> npt.NDArray[np.bool_]:
        """Rows ``validate`` would reject (vectorised; used to set bad rows aside, not the batch)."""
        now = now_ns() if now is None else now
        bad: npt.NDArray[np.bool_] = np.logical_or.reduce(list(self._bad_numbers(now).values()))
        bad |= ~np.isin(self.side, list(SIDES)) | ~np.isin(self.market_type, list(MARKET_TYPES))
        for name in ("exchange", "trade_id"):
            col = getattr(self, name)
            bad |= np.fromiter((not isinstance(v, str) or not v for v in col), dtype=bool, count=len(col))
        bad_symbols = _bad_symbol_rows(self.symbol)
        if bad_symbols is not None:
            bad |= bad_symbols
        return bad

    def to_frame(self) -> pd.DataFrame:
        """A pandas frame shaped for ``Buffer.dataframe`` without copying the columns.

        String columns stay ``object`` Series of ``str`` (the client encodes them as fast as
        categoricals and building categoricals costs a hash per row); ``ts``/``recv_ts`` are
        nanosecond datetimes; NULL sequence numbers are masked.
        """
        seq_missing = self.sequence_number == NO_SEQUENCE
        return pd.DataFrame(
            {
                "exchange": _text_column(self.exchange),
                "market_type": _text_column(self.market_type),
                "symbol": pd.Series(self.symbol, dtype=object, copy=False),
                "price": self.price,
                "quantity": self.quantity,
                "side": pd.Series(self.side, dtype=object, copy=False),
                "trade_id": pd.Series(self.trade_id, dtype=object, copy=False),
                "sequence_number": pd.arrays.IntegerArray(self.sequence_number, seq_missing),
                "recv_ts": self.recv_ns.view("datetime64[ns]"),
                "ts": self.ts_ns.view("datetime64[ns]"),
            },
            copy=False,
        )


def constant_column(value: str, n: int) -> ObjArray:
    """``n`` times ``value`` as a read-only, zero-stride view of one element: a connector's exchange
    and market type are the same on every row, and a real object array costs a reference count per
    row to build and a hash per row to dictionary-encode (``is_constant`` lets readers skip both)."""
    return np.broadcast_to(np.array([value], dtype=object), (n,))


def is_constant(column: npt.NDArray[Any]) -> bool:
    """A ``constant_column``: one element behind every row."""
    return len(column) > 0 and column.strides == (0,)


def _text_column(values: ObjArray) -> pd.Series[Any] | pd.Categorical[str]:
    """An object column for the client: a one-value (zero-stride) column as a one-category
    Categorical, which the client takes as it is; a real array as it is."""
    if is_constant(values):
        return pd.Categorical.from_codes(np.zeros(len(values), dtype=np.int8), pd.Index([str(values[0])]))
    return pd.Series(values, dtype=object, copy=False)


def _obj(values: Sequence[str] | ObjArray) -> ObjArray:
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    arr = np.empty(len(values), dtype=object)
    # tolist() turns numpy scalars (np.str_) into plain str, which the ILP client requires.
    arr[:] = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return arr


def _check_members(field: str, col: ObjArray, allowed: frozenset[str]) -> None:
    unknown = set(pd.unique(col).tolist()) - allowed
    if unknown:
        row = next(i for i, v in enumerate(col) if v not in allowed)
        raise ValidationError(field, col[row], f"must be one of {sorted(allowed)}", row)


def _check_nonempty(field: str, col: ObjArray) -> None:
    # Vectorised on the happy path (C loops); the per-row scan only runs to name a bad row.
    if pd.api.types.infer_dtype(col, skipna=False) == "string" and not (col == "").any():
        return
    for row, value in enumerate(col):
        if not isinstance(value, str) or not value:
            raise ValidationError(field, value, "must be a non-empty string", row)


def _bad_symbol_rows(col: ObjArray) -> npt.NDArray[np.bool_] | None:
    """Rows whose symbol is not ``BASE-QUOTE``; None when all are fine (checked once per distinct value)."""
    try:
        distinct = pd.unique(col).tolist()
    except TypeError:  # unhashable values: no shortcut
        distinct = None
    if distinct is not None and all(symbol_problem(v) is None for v in distinct):
        return None
    return np.fromiter((symbol_problem(v) is not None for v in col), dtype=bool, count=len(col))


def _check_symbols(col: ObjArray) -> None:
    bad = _bad_symbol_rows(col)
    if bad is not None:
        row = int(np.argmax(bad))
        raise ValidationError("symbol", col[row], symbol_problem(col[row]) or SYMBOL_RULE, row)
