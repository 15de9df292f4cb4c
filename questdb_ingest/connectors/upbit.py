"""Upbit and Bithumb spot trades (``type: "trade"``); Bithumb's current API copies Upbit's.

A request is one JSON **array** ``[{"ticket"}, {"type": "trade", "codes": [...]}, {"format"}]``
and it **replaces** the connection's whole subscription, so one request carries every code of the
connection. There is no ack; errors are ``{"error": {"name", "message"}}``. Markets are named
**QUOTE-BASE** (``KRW-BTC`` → ``BTC-KRW``). ``ask_bid`` ASK means the seller was the aggressor
(sell), BID a buy. ``trade_timestamp`` is ms; ``sequential_id`` is the trade number (trade id and
sequence). ``stream_type: "SNAPSHOT"`` replays the latest trade and is skipped (we also ask for
``is_only_realtime``). Upbit sends its JSON in **binary** frames. Keepalive is the text ``PING``,
answered with ``{"status": "UP"}``; an idle connection is cut after about 120 s. Only the DEFAULT
format is parsed (not the abbreviated SIMPLE keys).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

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
    asset,
    json_body,
    malformed,
)

UPBIT = VenueSpec(
    connector="upbit_spot",
    exchange="upbit",
    market_type="spot",
    ws_url="wss://api.upbit.com/websocket/v1",
    rest_url="https://api.upbit.com",
    topics_per_connection=1000,
    topics_per_message=1000,  # one request must carry all codes of the connection
    subscribe_pause=0.2,  # 5 WebSocket requests/s
    ping_interval=30.0,
    app_ping=True,
    watchdog_timeout=120.0,
)
BITHUMB = VenueSpec(
    connector="bithumb_spot",
    exchange="bithumb",
    market_type="spot",
    ws_url="wss://ws-api.bithumb.com/websocket/v1",
    rest_url="https://api.bithumb.com",
    topics_per_connection=1000,
    topics_per_message=1000,
    subscribe_pause=0.2,
    ping_interval=30.0,
    app_ping=True,
    watchdog_timeout=120.0,
    notes="keepalive rules assumed to match Upbit's",
)

_I64_LIMIT = 2**63  # ts_ns and sequence are stored as int64
_SIDES = {"BID": "buy", "ASK": "sell"}


class UpbitTrade(msgspec.Struct, frozen=True):
    type: str
    code: str
    trade_timestamp: int
    trade_price: float
    trade_volume: float
    ask_bid: str
    sequential_id: int
    stream_type: str = "REALTIME"


class Control(msgspec.Struct, frozen=True):
    """``{"status": "UP"}`` (keepalive answer) and ``{"error": {"name", "message"}}``."""

    status: str | None = None
    error: object = None


class Market(msgspec.Struct, frozen=True):
    """``GET /v1/market/all`` row."""

    market: str


_TRADE = msgspec.json.Decoder(UpbitTrade)
_CONTROL = msgspec.json.Decoder(Control)
_MARKETS = msgspec.json.Decoder(list[Market])


def _control(frame: Frame, first_error: msgspec.DecodeError) -> int:
    """0 for status frames; VenueError for errors; FrameError for anything else."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.error is not None:
        err = msg.error
        if isinstance(err, dict):
            raise VenueError(f"venue error {err.get('name')}: {err.get('message')}")
        raise VenueError(f"venue error: {err}")
    if msg.status is not None:
        return 0
    raise FrameError(f"unexpected frame: {first_error}")


def _flip(code: str) -> str:
    """``KRW-BTC`` → ``BTC-KRW``."""
    quote, sep, base = code.partition("-")
    if not sep or not quote or not base:
        raise FrameError(f"unknown market code {code!r}")
    return f"{asset(base)}-{asset(quote)}"


