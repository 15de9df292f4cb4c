"""Binance spot (``<sym>@trade``) and USDⓈ-M futures (``<sym>@aggTrade`` on ``/market/ws``).

``m`` is "buyer is maker": ``m=true`` means the taker **sold**. Times are ms. Spot trade ids are
``t``; futures aggregate ids are ``a``. The venue pings us (WebSocket frames) and cuts a
connection after 24 h, so the connection layer rotates before that.

Frames come raw (``/ws``) or, on combined streams (``/stream?streams=``, or after
``SET_PROPERTY combined``), wrapped as ``{"stream": "btcusdt@trade", "data": {...}}``; both parse.
Errors are ``{"code": …, "msg": …, "id": …}`` (a ``VenueError``); subscribe acks are
``{"result": null, "id": N}``; the one other event on trade streams is ``serverShutdown``, and any
other ``e`` is an ``UnknownEventError`` so a protocol change is counted, not silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

import msgspec

from ..errors import FrameError, UnknownEventError, VenueError
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
    json_body,
    malformed,
    num_text,
)

SPOT = VenueSpec(
    connector="binance_spot",
    exchange="binance",
    market_type="spot",
    ws_url="wss://stream.binance.com:9443/ws",
    rest_url="https://api.binance.com",
    topics_per_connection=1024,
    topics_per_message=50,
    subscribe_pause=0.25,  # 5 inbound messages/s
    ping_interval=20.0,
    app_ping=False,
    watchdog_timeout=60.0,
    max_lifetime=24 * 3600.0,
)
FUTURES = VenueSpec(
    connector="binance_futures",
    exchange="binance",
    market_type="futures",
    ws_url="wss://fstream.binance.com/market/ws",
    rest_url="https://fapi.binance.com",
    topics_per_connection=1024,
    topics_per_message=50,
    subscribe_pause=0.15,  # 10 inbound messages/s
    ping_interval=60.0,
    app_ping=False,
    watchdog_timeout=180.0,
    max_lifetime=24 * 3600.0,
)


class SpotTrade(msgspec.Struct, frozen=True):
    e: str
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool


class AggTrade(msgspec.Struct, frozen=True):
    e: str
    s: str
    a: int
    p: float
    q: float
    T: int
    m: bool


P = TypeVar("P")


class Combined(msgspec.Struct, Generic[P], frozen=True):
    """A combined-stream frame: the raw payload under ``data``, its stream name under ``stream``."""

    stream: str
    data: P


class Control(msgspec.Struct, frozen=True):
    """Everything that is not a trade: acks (``result``/``id``), errors (``code``/``msg``/``id``, or an
    older nested ``error``), events (``e``: ``serverShutdown``) and a combined-stream wrapper whose
    payload is not a trade."""

    id: int | str | None = None
    result: object = None
    code: int | str | None = None
    msg: str | None = None
    error: object = None
    e: str | None = None
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()


class RestTrade(msgspec.Struct, frozen=True):
    """``GET /api/v3/trades`` row."""

    id: int
    price: float
    qty: float
    time: int
    isBuyerMaker: bool  # noqa: N815


class RestAggTrade(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/aggTrades`` row."""

    a: int
    p: float
    q: float
    T: int
    m: bool


class SymbolInfo(msgspec.Struct, frozen=True):
    symbol: str
    baseAsset: str  # noqa: N815
    quoteAsset: str  # noqa: N815
    status: str
    contractType: str = ""  # noqa: N815


class ExchangeInfo(msgspec.Struct, frozen=True):
    symbols: list[SymbolInfo]


_SPOT = msgspec.json.Decoder(SpotTrade, strict=False)
_AGG = msgspec.json.Decoder(AggTrade, strict=False)
_COMBINED_SPOT = msgspec.json.Decoder(Combined[SpotTrade], strict=False)
_COMBINED_AGG = msgspec.json.Decoder(Combined[AggTrade], strict=False)
_CONTROL = msgspec.json.Decoder(Control)
TRADE_EVENTS = frozenset({"trade", "aggTrade"})
KNOWN_EVENTS = frozenset({"serverShutdown"})  # announces a restart; the reconnect handles it
_REST_TRADES = msgspec.json.Decoder(list[RestTrade], strict=False)
_REST_AGG = msgspec.json.Decoder(list[RestAggTrade], strict=False)
_INFO = msgspec.json.Decoder(ExchangeInfo)
_SIDE = {True: "sell", False: "buy"}  # m = buyer is maker ⇒ the taker sold


