"""Bybit v5 spot and linear (USDT perpetual) trades on ``publicTrade.<SYMBOL>``.

Quirks: ordinary live pushes are ``type: "snapshot"`` and are **not** replays, so they are kept.
One push carries an array of up to 1024 trades, and several pushes can share a ``seq``. ``S`` is the
taker side ("Buy"/"Sell"), ``T`` the fill time in ms, ``v`` the size in base units on both markets.
Trade ids are numeric strings on spot and UUIDs on linear. Spot takes at most 10 args per subscribe,
and a connection at most 21 000 characters of args. The client must send ``{"op":"ping"}`` every
20 s; the pong differs by market (linear adds ``req_id: ""``) and so does the subscribe ack (spot
``ret_msg: "subscribe"``, linear ``""``). The linear instrument list is paged (``nextPageCursor``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

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
    check_trade_values,
    json_body,
    malformed,
    num_text,
    sequence_or_none,
)

SPOT = VenueSpec(
    connector="bybit_spot",
    exchange="bybit",
    market_type="spot",
    ws_url="wss://stream.bybit.com/v5/public/spot",
    rest_url="https://api.bybit.com",
    topics_per_connection=200,  # well inside the 21 000 characters of args per connection
    topics_per_message=10,  # spot rejects more than 10 args per request
    subscribe_pause=0.1,
    ping_interval=20.0,
    app_ping=True,
    watchdog_timeout=60.0,
)
FUTURES = VenueSpec(
    connector="bybit_futures",
    exchange="bybit",
    market_type="futures",
    ws_url="wss://stream.bybit.com/v5/public/linear",
    rest_url="https://api.bybit.com",
    topics_per_connection=200,
    topics_per_message=100,
    subscribe_pause=0.1,
    ping_interval=20.0,
    app_ping=True,
    watchdog_timeout=60.0,
)

TOPIC = "publicTrade."
FRAME_TRADES = 1024  # the most trades Bybit puts in one push
PAGE_LIMIT = 1000  # largest instruments-info page
MAX_PAGES = 100  # a cursor that never ends is a venue bug, not a reason to loop forever


class PublicTrade(msgspec.Struct, frozen=True):
    T: int
    s: str
    S: str
    v: float
    p: float
    i: str
    seq: int | str | None = None
    BT: bool = False


class Push(msgspec.Struct, frozen=True):
    topic: str
    data: list[PublicTrade]
    type: str = ""


class Control(msgspec.Struct, frozen=True):
    """Subscribe acks, pongs and errors."""

    op: str = ""
    success: bool | None = None
    ret_msg: str | None = None


class InstrumentRow(msgspec.Struct, frozen=True):
    symbol: str
    baseCoin: str  # noqa: N815
    quoteCoin: str  # noqa: N815
    status: str
    contractType: str = ""  # noqa: N815


class InstrumentPage(msgspec.Struct, frozen=True):
    rows: list[InstrumentRow] = msgspec.field(default_factory=list, name="list")
    nextPageCursor: str = ""  # noqa: N815


class InstrumentsReply(msgspec.Struct, frozen=True):
    retCode: int  # noqa: N815
    retMsg: str = ""  # noqa: N815
    result: InstrumentPage | None = None


class RecentTrade(msgspec.Struct, frozen=True):
    """``GET /v5/market/recent-trade`` row."""

    execId: str  # noqa: N815
    price: float
    size: float
    side: str
    time: int  # ms, as a string
    isBlockTrade: bool = False  # noqa: N815
    seq: int | str | None = None


class RecentPage(msgspec.Struct, frozen=True):
    rows: list[RecentTrade] = msgspec.field(default_factory=list, name="list")


class RecentReply(msgspec.Struct, frozen=True):
    retCode: int  # noqa: N815
    retMsg: str = ""  # noqa: N815
    result: RecentPage | None = None


_PUSH = msgspec.json.Decoder(Push, strict=False)
_CONTROL = msgspec.json.Decoder(Control)
_INSTRUMENTS = msgspec.json.Decoder(InstrumentsReply, strict=False)
_RECENT = msgspec.json.Decoder(RecentReply, strict=False)
_SIDE = {"Buy": "buy", "Sell": "sell"}
_WIRE_SIDE = {"buy": "Buy", "sell": "Sell"}


def _control(frame: Frame, first_error: msgspec.DecodeError) -> int:
    """0 for acks and pongs; VenueError for a failed request; FrameError for anything else."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.success is False:
        raise VenueError(f"venue error on {msg.op or 'request'}: {msg.ret_msg}")
    if msg.op in ("subscribe", "unsubscribe", "ping", "pong"):
        return 0
    raise FrameError(f"unexpected frame: {first_error}")