class UpbitProtocol(VenueProtocol):
    replaces_subscriptions = True

    @property
    def binary(self) -> bool:
        """Upbit sends JSON in binary frames; Bithumb's replay uses text."""
        return self.spec.exchange == "upbit"

    def make_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        decode = _TRADE.decode

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if msg.type != "trade":
                raise FrameError(f"unexpected message type {msg.type!r}")
            if msg.stream_type == "SNAPSHOT":
                return 0  # replay of the latest trade
            side = _SIDES.get(msg.ask_bid)
            if side is None:
                raise FrameError(f"unknown ask_bid {msg.ask_bid!r}")
            ts_ns = msg.trade_timestamp * 1_000_000
            if not 0 <= msg.sequential_id < _I64_LIMIT:
                raise FrameError(f"sequential_id out of range: {msg.sequential_id}")
            price, quantity = msg.trade_price, msg.trade_volume
            symbol = symbols.get(msg.code)
            if symbol is None:
                inst = instruments.get(msg.code)
                symbol = symbols[msg.code] = inst.symbol if inst is not None else _flip(msg.code)
            seq = msg.sequential_id
            out.add(ts_ns, symbol, price, quantity, side, str(seq), recv_ns, seq)
            return 1

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """One request for all of ``instruments``: a request replaces the connection's subscription."""
        if not instruments:
            return []
        codes = [inst.venue_symbol for inst in instruments]
        request = [
            {"ticket": str(uuid.uuid4())},
            {"type": "trade", "codes": codes, "is_only_realtime": True},
            {"format": "DEFAULT"},
        ]
        return [json_body(request).decode()]

    def ping_message(self) -> str:
        return "PING"

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        return parse_markets(await rest.get(self.spec.rest_url + "/v1/market/all"))

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        return Instrument.make(f"{quote}-{base}", base, quote)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        frames: list[Frame] = []
        for t in trades:
            ms = t.ts_ns // 1_000_000
            when = datetime.fromtimestamp(ms // 1000, tz=UTC)
            seq = int(t.trade_id) if t.trade_id.isdigit() and len(t.trade_id) < 19 else self.next_id()
            msg: dict[str, object] = {
                "type": "trade", "code": inst.venue_symbol, "timestamp": ms + 1,
                "trade_date": when.strftime("%Y-%m-%d"), "trade_time": when.strftime("%H:%M:%S"),
                "trade_timestamp": ms, "trade_price": t.price, "trade_volume": t.quantity,
                "ask_bid": "BID" if t.side == "buy" else "ASK", "prev_closing_price": t.price, "change": "EVEN",
                "change_price": 0.0, "sequential_id": seq,
            }  # fmt: skip
            if self.binary:
                msg |= {"best_ask_price": t.price, "best_ask_size": t.quantity, "best_bid_price": t.price,
                        "best_bid_size": t.quantity}  # fmt: skip
            msg["stream_type"] = "REALTIME"
            body = json_body(msg)
            frames.append(body if self.binary else body.decode())
        return frames

    def answer(self, frame: Frame) -> Answer:
        """No ack for a subscription; ``subscribe`` is the connection's complete new set."""
        text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
        if text.strip() == "PING":
            return Answer([json_body({"status": "UP"}).decode()])
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return Answer([_error("WRONG_FORMAT", "invalid json")])
        if not isinstance(req, list):
            return Answer([_error("WRONG_FORMAT", "request must be an array")])
        codes: list[str] | None = None
        for item in req:
            if isinstance(item, dict) and item.get("type") == "trade":
                raw = item.get("codes")
                codes = [str(c) for c in raw] if isinstance(raw, list) else []
        if not codes:
            return Answer([_error("NO_CODES", "codes are required")])
        return Answer([], subscribe=codes, unsubscribe=[])

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if path == "/v1/market/all":
            rows = [{"market": i.venue_symbol, "korean_name": i.base, "english_name": i.base} for i in instruments]
            return RestReply(json_body(rows))
        return None


def _error(name: str, message: str) -> str:
    return json_body({"error": {"name": name, "message": message}}).decode()


def parse_markets(body: bytes) -> list[Instrument]:
    """Every listed market (KRW-, BTC- and USDT-quoted), QUOTE-BASE flipped to base/quote."""
    out = []
    for m in _MARKETS.decode(body):
        quote, sep, base = m.market.partition("-")
        if sep and quote and base:
            out.append(Instrument.make(m.market, base, quote))
    return out


def protocols() -> list[VenueProtocol]:
    return [UpbitProtocol(UPBIT), UpbitProtocol(BITHUMB)]
