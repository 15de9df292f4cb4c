"""KuCoin (classic API) spot ``/market/match`` and USDT-margined futures ``/contractMarket/execution``.

Quirks: the WebSocket URL is not fixed. A POST to ``/api/v1/bullet-public`` returns an endpoint and
a token, and the client connects to ``endpoint?token=…&connectId=…``. The server greets with
``type: "welcome"`` and acks subscribes with ``type: "ack"``. One subscribe carries up to 100
symbols comma-joined in one topic; the client pings (``{"id","type":"ping"}``) every
``pingInterval`` (18 s). One trade per message, ``side`` is the taker side. Spot ``time`` is ns as a
**string**; futures ``ts`` is ns as an **int**. Futures ``size`` counts lots (base quantity =
``size * multiplier``, per contract) and ``price`` is a string in current payloads but a JSON
number in older ones. BTC is spelled ``XBT`` on futures (``XBTUSDTM``). No recent-trades backfill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

import msgspec

from ..errors import FrameError, VenueError, VenueRequestError
from ..models import NO_SEQUENCE, Trade
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
    sequence_or_none,
)

SPOT = VenueSpec(
    connector="kucoin_spot",
    exchange="kucoin",
    market_type="spot",
    ws_url="wss://ws-api-spot.kucoin.com/",  # informative: connect_url asks bullet-public for the real one
    rest_url="https://api.kucoin.com",
    topics_per_connection=100,
    topics_per_message=100,  # symbols per comma-joined topic
    subscribe_pause=0.2,  # 100 client messages per 10 s, pings included
    ping_interval=18.0,
    app_ping=True,
    watchdog_timeout=60.0,
)
FUTURES = VenueSpec(
    connector="kucoin_futures",
    exchange="kucoin",
    market_type="futures",
    ws_url="wss://ws-api-futures.kucoin.com/",
    rest_url="https://api-futures.kucoin.com",
    topics_per_connection=100,
    topics_per_message=100,
    subscribe_pause=0.2,
    ping_interval=18.0,
    app_ping=True,
    watchdog_timeout=60.0,
)

SPOT_TOPIC = "/market/match:"
FUTURES_TOPIC = "/contractMarket/execution:"
OK = "200000"
PERPETUAL = "FFWCSX"  # KuCoin's contract type code for perpetual swaps
# Replay lot sizes (the real ones come from the contract list). Never 1: a lot count is an integer,
# so the replay generator must produce whole lots, which it does for instruments with a contract size.
_REPLAY_MULTIPLIER = {"BTC": "0.001", "ETH": "0.01"}
_REPLAY_DEFAULT_MULTIPLIER = "0.1"


class SpotMatch(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    price: float
    size: float
    tradeId: str | int  # noqa: N815 - venue field name
    time: int  # ns, as a string
    sequence: int | str | None = None


class SpotPush(msgspec.Struct, frozen=True):
    type: str
    topic: str
    subject: str
    data: SpotMatch


class FuturesMatch(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    price: float  # string now, JSON number in older payloads
    size: float  # lots
    tradeId: str | int  # noqa: N815
    ts: int  # ns
    sequence: int | str | None = None


class FuturesPush(msgspec.Struct, frozen=True):
    type: str
    topic: str
    subject: str
    data: FuturesMatch


class Control(msgspec.Struct, frozen=True):
    """Welcome, ack, pong and error frames."""

    type: str = ""
    id: str | int | None = None
    code: str | int | None = None
    data: object = None


class SymbolRow(msgspec.Struct, frozen=True):
    symbol: str
    baseCurrency: str  # noqa: N815
    quoteCurrency: str  # noqa: N815
    enableTrading: bool = False  # noqa: N815


class ContractRow(msgspec.Struct, frozen=True):
    symbol: str
    baseCurrency: str  # noqa: N815
    quoteCurrency: str  # noqa: N815
    multiplier: float
    status: str
    isInverse: bool = False  # noqa: N815
    type: str = ""


class SymbolsReply(msgspec.Struct, frozen=True):
    code: str | int
    data: list[SymbolRow] = msgspec.field(default_factory=list)
    msg: str = ""


class ContractsReply(msgspec.Struct, frozen=True):
    code: str | int
    data: list[ContractRow] = msgspec.field(default_factory=list)
    msg: str = ""


class InstanceServer(msgspec.Struct, frozen=True):
    endpoint: str
    pingInterval: int = 18000  # noqa: N815


class Bullet(msgspec.Struct, frozen=True):
    token: str
    instanceServers: list[InstanceServer]  # noqa: N815


class BulletReply(msgspec.Struct, frozen=True):
    code: str | int
    data: Bullet | None = None
    msg: str = ""


_SPOT = msgspec.json.Decoder(SpotPush, strict=False)
_FUTURES = msgspec.json.Decoder(FuturesPush, strict=False)
_CONTROL = msgspec.json.Decoder(Control)
_SYMBOLS = msgspec.json.Decoder(SymbolsReply)
_CONTRACTS = msgspec.json.Decoder(ContractsReply, strict=False)
_BULLET = msgspec.json.Decoder(BulletReply, strict=False)
_SIDES = frozenset(("buy", "sell"))
_QUIET_TYPES = frozenset(("welcome", "ack", "pong", "ping"))


def _control(frame: Frame, first_error: msgspec.DecodeError) -> int:
    """0 for welcome/ack/pong; VenueError for ``type: error``; FrameError for anything else."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.type == "error":
        raise VenueError(f"venue error {msg.code}: {msg.data}")
    if msg.type in _QUIET_TYPES:
        return 0
    raise FrameError(f"unexpected frame: {first_error}")


