"""Gate v4 spot (``spot.trades``) and USDT-settled futures (``futures.trades``).

Spot pushes one trade per message (``result`` is an object) with ``create_time_ms`` as a
**string of ms with a fraction** ("1758067201193.4521"), turned into ns without a float. Futures
push a ``result`` **array**; the aggressor side is the **sign of** ``size`` (+ buy, - sell),
``size`` counts contracts (an int, or a string when decimal sizes are enabled), and base
quantity is ``|size| * quanto_multiplier``. ``is_internal`` trades (insurance fund / ADL
takeovers) are real trades and are kept. The server sends protocol ping frames (answered by the
WebSocket layer); we also send the optional ``spot.ping``/``futures.ping`` so the watchdog
sees traffic on quiet connections. Names are ``BTC_USDT``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import msgspec

from ..errors import FrameError, VenueError
from ..models import Trade
from .core import (
    UNREADABLE,
    Answer,
    Frame,
    FrameParser,
    Instrument,
    Instruments,
    RecentTrades,
    RestClient,
    RestReply,
    TradeColumns,
    VenueProtocol,
    VenueSpec,
    decimal_ms_to_ns,
    json_body,
    malformed,
    num_text,
)

SPOT = VenueSpec(
    connector="gate_spot",
    exchange="gate",
    market_type="spot",
    ws_url="wss://api.gateio.ws/ws/v4/",
    rest_url="https://api.gateio.ws",
    topics_per_connection=200,
    topics_per_message=100,
    subscribe_pause=0.05,  # no documented message cap
    ping_interval=15.0,
    app_ping=True,
    watchdog_timeout=60.0,
)
FUTURES = VenueSpec(
    connector="gate_futures",
    exchange="gate",
    market_type="futures",
    ws_url="wss://fx-ws.gateio.ws/v4/ws/usdt",
    rest_url="https://api.gateio.ws",
    topics_per_connection=200,
    topics_per_message=100,
    subscribe_pause=0.05,
    ping_interval=15.0,
    app_ping=True,
    watchdog_timeout=60.0,
)

# Replay contract sizes like Gate's own (BTC_USDT 0.0001, ETH_USDT 0.01); 1 elsewhere.
_REPLAY_MULTIPLIERS = {"BTC": "0.0001", "ETH": "0.01"}


class SpotTrade(msgspec.Struct, frozen=True):
    id: int
    create_time_ms: str | int  # a string with a ms fraction; int accepted too
    side: str
    currency_pair: str
    amount: float
    price: float


class SpotPush(msgspec.Struct, frozen=True):
    channel: str
    event: str
    result: SpotTrade


class FuturesTrade(msgspec.Struct, frozen=True):
    id: int
    create_time_ms: int
    contract: str
    size: float  # signed contracts: int, or a string with decimal sizes
    price: float
    is_internal: bool = False


class FuturesPush(msgspec.Struct, frozen=True):
    channel: str
    event: str
    result: list[FuturesTrade]


class Control(msgspec.Struct, frozen=True):
    """Acks (``event: subscribe``), pongs (``*.pong``) and errors."""

    channel: str = ""
    event: str = ""
    error: object = None
    result: object = None


class CurrencyPair(msgspec.Struct, frozen=True):
    """``GET /api/v4/spot/currency_pairs`` row."""

    id: str
    base: str
    quote: str
    trade_status: str = ""


class Contract(msgspec.Struct, frozen=True):
    """``GET /api/v4/futures/usdt/contracts`` row."""

    name: str
    quanto_multiplier: str
    status: str = "trading"
    in_delisting: bool = False


_SPOT = msgspec.json.Decoder(SpotPush, strict=False)
_FUTURES = msgspec.json.Decoder(FuturesPush, strict=False)
_CONTROL = msgspec.json.Decoder(Control)
_PAIRS = msgspec.json.Decoder(list[CurrencyPair])
_CONTRACTS = msgspec.json.Decoder(list[Contract])
_SPOT_SIDES = {"buy": "buy", "sell": "sell"}


def _control(frame: Frame, first_error: msgspec.DecodeError) -> int:
    """0 for acks and pongs; VenueError for errors; FrameError for anything else."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.error is not None:
        raise VenueError(f"venue error on {msg.channel or '?'}: {msg.error}")
    if msg.event in ("subscribe", "unsubscribe") or msg.channel.endswith(".pong"):
        return 0
    raise FrameError(f"unexpected frame: {first_error}")


