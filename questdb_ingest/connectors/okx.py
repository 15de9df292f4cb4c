"""OKX v5 spot and USDT-margined perpetual (``-SWAP``) trades on the ``trades`` channel.

Quirks: both markets share one public URL and differ only by ``instId`` (``BTC-USDT`` vs
``BTC-USDT-SWAP``). ``ts`` is ms **as a string**; ``side`` is the taker side. SWAP ``sz`` is in
contracts, so base quantity = ``sz * ctVal`` (per instrument, from the REST list). The ``trades``
channel aggregates one taker order at one price into one row (``tradeId`` is the last fill's id,
``count`` the number of fills). The heartbeat is the text ``ping`` (not JSON), answered by the text
``pong``; the server drops a connection after 30 s without data. Errors arrive as
``{"event":"error","code","msg"}``. Subscribes are limited to 480 per hour per connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

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
    connector="okx_spot",
    exchange="okx",
    market_type="spot",
    ws_url="wss://ws.okx.com:8443/ws/v5/public",
    rest_url="https://www.okx.com",
    topics_per_connection=300,
    topics_per_message=100,  # ~5 KB of args, far below the 64 KB request cap
    subscribe_pause=0.5,
    ping_interval=20.0,  # must stay under the server's 30 s idle cut
    app_ping=True,
    watchdog_timeout=60.0,
)
# Same URL; only the instIds differ.
FUTURES = replace(SPOT, connector="okx_futures", market_type="futures")

CHANNEL = "trades"
FRAME_TRADES = 100  # rows per replayed push
REST_LIMIT = 500  # most rows /api/v5/market/trades returns
# Replay contract sizes (the real ones come from the instrument list).
_REPLAY_CT_VAL = {"BTC": "0.01", "ETH": "0.1"}


class OkxTrade(msgspec.Struct, frozen=True):
    instId: str  # noqa: N815 - venue field name
    tradeId: str  # noqa: N815
    px: float
    sz: float
    side: str
    ts: int  # ms, as a string
    seqId: int | str | None = None  # noqa: N815


class Arg(msgspec.Struct, frozen=True):
    channel: str = ""
    instId: str = ""  # noqa: N815


class Push(msgspec.Struct, frozen=True):
    arg: Arg
    data: list[OkxTrade]


class Control(msgspec.Struct, frozen=True):
    """Acks (``event: subscribe``), notices and errors."""

    event: str = ""
    code: str | int | None = None
    msg: str = ""


class InstrumentRow(msgspec.Struct, frozen=True):
    instId: str  # noqa: N815
    state: str = ""
    baseCcy: str = ""  # noqa: N815
    quoteCcy: str = ""  # noqa: N815
    settleCcy: str = ""  # noqa: N815
    ctVal: str = ""  # noqa: N815
    ctType: str = ""  # noqa: N815
    instFamily: str = ""  # noqa: N815
    uly: str = ""


class InstrumentsReply(msgspec.Struct, frozen=True):
    code: str | int
    msg: str = ""
    data: list[InstrumentRow] = msgspec.field(default_factory=list)


class TradesReply(msgspec.Struct, frozen=True):
    code: str | int
    msg: str = ""
    data: list[OkxTrade] = msgspec.field(default_factory=list)


_PUSH = msgspec.json.Decoder(Push, strict=False)
_CONTROL = msgspec.json.Decoder(Control)
_INSTRUMENTS = msgspec.json.Decoder(InstrumentsReply)
_TRADES = msgspec.json.Decoder(TradesReply, strict=False)
_SIDES = frozenset(("buy", "sell"))
_QUIET_EVENTS = frozenset(("subscribe", "unsubscribe", "notice", "channel-conn-count"))


def _control(frame: Frame, first_error: msgspec.DecodeError) -> int:
    """0 for acks and notices; VenueError for ``event: error``; FrameError for anything else."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.event.endswith("error"):
        raise VenueError(f"venue {msg.event} {msg.code}: {msg.msg}")
    if msg.event in _QUIET_EVENTS:
        return 0
    raise FrameError(f"unexpected frame: {first_error}")


def _is_ok(code: str | int) -> bool:
    return str(code) == "0"