class KucoinProtocol(VenueProtocol):
    @property
    def futures(self) -> bool:
        return self.spec.market_type == "futures"

    @property
    def topic(self) -> str:
        return FUTURES_TOPIC if self.futures else SPOT_TOPIC

    def make_parser(self, instruments: Instruments) -> FrameParser:
        return self._futures_parser(instruments) if self.futures else self._spot_parser(instruments)

    def _spot_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        symbol_of = instruments.symbol_of

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = _SPOT.decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            t = msg.data
            if msg.type != "message" or msg.subject != "trade.l3match" or not msg.topic.startswith(SPOT_TOPIC):
                raise FrameError(f"unexpected message {msg.type!r}/{msg.subject!r} on {msg.topic!r}")
            trade_id = str(t.tradeId)
            if t.side not in _SIDES or not t.symbol or not trade_id:
                raise FrameError(f"bad trade: side={t.side!r} symbol={t.symbol!r} id={trade_id!r}")
            symbol = symbols.get(t.symbol)
            if symbol is None:
                symbol = symbols[t.symbol] = symbol_of(t.symbol)
            out.add(t.time, symbol, t.price, t.size, t.side, trade_id, recv_ns, sequence_or_none(t.sequence))
            return 1

        return parse

    def _futures_parser(self, instruments: Instruments) -> FrameParser:
        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = _FUTURES.decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            t = msg.data
            if msg.type != "message" or msg.subject != "match" or not msg.topic.startswith(FUTURES_TOPIC):
                raise FrameError(f"unexpected message {msg.type!r}/{msg.subject!r} on {msg.topic!r}")
            trade_id = str(t.tradeId)
            if t.side not in _SIDES or not trade_id:
                raise FrameError(f"bad trade: side={t.side!r} id={trade_id!r}")
            inst = instruments.get(t.symbol)
            if inst is None:
                raise FrameError(f"unknown instrument {t.symbol!r} (no multiplier)")
            quantity = inst.to_base(t.size)
            out.add(t.ts, inst.symbol, t.price, quantity, t.side, trade_id, recv_ns, sequence_or_none(t.sequence))
            return 1

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        names = [inst.venue_symbol for inst in instruments]
        step = self.spec.topics_per_message
        return [
            json_body(
                {
                    "id": str(self.next_id()),
                    "type": "subscribe",
                    "topic": self.topic + ",".join(names[i : i + step]),
                    "privateChannel": False,
                    "response": True,
                }
            ).decode()
            for i in range(0, len(names), step)
        ]

    def ping_message(self) -> str:
        return json_body({"id": str(self.next_id()), "type": "ping"}).decode()

    async def connect_url(self, rest: RestClient) -> str:
        """A fresh token URL from ``bullet-public`` (tokens expire, so one per connection)."""
        url = self.spec.rest_url + "/api/v1/bullet-public"
        body = await rest.post(url)
        try:
            reply = _BULLET.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VenueRequestError(url, f"unreadable bullet-public answer: {exc}") from None
        if str(reply.code) != OK or reply.data is None:
            raise VenueRequestError(url, f"code {reply.code}: {reply.msg}")
        if not reply.data.token or not reply.data.instanceServers or not reply.data.instanceServers[0].endpoint:
            raise VenueRequestError(url, "bullet-public gave no token or endpoint")
        endpoint = reply.data.instanceServers[0].endpoint
        sep = "&" if "?" in endpoint else "?"
        return f"{endpoint}{sep}token={quote(reply.data.token, safe='=')}&connectId={self.next_id()}"

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        path = "/api/v1/contracts/active" if self.futures else "/api/v2/symbols"
        url = self.spec.rest_url + path
        body = await rest.get(url)
        try:
            reply = _CONTRACTS.decode(body) if self.futures else _SYMBOLS.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VenueRequestError(url, f"unreadable instrument list: {exc}") from None
        if str(reply.code) != OK:
            raise VenueRequestError(url, f"code {reply.code}: {reply.msg}")
        if isinstance(reply, ContractsReply):
            return parse_contracts(reply.data)
        return [Instrument.make(r.symbol, r.baseCurrency, r.quoteCurrency) for r in reply.data if r.enableTrading]

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        if self.futures:
            venue_base = "XBT" if base.upper() == "BTC" else base
            multiplier = _REPLAY_MULTIPLIER.get(base.upper(), _REPLAY_DEFAULT_MULTIPLIER)
            return Instrument.make(f"{venue_base}{quote}M", venue_base, quote, multiplier=multiplier)
        return Instrument.make(f"{base}-{quote}", base, quote)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        topic = self.topic + inst.venue_symbol
        frames: list[Frame] = []
        for t in trades:
            seq = t.sequence_number if t.sequence_number not in (None, NO_SEQUENCE) else None
            if self.futures:
                data: dict[str, object] = {
                    "symbol": inst.venue_symbol,
                    **({"sequence": seq} if seq is not None else {}),
                    "side": t.side,
                    "size": max(1, round(inst.to_contracts(t.quantity))),  # whole lots
                    "price": num_text(t.price),
                    "takerOrderId": f"t{t.trade_id}",
                    "makerOrderId": f"m{t.trade_id}",
                    "tradeId": t.trade_id,
                    "ts": t.ts_ns,
                }
                msg: dict[str, object] = {"topic": topic, "type": "message", "subject": "match"}
                if seq is not None:
                    msg["sn"] = seq
                msg["data"] = data
            else:
                data = {
                    "makerOrderId": f"m{t.trade_id}",
                    "price": num_text(t.price),
                    **({"sequence": str(seq)} if seq is not None else {}),
                    "side": t.side,
                    "size": num_text(t.quantity),
                    "symbol": inst.venue_symbol,
                    "takerOrderId": f"t{t.trade_id}",
                    "time": str(t.ts_ns),
                    "tradeId": t.trade_id,
                    "type": "match",
                }
                msg = {"type": "message", "topic": topic, "subject": "trade.l3match", "data": data}
            frames.append(json_body(msg).decode())
        return frames

    def answer(self, frame: Frame) -> Answer:
        try:
            req = msgspec.json.decode(frame)
        except (msgspec.DecodeError, ValueError, TypeError):
            return Answer([_error(None, 400, "request is not valid JSON")])
        if not isinstance(req, dict):
            return Answer([_error(None, 400, "request must be a JSON object")])
        req_id, kind = req.get("id"), req.get("type")
        if kind == "ping":
            return Answer([json_body({"id": req_id, "type": "pong"}).decode()])
        if kind not in ("subscribe", "unsubscribe"):
            return Answer([_error(req_id, 400, f"type {kind!r} is not supported")])
        topic = req.get("topic")
        if not isinstance(topic, str) or not topic.startswith(self.topic):
            return Answer([_error(req_id, 404, f"topic {topic} is not found")])
        names = [n for n in topic[len(self.topic) :].split(",") if n]
        if not names or len(names) > self.spec.topics_per_message:
            return Answer([_error(req_id, 509, f"a topic takes 1 to {self.spec.topics_per_message} symbols")])
        replies = [json_body({"id": req_id, "type": "ack"}).decode()] if req.get("response", False) else []
        if kind == "subscribe":
            return Answer(replies, subscribe=names)
        return Answer(replies, unsubscribe=names)

    def greeting(self) -> list[str]:
        return [json_body({"id": "replay", "type": "welcome"}).decode()]

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if path == "/api/v1/bullet-public":
            server = {
                "endpoint": ws_url,
                "encrypt": True,
                "protocol": "websocket",
                "pingInterval": 18000,
                "pingTimeout": 10000,
            }
            return RestReply(json_body({"code": OK, "data": {"token": "replay", "instanceServers": [server]}}))
        if self.futures and path == "/api/v1/contracts/active":
            rows: list[dict[str, object]] = [
                {
                    "symbol": i.venue_symbol, "rootSymbol": i.quote, "type": PERPETUAL,
                    "baseCurrency": "XBT" if i.base == "BTC" else i.base, "quoteCurrency": i.quote,
                    "settleCurrency": i.quote, "multiplier": i.multiplier, "isInverse": False, "status": "Open",
                }
                for i in instruments
            ]  # fmt: skip
            return RestReply(json_body({"code": OK, "data": rows}))
        if not self.futures and path == "/api/v2/symbols":
            rows = [
                {
                    "symbol": i.venue_symbol, "name": i.venue_symbol, "baseCurrency": i.base,
                    "quoteCurrency": i.quote, "feeCurrency": i.quote, "market": i.quote, "enableTrading": True,
                }
                for i in instruments
            ]  # fmt: skip
            return RestReply(json_body({"code": OK, "data": rows}))
        return None


def _error(req_id: object, code: int, message: str) -> str:
    return json_body({"id": req_id, "type": "error", "code": code, "data": message}).decode()


def parse_contracts(rows: Sequence[ContractRow]) -> list[Instrument]:
    """Open USDT-margined linear perpetuals, each with its lot ``multiplier`` (inverse ones are negative)."""
    result = []
    for r in rows:
        if r.status != "Open" or r.isInverse or r.quoteCurrency != "USDT" or r.type not in ("", PERPETUAL):
            continue
        try:
            result.append(Instrument.make(r.symbol, r.baseCurrency, r.quoteCurrency, multiplier=r.multiplier))
        except (ValueError, ArithmeticError):  # non-positive or unusable multiplier
            continue
    return result


def protocols() -> list[VenueProtocol]:
    return [KucoinProtocol(SPOT), KucoinProtocol(FUTURES)]