class GateProtocol(VenueProtocol):
    @property
    def futures(self) -> bool:
        return self.spec.market_type == "futures"

    @property
    def channel(self) -> str:
        return "futures.trades" if self.futures else "spot.trades"

    def wire_id(self, trade_id: str) -> int:
        """Gate's numeric trade id for a replayed trade (a fresh one when the id is not numeric)."""
        return int(trade_id) if trade_id.isdigit() and len(trade_id) < 19 else self.next_id()

    def make_parser(self, instruments: Instruments) -> FrameParser:
        return self._futures_parser(instruments) if self.futures else self._spot_parser(instruments)

    def _spot_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        symbol_of = instruments.symbol_of
        decode = _SPOT.decode

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if msg.event != "update" or msg.channel != "spot.trades":
                raise FrameError(f"unexpected trade frame: {msg.channel}/{msg.event}")
            t = msg.result
            side = _SPOT_SIDES.get(t.side)
            if side is None:
                raise FrameError(f"unknown side {t.side!r}")
            try:
                ms = t.create_time_ms
                ts_ns = ms * 1_000_000 if isinstance(ms, int) else decimal_ms_to_ns(ms)
            except ValueError as exc:
                raise FrameError(f"bad create_time_ms: {exc}") from None
            symbol = symbols.get(t.currency_pair)
            if symbol is None:
                symbol = symbols[t.currency_pair] = symbol_of(t.currency_pair)
            out.add(ts_ns, symbol, t.price, t.amount, side, str(t.id), recv_ns)
            return 1

        return parse

    def _futures_parser(self, instruments: Instruments) -> FrameParser:
        decode = _FUTURES.decode

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if msg.event != "update" or msg.channel != "futures.trades":
                raise FrameError(f"unexpected trade frame: {msg.channel}/{msg.event}")
            rows = []
            for t in msg.result:
                inst = instruments.get(t.contract)
                if inst is None:
                    raise FrameError(f"unknown instrument {t.contract!r} (contract size needed)")
                if not -math.inf < t.size < math.inf or t.size == 0:
                    raise FrameError(f"bad size {t.size!r}")
                quantity = inst.to_base(abs(t.size))
                ts_ns = t.create_time_ms * 1_000_000
                side = "buy" if t.size > 0 else "sell"
                rows.append((ts_ns, inst.symbol, t.price, quantity, side, str(t.id)))
            for ts_ns, symbol, price, quantity, side, trade_id in rows:
                out.add(ts_ns, symbol, price, quantity, side, trade_id, recv_ns)
            return len(rows)

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        names = [inst.venue_symbol for inst in instruments]
        step = self.spec.topics_per_message
        now = int(time.time())
        return [
            json_body(
                {"time": now, "id": self.next_id(), "channel": self.channel, "event": "subscribe",
                 "payload": names[i : i + step]}
            ).decode()
            for i in range(0, len(names), step)
        ]  # fmt: skip

    def ping_message(self) -> str:
        """``spot.ping``/``futures.ping``: optional, but it resets Gate's idle timer and feeds our watchdog."""
        prefix = "futures" if self.futures else "spot"
        return json_body({"time": int(time.time()), "channel": f"{prefix}.ping"}).decode()

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        if self.futures:
            return parse_contracts(await rest.get(self.spec.rest_url + "/api/v4/futures/usdt/contracts"))
        return parse_currency_pairs(await rest.get(self.spec.rest_url + "/api/v4/spot/currency_pairs"))

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        if self.futures:
            return Instrument.make(
                f"{base}_{quote}", base, quote, multiplier=_REPLAY_MULTIPLIERS.get(base.upper(), "1")
            )
        return Instrument.make(f"{base}_{quote}", base, quote)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        if not trades:
            return []
        if self.futures:
            rows = []
            for t in trades:
                contracts = round(inst.to_contracts(t.quantity))
                ms = t.ts_ns // 1_000_000
                rows.append(
                    {"size": contracts if t.side == "buy" else -contracts, "id": self.wire_id(t.trade_id),
                     "create_time": ms // 1000, "create_time_ms": ms, "price": num_text(t.price),
                     "contract": inst.venue_symbol}
                )  # fmt: skip
            last_ms = trades[-1].ts_ns // 1_000_000
            msg = {"channel": "futures.trades", "event": "update", "time": last_ms // 1000, "time_ms": last_ms + 2,
                   "result": rows}  # fmt: skip
            return [json_body(msg).decode()]
        frames: list[Frame] = []
        for t in trades:
            ms, frac = divmod(t.ts_ns // 100, 10_000)  # Gate's 4 fractional ms digits
            trade_id = self.wire_id(t.trade_id)
            result = {
                "id": trade_id, "id_market": trade_id, "create_time": ms // 1000, "create_time_ms": f"{ms}.{frac:04d}",
                "side": t.side, "currency_pair": inst.venue_symbol, "amount": num_text(t.quantity),
                "price": num_text(t.price), "range": f"{trade_id}-{trade_id}",
            }  # fmt: skip
            msg = {"time": ms // 1000, "time_ms": ms + 2, "channel": "spot.trades", "event": "update", "result": result}
            frames.append(json_body(msg).decode())
        return frames

    def answer(self, frame: Frame) -> Answer:
        now_ms = time.time_ns() // 1_000_000
        stamp = {"time": now_ms // 1000, "time_ms": now_ms}
        try:
            req = msgspec.json.decode(frame)
        except msgspec.DecodeError:
            req = None
        if not isinstance(req, dict):
            error = {"code": 1, "message": "invalid request"}
            return Answer([json_body({**stamp, "channel": "", "event": "", "error": error, "result": None}).decode()])
        channel, event = req.get("channel"), req.get("event")
        prefix = "futures" if self.futures else "spot"
        if channel == f"{prefix}.ping":
            pong = {**stamp, "channel": f"{prefix}.pong", "event": "", "error": None, "result": None}
            return Answer([json_body(pong).decode()])
        payload = req.get("payload")
        if channel != self.channel or event not in ("subscribe", "unsubscribe") or not isinstance(payload, list):
            error = {"code": 2, "message": f"unknown channel or event: {channel}/{event}"}
            return Answer([json_body({**stamp, "channel": channel, "event": event, "error": error,
                                      "result": {"status": "fail"}}).decode()])  # fmt: skip
        names = [str(p) for p in payload]
        ack = {**stamp, "id": req.get("id"), "channel": channel, "event": event, "error": None,
               "result": {"status": "success"}}  # fmt: skip
        if event == "subscribe":
            return Answer([json_body(ack).decode()], subscribe=names)
        return Answer([json_body(ack).decode()], unsubscribe=names)

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if self.futures and path == "/api/v4/futures/usdt/contracts":
            rows = [
                {"name": i.venue_symbol, "type": "direct", "quanto_multiplier": num_text(i.multiplier),
                 "status": "trading", "in_delisting": False}
                for i in instruments
            ]  # fmt: skip
            return RestReply(json_body(rows))
        if not self.futures and path == "/api/v4/spot/currency_pairs":
            rows = [
                {"id": i.venue_symbol, "base": i.base, "quote": i.quote, "trade_status": "tradable"}
                for i in instruments
            ]
            return RestReply(json_body(rows))
        return None


def parse_currency_pairs(body: bytes) -> list[Instrument]:
    """Tradable spot pairs (``trade_status`` "tradable"; "untradable"/"buyable"/"sellable" skipped)."""
    return [Instrument.make(p.id, p.base, p.quote) for p in _PAIRS.decode(body) if p.trade_status == "tradable"]


def parse_contracts(body: bytes) -> list[Instrument]:
    """Trading USDT contracts with their ``quanto_multiplier`` (base units per contract)."""
    out = []
    for c in _CONTRACTS.decode(body):
        base, sep, quote = c.name.partition("_")
        if not sep or c.status != "trading" or c.in_delisting:
            continue
        try:
            out.append(Instrument.make(c.name, base, quote, multiplier=c.quanto_multiplier))
        except (ArithmeticError, ValueError):
            continue  # no usable contract size: its trades could not be converted
    return out


def protocols() -> list[VenueProtocol]:
    return [GateProtocol(SPOT), GateProtocol(FUTURES)]