class OkxProtocol(VenueProtocol):
    supports_backfill = True
    recent_page = REST_LIMIT

    @property
    def futures(self) -> bool:
        return self.spec.market_type == "futures"

    @property
    def inst_type(self) -> str:
        return "SWAP" if self.futures else "SPOT"

    def make_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        symbol_of = instruments.symbol_of
        futures = self.futures

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            if frame == "pong" or frame == b"pong":
                return 0
            try:
                msg = _PUSH.decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if msg.arg.channel != CHANNEL:
                raise FrameError(f"unexpected channel {msg.arg.channel!r}")
            rows = []
            for t in msg.data:
                if t.side not in _SIDES or not t.tradeId:
                    raise FrameError(f"bad trade: side={t.side!r} id={t.tradeId!r}")
                if futures:
                    inst = instruments.get(t.instId)
                    if inst is None:
                        raise FrameError(f"unknown instrument {t.instId!r} (no contract size)")
                    symbol, quantity = inst.symbol, inst.to_base(t.sz)
                else:
                    cached = symbols.get(t.instId)
                    if cached is None:
                        if not t.instId:
                            raise FrameError("trade without instId")
                        cached = symbols[t.instId] = symbol_of(t.instId)
                    symbol, quantity = cached, t.sz
                ts_ns = t.ts * 1_000_000
                rows.append((ts_ns, symbol, t.px, quantity, t.side, t.tradeId, recv_ns, sequence_or_none(t.seqId)))
            for row in rows:
                out.add(*row)
            return len(rows)

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        args = [{"channel": CHANNEL, "instId": inst.venue_symbol} for inst in instruments]
        step = self.spec.topics_per_message
        return [
            json_body({"id": str(self.next_id()), "op": "subscribe", "args": args[i : i + step]}).decode()
            for i in range(0, len(args), step)
        ]

    def ping_message(self) -> str:
        return "ping"

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        url = self.spec.rest_url + "/api/v5/public/instruments"
        body = await rest.get(url, {"instType": self.inst_type})
        try:
            reply = _INSTRUMENTS.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VenueRequestError(url, f"unreadable instrument list: {exc}") from None
        if not _is_ok(reply.code):
            raise VenueRequestError(url, f"code {reply.code}: {reply.msg}")
        return parse_instruments(reply.data, futures=self.futures)

    async def fetch_recent_trades(self, rest: RestClient, inst: Instrument, out: TradeColumns, recv_ns: int) -> int:
        url = self.spec.rest_url + "/api/v5/market/trades"
        body = await rest.get(url, {"instId": inst.venue_symbol, "limit": str(REST_LIMIT)})
        try:
            reply = _TRADES.decode(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VenueRequestError(url, f"unreadable recent trades: {exc}") from None
        if not _is_ok(reply.code):
            raise VenueRequestError(url, f"code {reply.code}: {reply.msg}")
        rows = []
        for t in reply.data:
            ts_ns, quantity = t.ts * 1_000_000, inst.to_base(t.sz)
            if t.side not in _SIDES or not t.tradeId:
                raise VenueRequestError(url, f"bad trade row {t!r}")
            try:
                check_trade_values(ts_ns, inst.symbol, t.px, quantity)
            except FrameError as exc:
                raise VenueRequestError(url, exc.reason) from None
            rows.append((ts_ns, inst.symbol, t.px, quantity, t.side, t.tradeId, recv_ns, sequence_or_none(t.seqId)))
        for row in rows:
            out.add(*row)
        return len(rows)

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        if self.futures:
            ct_val = _REPLAY_CT_VAL.get(base.upper(), "1")
            return Instrument.make(f"{base}-{quote}-SWAP", base, quote, multiplier=ct_val)
        return Instrument.make(f"{base}-{quote}", base, quote)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        frames: list[Frame] = []
        for start in range(0, len(trades), FRAME_TRADES):
            data = [_wire_trade(inst, t) for t in trades[start : start + FRAME_TRADES]]
            push = {"arg": {"channel": CHANNEL, "instId": inst.venue_symbol}, "data": data}
            frames.append(json_body(push).decode())
        return frames

    def answer(self, frame: Frame) -> Answer:
        if frame == "ping" or frame == b"ping":
            return Answer(["pong"])
        try:
            req = msgspec.json.decode(frame)
        except (msgspec.DecodeError, ValueError, TypeError):
            return Answer([_event_error(None, "60012", f"Invalid request: {_text(frame)[:64]}")])
        if not isinstance(req, dict):
            return Answer([_event_error(None, "60012", f"Invalid request: {_text(frame)[:64]}")])
        req_id, op, args = req.get("id"), req.get("op"), req.get("args")
        if op not in ("subscribe", "unsubscribe"):
            return Answer([_event_error(req_id, "60012", f"Invalid request: {_text(frame)[:64]}")])
        if not isinstance(args, list) or not args:
            return Answer([_event_error(req_id, "60013", "Invalid args")])
        replies, names = [], []
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst_id = arg.get("instId") if isinstance(arg, dict) else None
            if channel != CHANNEL or not isinstance(inst_id, str) or not inst_id:
                replies.append(
                    _event_error(req_id, "60018", f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist")
                )
                continue
            ack: dict[str, object] = {"id": req_id} if req_id is not None else {}
            ack.update(event=op, arg={"channel": CHANNEL, "instId": inst_id}, connId="replay01")
            replies.append(json_body(ack).decode())
            names.append(inst_id)
        if op == "subscribe":
            return Answer(replies, subscribe=names)
        return Answer(replies, unsubscribe=names)

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if path == "/api/v5/public/instruments":
            if query.get("instType", self.inst_type) != self.inst_type:
                return RestReply(json_body({"code": "0", "msg": "", "data": []}))
            return RestReply(
                json_body({"code": "0", "msg": "", "data": [self._instrument_row(i) for i in instruments]})
            )
        if path == "/api/v5/market/trades":
            limit_text = query.get("limit", "100")
            limit = int(limit_text) if limit_text.isascii() and limit_text.isdigit() else 0
            if not 1 <= limit <= REST_LIMIT:
                return RestReply(json_body({"code": "51000", "msg": "Parameter limit error", "data": []}), status=400)
            inst_id = query.get("instId", "")
            inst = next((i for i in instruments if i.venue_symbol == inst_id), None)
            if inst is None:
                body = {"code": "51001", "msg": f"Instrument ID {inst_id} does not exist.", "data": []}
                return RestReply(json_body(body), status=400)
            trades = list(recent(inst_id))[-limit:]
            rows = []
            for t in reversed(trades):  # newest first, as OKX answers
                row = _wire_trade(inst, t)
                rows.append({k: row[k] for k in ("instId", "side", "sz", "px", "source", "tradeId", "ts")})
            return RestReply(json_body({"code": "0", "msg": "", "data": rows}))
        return None

    def _instrument_row(self, inst: Instrument) -> dict[str, str]:
        pair = f"{inst.base}-{inst.quote}"
        if self.futures:
            return {
                "instType": "SWAP", "instId": inst.venue_symbol, "uly": pair, "instFamily": pair,
                "baseCcy": "", "quoteCcy": "", "settleCcy": inst.quote, "ctVal": _ratio_text(inst),
                "ctMult": "1", "ctValCcy": inst.base, "ctType": "linear", "state": "live",
            }  # fmt: skip
        return {
            "instType": "SPOT", "instId": inst.venue_symbol, "uly": "", "instFamily": "",
            "baseCcy": inst.base, "quoteCcy": inst.quote, "settleCcy": "", "ctVal": "",
            "ctMult": "", "ctValCcy": "", "ctType": "", "state": "live",
        }  # fmt: skip


def _wire_trade(inst: Instrument, t: Trade) -> dict[str, object]:
    row: dict[str, object] = {
        "instId": inst.venue_symbol,
        "tradeId": t.trade_id,
        "px": num_text(t.price),
        "sz": _contracts_text(inst, t.quantity),
        "side": t.side,
        "ts": str(t.ts_ns // 1_000_000),
        "count": "1",
        "source": "0",
    }
    if t.sequence_number is not None and t.sequence_number != NO_SEQUENCE:
        row["seqId"] = t.sequence_number
    return row


def _contracts_text(inst: Instrument, quantity: float) -> str:
    """``sz`` for a base quantity: the plain decimal when it parses back to ``quantity`` exactly,
    else the nearest float that does (not every base quantity has an exact contract preimage)."""
    if inst.size_num == inst.size_den:
        return num_text(quantity)
    text = format((Decimal(num_text(quantity)) * inst.size_den / inst.size_num).normalize(), "f")
    if inst.to_base(float(text)) == quantity:
        return text
    guess = inst.to_contracts(quantity)
    for candidate in (guess, math.nextafter(guess, -math.inf), math.nextafter(guess, math.inf)):
        if inst.to_base(candidate) == quantity:
            return num_text(candidate)
    return text


def _ratio_text(inst: Instrument) -> str:
    return format((Decimal(inst.size_num) / inst.size_den).normalize(), "f")


def _text(frame: Frame) -> str:
    return frame if isinstance(frame, str) else frame.decode("utf-8", "replace")


def _event_error(req_id: object, code: str, message: str) -> str:
    body: dict[str, object] = {"id": req_id} if req_id is not None else {}
    body.update(event="error", code=code, msg=message, connId="replay01")
    return json_body(body).decode()


def _pair(row: InstrumentRow) -> tuple[str, str] | None:
    """SWAP rows have empty base/quote; the pair comes from ``instFamily``, ``uly`` or ``instId``."""
    for text in (row.instFamily, row.uly, row.instId):
        parts = text.split("-")
        if len(parts) >= 2 and parts[0] and parts[1]:
            return parts[0], parts[1]
    return None


def parse_instruments(rows: Sequence[InstrumentRow], *, futures: bool) -> list[Instrument]:
    """Live instruments; on SWAP only USDT-settled linear contracts, each with its ``ctVal``."""
    result = []
    for r in rows:
        if r.state != "live":
            continue
        if not futures:
            if r.baseCcy and r.quoteCcy:
                result.append(Instrument.make(r.instId, r.baseCcy, r.quoteCcy))
            continue
        pair = _pair(r)
        if r.settleCcy != "USDT" or r.ctType != "linear" or pair is None:
            continue
        try:
            result.append(Instrument.make(r.instId, pair[0], pair[1], multiplier=r.ctVal))
        except (ValueError, ArithmeticError):  # missing or non-positive ctVal
            continue
    return result


def protocols() -> list[VenueProtocol]:
    return [OkxProtocol(SPOT), OkxProtocol(FUTURES)]