class BybitProtocol(VenueProtocol):
    supports_backfill = True

    @property
    def futures(self) -> bool:
        return self.spec.market_type == "futures"

    @property
    def category(self) -> str:
        return "linear" if self.futures else "spot"

    @property
    def recent_page(self) -> int:  # type: ignore[override]
        return 1000 if self.futures else 60  # spot caps /v5/market/recent-trade at 60

    def make_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        symbol_of = instruments.symbol_of

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = _PUSH.decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if not msg.topic.startswith(TOPIC):
                raise FrameError(f"unexpected topic {msg.topic!r}")
            rows = []
            for t in msg.data:
                side = _SIDE.get(t.S)
                if side is None or not t.s or not t.i:
                    raise FrameError(f"bad trade: side={t.S!r} symbol={t.s!r} id={t.i!r}")
                ts_ns = t.T * 1_000_000
                symbol = symbols.get(t.s)
                if symbol is None:
                    symbol = symbols[t.s] = symbol_of(t.s)
                rows.append((ts_ns, symbol, t.p, t.v, side, t.i, recv_ns, sequence_or_none(t.seq)))
            for row in rows:
                out.add(*row)
            return len(rows)

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        topics = [TOPIC + inst.venue_symbol for inst in instruments]
        step = self.spec.topics_per_message
        return [
            json_body({"req_id": str(self.next_id()), "op": "subscribe", "args": topics[i : i + step]}).decode()
            for i in range(0, len(topics), step)
        ]

    def ping_message(self) -> str:
        return json_body({"req_id": str(self.next_id()), "op": "ping"}).decode()

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        url = self.spec.rest_url + "/v5/market/instruments-info"
        if not self.futures:
            page = _instrument_page(url, await rest.get(url, {"category": "spot"}))
            return parse_instruments(page.rows, futures=False)
        rows: list[InstrumentRow] = []
        cursor = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {"category": "linear", "limit": str(PAGE_LIMIT)}
            if cursor:
                params["cursor"] = cursor
            page = _instrument_page(url, await rest.get(url, params))
            rows.extend(page.rows)
            cursor = page.nextPageCursor
            if not cursor or cursor in seen:
                break
            seen.add(cursor)
        else:
            raise VenueRequestError(url, f"instrument list still paging after {MAX_PAGES} pages")
        return parse_instruments(rows, futures=True)

    async def fetch_recent_trades(self, rest: RestClient, inst: Instrument, out: TradeColumns, recv_ns: int) -> int:
        url = self.spec.rest_url + "/v5/market/recent-trade"
        limit = str(self.recent_page)
        body = await rest.get(url, {"category": self.category, "symbol": inst.venue_symbol, "limit": limit})
        try:
            reply = _RECENT.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VenueRequestError(url, f"unreadable recent trades: {exc}") from None
        if reply.retCode != 0 or reply.result is None:
            raise VenueRequestError(url, f"retCode {reply.retCode}: {reply.retMsg}")
        rows = []
        for t in reply.result.rows:
            side = _SIDE.get(t.side)
            ts_ns = t.time * 1_000_000
            quantity = inst.to_base(t.size)
            if side is None or not t.execId:
                raise VenueRequestError(url, f"bad trade row {t!r}")
            try:
                check_trade_values(ts_ns, inst.symbol, t.price, quantity)
            except FrameError as exc:
                raise VenueRequestError(url, exc.reason) from None
            rows.append((ts_ns, inst.symbol, t.price, quantity, side, t.execId, recv_ns, sequence_or_none(t.seq)))
        for row in rows:
            out.add(*row)
        return len(rows)

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        return Instrument.make(f"{base}{quote}", base, quote)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        frames: list[Frame] = []
        previous: float | None = None
        for start in range(0, len(trades), FRAME_TRADES):
            data = []
            last_ms = 0
            for t in trades[start : start + FRAME_TRADES]:
                ms = t.ts_ns // 1_000_000
                last_ms = max(last_ms, ms)
                row: dict[str, object] = {
                    "i": t.trade_id,
                    "T": ms,
                    "p": num_text(t.price),
                    "v": num_text(t.quantity),
                    "S": _WIRE_SIDE[t.side],
                    "s": inst.venue_symbol,
                }
                if self.futures:
                    row["L"] = _tick(previous, t.price)
                    previous = t.price
                row.update(BT=False, RPI=False)
                if t.sequence_number is not None and t.sequence_number != NO_SEQUENCE:
                    row["seq"] = t.sequence_number
                data.append(row)
            push = {"topic": TOPIC + inst.venue_symbol, "type": "snapshot", "ts": last_ms + 2, "data": data}
            frames.append(json_body(push).decode())
        return frames

    def answer(self, frame: Frame) -> Answer:
        try:
            req = msgspec.json.decode(frame)
        except (msgspec.DecodeError, ValueError, TypeError):
            return Answer([self._reply("", None, success=False, message="error:request not supported")])
        if not isinstance(req, dict):
            return Answer([self._reply("", None, success=False, message="error:request not supported")])
        op, req_id = req.get("op"), req.get("req_id")

        def fail(message: str) -> Answer:
            return Answer([self._reply(str(op or ""), req_id, success=False, message=message)])

        if op == "ping":
            return Answer([self._reply("ping", req_id, message="pong")])
        if op not in ("subscribe", "unsubscribe"):
            return fail(f"error:handler not found,op:{op}")
        args = req.get("args")
        if not isinstance(args, list) or not args:
            return fail("error:args is empty")
        if not self.futures and len(args) > SPOT.topics_per_message:
            return fail(f"error:args size >{SPOT.topics_per_message}")
        bad = [a for a in args if not isinstance(a, str) or not a.startswith(TOPIC) or len(a) == len(TOPIC)]
        if bad:
            return fail(f"error:handler not found,topic:{bad[0]}")
        names = [a[len(TOPIC) :] for a in args]
        ack = [self._reply(op, req_id, message="" if self.futures else op)]
        if op == "subscribe":
            return Answer(ack, subscribe=names)
        return Answer(ack, unsubscribe=names)

    def _reply(self, op: str, req_id: object, *, success: bool = True, message: str) -> str:
        """Bybit's control reply; linear always carries ``req_id`` (empty when the request had none)."""
        body: dict[str, object] = {"success": success, "ret_msg": message, "conn_id": f"replay-{self.spec.connector}"}
        if req_id is not None or self.futures:
            body["req_id"] = "" if req_id is None else str(req_id)
        body["op"] = op
        return json_body(body).decode()

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if path == "/v5/market/instruments-info":
            rows = [
                {
                    "symbol": i.venue_symbol,
                    "baseCoin": i.base,
                    "quoteCoin": i.quote,
                    "status": "Trading",
                    **({"contractType": "LinearPerpetual", "settleCoin": i.quote} if self.futures else {}),
                }
                for i in instruments
            ]
            cursor = ""
            if self.futures:  # linear pages; the replay's cursor is a row offset
                offset, limit = _int(query.get("cursor"), 0), _int(query.get("limit"), 500)
                if offset is None or limit is None or not 1 <= limit <= PAGE_LIMIT:
                    return _error(10001, "params error: limit or cursor invalid")
                rows, cursor = rows[offset : offset + limit], str(offset + limit) if offset + limit < len(rows) else ""
            return _ok({"category": self.category, "list": rows, "nextPageCursor": cursor})
        if path == "/v5/market/recent-trade":
            cap = PAGE_LIMIT if self.futures else 60
            limit = _int(query.get("limit"), 500 if self.futures else 60)
            if limit is None or not 1 <= limit <= cap:
                return _error(10001, "params error: limit invalid")
            symbol = query.get("symbol", "")
            if symbol not in {i.venue_symbol for i in instruments}:
                return _error(10001, "params error: Symbol Invalid")
            trades = list(recent(symbol))[-limit:]
            body = [
                {
                    "execId": t.trade_id,
                    "symbol": symbol,
                    "price": num_text(t.price),
                    "size": num_text(t.quantity),
                    "side": _WIRE_SIDE[t.side],
                    "time": str(t.ts_ns // 1_000_000),
                    "isBlockTrade": False,
                    "isRPITrade": False,
                    **({"seq": str(t.sequence_number)} if t.sequence_number not in (None, NO_SEQUENCE) else {}),
                }
                for t in reversed(trades)  # newest first, as Bybit answers
            ]
            return _ok({"category": self.category, "list": body})
        return None


def _tick(previous: float | None, price: float) -> str:
    if previous is None or price == previous:
        return "ZeroPlusTick"
    return "PlusTick" if price > previous else "MinusTick"


def _int(text: str | None, default: int) -> int | None:
    if text is None:
        return default
    return int(text) if text.isascii() and text.isdigit() else None


def _ok(result: object) -> RestReply:
    return _envelope(0, "OK", result)


def _error(code: int, message: str) -> RestReply:
    return _envelope(code, message, {})


def _envelope(code: int, message: str, result: object) -> RestReply:
    now_ms = time.time_ns() // 1_000_000
    return RestReply(
        json_body({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms})
    )


def _instrument_page(url: str, body: bytes) -> InstrumentPage:
    try:
        reply = _INSTRUMENTS.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:
        raise VenueRequestError(url, f"unreadable instrument list: {exc}") from None
    if reply.retCode != 0 or reply.result is None:
        raise VenueRequestError(url, f"retCode {reply.retCode}: {reply.retMsg}")
    return reply.result


def parse_instruments(rows: Sequence[InstrumentRow], *, futures: bool) -> list[Instrument]:
    """Trading symbols; on linear only USDT perpetuals (no USDC perps, no dated futures)."""
    return [
        Instrument.make(r.symbol, r.baseCoin, r.quoteCoin)
        for r in rows
        if r.status == "Trading" and (not futures or (r.contractType == "LinearPerpetual" and r.quoteCoin == "USDT"))
    ]


def protocols() -> list[VenueProtocol]:
    return [BybitProtocol(SPOT), BybitProtocol(FUTURES)]