def _control(frame: Frame | msgspec.Raw, first_error: msgspec.DecodeError, *, wrapped: bool = False) -> int:
    """0 for acks and known events; ``VenueError`` for errors; ``UnknownEventError`` for an unknown
    ``e``; ``FrameError`` for anything else. ``wrapped``: ``frame`` is a combined-stream payload."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.code is not None or msg.error is not None:
        raise VenueError(_error_text(msg))
    if msg.stream is not None and msg.data:
        if wrapped:
            raise FrameError("combined-stream wrapper inside a combined-stream payload")
        return _control(msg.data, first_error, wrapped=True)
    if msg.e is not None:
        if msg.e in KNOWN_EVENTS:
            return 0
        if msg.e in TRADE_EVENTS:
            raise FrameError(f"unexpected {msg.e} frame: {first_error}")
        raise UnknownEventError(f"unknown event {msg.e!r}", msg.e)
    if msg.id is not None and not wrapped:
        return 0  # subscribe / unsubscribe ack
    raise FrameError(f"unexpected frame: {first_error}")


def _error_text(msg: Control) -> str:
    """``venue error 2: Invalid request: … (request 7)`` from either error shape."""
    code, text = msg.code, msg.msg
    if isinstance(msg.error, dict):
        code, text = msg.error.get("code", code), msg.error.get("msg", text)
    elif msg.error is not None:
        text = str(msg.error)
    request = f" (request {msg.id})" if msg.id is not None else ""
    return f"venue error {code}: {text}{request}"


class BinanceProtocol(VenueProtocol):
    supports_backfill = True
    recent_page = 1000  # /api/v3/trades and /fapi/v1/aggTrades at most
    contiguous_ids = True  # spot ``t`` and futures aggregate ``a`` count up by one per symbol

    @property
    def futures(self) -> bool:
        return self.spec.market_type == "futures"

    def make_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        symbol_of = instruments.symbol_of
        futures = self.futures
        decode: Callable[[Frame], SpotTrade | AggTrade] = _AGG.decode if futures else _SPOT.decode
        decode_combined: Callable[[Frame], Combined[SpotTrade] | Combined[AggTrade]] = (
            _COMBINED_AGG.decode if futures else _COMBINED_SPOT.decode
        )

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = decode(frame)
            except msgspec.DecodeError as exc:
                # Not a raw trade: a combined-stream trade (one more decode), else a control frame.
                try:
                    msg = decode_combined(frame).data
                except msgspec.DecodeError:
                    return _control(frame, exc)
                except UNREADABLE as exc2:
                    raise malformed(exc2) from None
            except UNREADABLE as exc:
                raise malformed(exc) from None
            symbol = symbols.get(msg.s)
            if symbol is None:
                symbol = symbols[msg.s] = symbol_of(msg.s)
            ts_ns = msg.T * 1_000_000
            trade_id = msg.a if futures else msg.t  # type: ignore[union-attr]
            out.add(ts_ns, symbol, msg.p, msg.q, _SIDE[msg.m], str(trade_id), recv_ns)
            return 1

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        channel = "aggTrade" if self.futures else "trade"
        streams = [f"{inst.venue_symbol.lower()}@{channel}" for inst in instruments]
        step = self.spec.topics_per_message
        return [
            json_body({"method": "SUBSCRIBE", "params": streams[i : i + step], "id": self.next_id()}).decode()
            for i in range(0, len(streams), step)
        ]

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        path = "/fapi/v1/exchangeInfo" if self.futures else "/api/v3/exchangeInfo"
        return parse_exchange_info(await rest.get(self.spec.rest_url + path), futures=self.futures)

    async def fetch_recent_trades(self, rest: RestClient, inst: Instrument, out: TradeColumns, recv_ns: int) -> int:
        if self.futures:
            body = await rest.get(
                self.spec.rest_url + "/fapi/v1/aggTrades", {"symbol": inst.venue_symbol, "limit": str(self.recent_page)}
            )
            aggs = _REST_AGG.decode(body)
            for agg in aggs:
                out.add(agg.T * 1_000_000, inst.symbol, agg.p, agg.q, _SIDE[agg.m], str(agg.a), recv_ns)
            return len(aggs)
        body = await rest.get(
            self.spec.rest_url + "/api/v3/trades", {"symbol": inst.venue_symbol, "limit": str(self.recent_page)}
        )
        trades = _REST_TRADES.decode(body)
        for t in trades:
            out.add(t.time * 1_000_000, inst.symbol, t.price, t.qty, _SIDE[t.isBuyerMaker], str(t.id), recv_ns)
        return len(trades)

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        return Instrument.make(f"{base}{quote}", base, quote)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        frames: list[Frame] = []
        for t in trades:
            ms = t.ts_ns // 1_000_000
            common = {"s": inst.venue_symbol, "p": num_text(t.price), "q": num_text(t.quantity), "T": ms}
            if self.futures:
                msg = {
                    "e": "aggTrade",
                    "E": ms + 1,
                    "a": int(t.trade_id),
                    **common,
                    "f": 0,
                    "l": 0,
                    "m": t.side == "sell",
                }
            else:
                msg = {"e": "trade", "E": ms + 1, "t": int(t.trade_id), **common, "m": t.side == "sell", "M": True}
            frames.append(json_body(msg).decode())
        return frames

    def answer(self, frame: Frame) -> Answer:
        try:
            req = msgspec.json.decode(frame)
        except UNREADABLE:  # includes msgspec.DecodeError
            return Answer([json_body({"code": 3, "msg": "Invalid JSON"}).decode()])
        if not isinstance(req, dict) or req.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            request_id = req.get("id") if isinstance(req, dict) else None
            return Answer([json_body({"code": 2, "msg": "Invalid request", "id": request_id}).decode()])
        names = [str(p).split("@", 1)[0].upper() for p in req.get("params", [])]
        ack = [json_body({"result": None, "id": req.get("id")}).decode()]
        if req["method"] == "SUBSCRIBE":
            return Answer(ack, subscribe=names)
        return Answer(ack, unsubscribe=names)

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if path in ("/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo"):
            rows = [
                {
                    "symbol": i.venue_symbol,
                    "status": "TRADING",
                    "baseAsset": i.base,
                    "quoteAsset": i.quote,
                    **({"contractType": "PERPETUAL", "pair": i.venue_symbol} if self.futures else {}),
                }
                for i in instruments
            ]
            return RestReply(json_body({"timezone": "UTC", "symbols": rows}))
        if path in ("/api/v3/trades", "/fapi/v1/aggTrades"):
            trades = recent(query.get("symbol", ""))[-int(query.get("limit", "500")) :]
            if self.futures:
                body = [
                    {"a": int(t.trade_id), "p": num_text(t.price), "q": num_text(t.quantity), "f": 0, "l": 0,
                     "T": t.ts_ns // 1_000_000, "m": t.side == "sell"}
                    for t in trades
                ]  # fmt: skip
            else:
                body = [
                    {"id": int(t.trade_id), "price": num_text(t.price), "qty": num_text(t.quantity),
                     "time": t.ts_ns // 1_000_000, "isBuyerMaker": t.side == "sell", "isBestMatch": True}
                    for t in trades
                ]  # fmt: skip
            return RestReply(json_body(body))
        return None


def parse_exchange_info(body: bytes, *, futures: bool) -> list[Instrument]:
    """Trading symbols from ``exchangeInfo`` (perpetuals only on futures)."""
    info = _INFO.decode(body)
    return [
        Instrument.make(s.symbol, s.baseAsset, s.quoteAsset)
        for s in info.symbols
        if s.status == "TRADING" and (not futures or s.contractType == "PERPETUAL")
    ]


def protocols() -> list[VenueProtocol]:
    return [BinanceProtocol(SPOT), BinanceProtocol(FUTURES)]
