"""The local replay server: every configured venue on one loopback port, over real sockets.

``/<connector>/ws`` speaks the venue's WebSocket protocol (greeting, acks, trade frames),
``/<connector>/<path>`` its REST endpoints (symbol list, recent trades, token) and ``/_replay/``
is the control API (stats, faults, listings, rate, pause). Connector code runs unchanged against
``VenueSpec.with_base_url(base_url)``, so tests exercise real reconnects, gaps and backfills
without reaching an exchange.

Trades are generated per tick for instruments some connection has subscribed, encoded once per
instrument and written once per connection per tick (see ``wire``). A client that cannot keep
up is cut, as venues do, rather than slowing every other connection down.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from ...errors import ConfigError
from ...models import Trade
from ...pacing import Pacer, RateSchedule
from ..core import Frame, Instruments, TradeColumns, VenueProtocol, json_body
from ..registry import connector
from . import wire
from .config import KRW_CONNECTORS, ReplayConfig
from .generator import Batch, TradeGenerator, universe
from .session import RecordedFrame, read_session

log = logging.getLogger(__name__)

# A client that keeps more than this unread for SLOW_GRACE seconds (or 4x this at all) is cut,
# as venues cut slow consumers.
MAX_BUFFER = 64 * 1024 * 1024
SLOW_GRACE = 3.0
# Session playback waits while a connection has more unsent data than this (bounded backlog).
PLAYBACK_BUFFER = 256 * 1024
PLAYBACK_CHUNK = 256  # recorded frames per write at most
PLAYBACK_TICK = 0.005  # seconds between paced playback writes at least
FAULT_KINDS = ("drop", "stall", "malformed")
_RATE_KEYS = ("rate", "burst_rate", "burst_every", "burst_seconds", "max_trades")
_PING_PAYLOAD = b"replay"


class _Conn:
    """One client WebSocket and what it was sent."""

    __slots__ = (
        "behind_since",
        "frames_sent",
        "id",
        "last_rx",
        "pending",
        "playback",
        "stalled_until",
        "subscribed",
        "trades_delivered",
        "trades_lost",
        "transport",
        "venue",
        "ws",
    )

    def __init__(self, cid: int, venue: _Venue, ws: web.WebSocketResponse, transport: asyncio.Transport, now: float):
        self.id = cid
        self.venue = venue
        self.ws = ws
        self.transport = transport
        self.subscribed: set[str] = set()
        self.stalled_until = 0.0
        self.frames_sent = 0
        self.trades_delivered = 0
        self.trades_lost = 0
        self.pending: list[bytes] = []
        self.last_rx = now
        self.playback: asyncio.Task[None] | None = None
        self.behind_since = 0.0

    @property
    def closing(self) -> bool:
        return self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Hand bytes to the socket; cut a client that stops reading (as venues cut slow consumers)."""
        transport = self.transport
        if transport.is_closing():
            return
        backlog = transport.get_write_buffer_size()
        if backlog <= MAX_BUFFER:
            self.behind_since = 0.0
        else:
            now = time.monotonic()
            self.behind_since = self.behind_since or now
            if backlog > 4 * MAX_BUFFER or now - self.behind_since > SLOW_GRACE:
                log.warning("%s connection %d is too slow (%d bytes unread); cutting it", self.venue.name, self.id,
                            backlog)  # fmt: skip
                self.venue.slow_drops += 1
                transport.abort()
                return
        transport.write(data)

    def flush(self) -> None:
        data = b"".join(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending.clear()
        self.write(data)

    def stats(self, now: float) -> dict[str, object]:
        return {
            "id": self.id,
            "subscribed": len(self.subscribed),
            "frames_sent": self.frames_sent,
            "trades_delivered": self.trades_delivered,
            "trades_lost": self.trades_lost,
            "stalled": now < self.stalled_until,
        }


class _Venue:
    """One connector's protocol, connections, recent trades and counters."""

    def __init__(self, name: str, protocol: VenueProtocol, recent_limit: int) -> None:
        self.name = name
        self.protocol = protocol
        self.recent_limit = recent_limit
        self.conns: dict[int, _Conn] = {}
        self.subscribers: dict[str, set[_Conn]] = {}
        self.recent: dict[str, deque[Trade]] = {}
        self.session: list[RecordedFrame] = []
        self.session_trades: list[int] = []
        self.session_wire: list[bytes] = []  # each recorded frame already framed for the wire
        self.generated = 0
        self.price_sum = 0.0
        self.quantity_sum = 0.0
        self.by_symbol: dict[str, int] = {}
        self.frames_sent = 0
        self.trades_delivered = 0
        self.trades_lost = 0
        self.malformed_sent = 0
        self.connections_total = 0
        self.drops = 0
        self.slow_drops = 0
        self.timeouts = 0
        self.errors = 0
        self.last_error = ""

    def recent_trades(self, venue_symbol: str) -> list[Trade]:
        return list(self.recent.get(venue_symbol, ()))

    def open_conns(self) -> list[_Conn]:
        return [c for c in self.conns.values() if not c.closing]

    def stats(self, now: float, instruments: int, active: int) -> dict[str, object]:
        open_conns = self.open_conns()
        return {
            "generated": {
                "count": self.generated,
                "price_sum": self.price_sum,
                "quantity_sum": self.quantity_sum,
                "by_symbol": dict(self.by_symbol),
            },
            "frames_sent": self.frames_sent,
            "trades_delivered": self.trades_delivered,
            "trades_lost": self.trades_lost,
            "malformed_sent": self.malformed_sent,
            "open_connections": len(open_conns),
            "connections_total": self.connections_total,
            "subscribed": sorted(set().union(*(c.subscribed for c in open_conns))),
            "drops": self.drops,
            "slow_drops": self.slow_drops,
            "timeouts": self.timeouts,
            "instruments": instruments,
            "active_instruments": active,
            "errors": self.errors,
            "last_error": self.last_error,
            "connections": [c.stats(now) for c in open_conns],
        }

    def note_error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{what}: {exc!r}"
        if self.errors <= 3:
            log.error("%s %s failed: %r", self.name, what, exc)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=json_body(payload), status=status, content_type="application/json")


def _refused(exc: ConfigError) -> web.Response:
    return _json({"error": str(exc), "key": exc.key}, 400)


class ReplayServer:
    """Pretends to be the configured venues on ``127.0.0.1`` (``start`` → base URL, ``stop``)."""

    def __init__(self, config: ReplayConfig | None = None) -> None:
        self.config = config or ReplayConfig()
        self.base_url = ""
        self.generated_total = 0
        # Microseconds since the epoch: a restarted server continues above any id it handed out.
        self.generator = TradeGenerator(seed=self.config.seed, id_base=time.time_ns() // 1_000)
        self._venues: dict[str, _Venue] = {}
        for name in self.config.connectors:
            try:
                proto = connector(name).protocol()
            except ModuleNotFoundError as exc:
                raise ConfigError("replay.connectors", f"{name}: its venue module is not available ({exc})") from None
            self._venues[name] = _Venue(name, proto, self.config.recent_limit)
            spec = proto.spec
            self.generator.add_venue(
                name, spec.exchange, spec.market_type, universe(proto, self.config.symbols),
                per_instrument_ids=proto.contiguous_ids,
            )  # fmt: skip
        if self.config.session_dir is not None:
            self._load_session(self.config.session_dir)
        self._runner: web.AppRunner | None = None
        self._running: asyncio.Event | None = None
        self._pacer: Pacer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_conn = 0
        self._port = 0

    # ---- lifecycle --------------------------------------------------------------------
    @property
    def session_mode(self) -> bool:
        return self.config.session_dir is not None

    async def start(self) -> str:
        """Bind, start generating (or wait for session clients) and return ``http://127.0.0.1:<port>``."""
        if self._runner is not None:
            raise RuntimeError("replay server already started")
        self._running = asyncio.Event()
        self._running.set()
        app = web.Application(client_max_size=1 << 20)
        router = app.router
        router.add_get("/_replay/stats", self._h_stats)
        router.add_post("/_replay/fault", self._h_fault)
        router.add_post("/_replay/list", self._h_list)
        router.add_post("/_replay/rate", self._h_rate)
        router.add_post("/_replay/pause", self._h_pause)
        router.add_post("/_replay/resume", self._h_resume)
        router.add_route("*", "/_replay/{tail:.*}", self._h_unknown)
        router.add_get("/{connector}/ws", self._h_ws)
        router.add_route("*", "/{connector}/{path:.*}", self._h_rest)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.bind_host, self.config.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self.base_url = f"http://{self.config.bind_host}:{self._port}"
        if not self.session_mode:
            self._spawn(self._generate_loop(), "generator")
        return self.base_url

    async def stop(self) -> None:
        """Close every client (close frame 1001), stop generating and release the port."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._tasks):
            task.cancel()
        conns = [c for v in self._venues.values() for c in v.open_conns()]
        await asyncio.gather(*(self._close(c) for c in conns))
        await runner.cleanup()

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def run_forever(
        self,
        *,
        ready: Callable[[str], None] | None = None,
        report: Callable[[dict[str, Any]], None] | None = None,
        report_every: float = 5.0,
    ) -> None:
        """Serve until SIGINT/SIGTERM (the CLI), calling ``report(stats)`` every ``report_every`` s."""
        asyncio.run(self._serve_until_signal(ready, report, report_every))

    async def _serve_until_signal(
        self,
        ready: Callable[[str], None] | None,
        report: Callable[[dict[str, Any]], None] | None,
        report_every: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            base = await self.start()
            if ready is not None:
                ready(base)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), report_every)
                if report is not None and not stop.is_set():
                    report(self.stats())
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()

    def ws_url(self, name: str) -> str:
        return f"ws://{self.config.bind_host}:{self._port}/{name}/ws"

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"replay {what}")
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("replay %s stopped: %r", what, t.exception())

        task.add_done_callback(done)
        return task

    @staticmethod
    async def _close(conn: _Conn) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=1001, message=b"replay server stopping"), 1.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            conn.transport.abort()

    # ---- generation -------------------------------------------------------------------
    def _schedule(self) -> RateSchedule:
        c = self.config
        return RateSchedule(c.rate, c.burst_rate, c.burst_every, c.burst_seconds)

    async def _generate_loop(self) -> None:
        assert self._running is not None
        loop = asyncio.get_running_loop()
        tick = self.config.tick
        pacer = self._pacer = Pacer(self._schedule(), loop.time())
        last_ns = time.time_ns()
        next_t = loop.time()
        while True:
            next_t += tick
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
                if delay < -10 * tick:  # fell behind: skip ticks, the pacer still counts the time
                    next_t = loop.time()
            if not self._running.is_set():
                await self._running.wait()
                pacer.restart(loop.time())
                last_ns = time.time_ns()
                continue
            n = pacer.due(loop.time())
            if self.config.max_trades is not None:
                n = min(n, self.config.max_trades - self.generated_total)
            if n <= 0:
                continue
            end_ns = time.time_ns()
            self._dispatch(self.generator.generate(n, last_ns, end_ns), loop.time())
            last_ns = end_ns

    def _dispatch(self, batches: Iterable[Batch], now: float) -> None:
        """Count, remember and send one tick's trades (one socket write per connection)."""
        touched: list[_Conn] = []
        venues = self._venues
        for batch in batches:
            venue = venues[batch.connector]
            trades = batch.trades
            n = len(trades)
            vs = batch.inst.venue_symbol
            self.generated_total += n
            venue.generated += n
            venue.price_sum += batch.price_sum
            venue.quantity_sum += batch.quantity_sum
            venue.by_symbol[vs] = venue.by_symbol.get(vs, 0) + n
            recent = venue.recent.get(vs)
            if recent is None:
                recent = venue.recent[vs] = deque(maxlen=venue.recent_limit)
            recent.extend(trades)
            subscribers = venue.subscribers.get(vs)
            if not subscribers:
                continue
            data: bytes | None = None
            frames = 0
            for conn in subscribers:
                if now < conn.stalled_until or conn.closing:
                    conn.trades_lost += n
                    venue.trades_lost += n
                    continue
                if data is None:
                    try:
                        encoded = venue.protocol.encode_trades(batch.inst, trades)
                    except Exception as exc:  # a venue encoder bug must not stop the other venues
                        venue.note_error(f"encode_trades({vs})", exc)
                        conn.trades_lost += n
                        venue.trades_lost += n
                        continue
                    data = wire.encode(encoded)
                    frames = len(encoded)
                if not conn.pending:
                    touched.append(conn)
                conn.pending.append(data)
                conn.frames_sent += frames
                conn.trades_delivered += n
                venue.frames_sent += frames
                venue.trades_delivered += n
        for conn in touched:
            conn.flush()

    # ---- sessions ---------------------------------------------------------------------
    def _load_session(self, path: Path) -> None:
        """Recorded frames per connector, their trade counts, and the instruments they mention."""
        for name, frames in read_session(path).items():
            venue = self._venues.get(name)
            if venue is None or not frames:
                continue
            proto = venue.protocol
            parse = proto.make_parser(Instruments(self.generator.instruments(name)))
            out = TradeColumns()
            counts: list[int] = []
            symbols: set[str] = set()
            for rec in frames:
                try:
                    counts.append(parse(rec.frame, rec.recv_ns, out))
                except Exception:  # acks, errors and anything the parser refuses carry no trades
                    counts.append(0)
                symbols.update(out.symbol)
                out.clear()
            for symbol in sorted(symbols):
                base, _, quote = symbol.partition("-")
                if base and quote:
                    try:
                        self.generator.add_instrument(name, proto.instrument_for(base, quote))
                    except Exception as exc:  # an odd recorded symbol only costs its REST listing
                        venue.note_error(f"instrument_for({symbol})", exc)
            venue.session = frames
            venue.session_trades = counts
            venue.session_wire = [wire.encode([rec.frame]) for rec in frames]

    async def _play(self, conn: _Conn) -> None:
        """The connector's recording to one client, paced by recorded gaps / ``speed``.

        Frames were put in wire form at load time; every frame due is sent in one write (up to
        ``PLAYBACK_CHUNK``), so playback costs little more than the socket writes themselves."""
        assert self._running is not None
        loop = asyncio.get_running_loop()
        venue = conn.venue
        frames, counts, encoded = venue.session, venue.session_trades, venue.session_wire
        offsets = [(rec.recv_ns - frames[0].recv_ns) / 1e9 for rec in frames]
        while True:
            start = loop.time()
            i = 0
            while i < len(frames):
                if not self._running.is_set():
                    paused = loop.time()
                    await self._running.wait()
                    start += loop.time() - paused
                speed = self.config.speed
                end = min(i + PLAYBACK_CHUNK, len(frames))
                if speed > 0:
                    elapsed = (loop.time() - start) * speed
                    if offsets[i] > elapsed:
                        # Wake at most every PLAYBACK_TICK: a wake-up per frame would cost more than the frames.
                        await asyncio.sleep(max(PLAYBACK_TICK, (offsets[i] - elapsed) / speed))
                        continue
                    end = bisect.bisect_right(offsets, elapsed, i, end)
                while conn.transport.get_write_buffer_size() > PLAYBACK_BUFFER and not conn.closing:
                    await asyncio.sleep(0.005)
                if conn.closing:
                    return
                self._send_wire(conn, b"".join(encoded[i:end]), end - i, sum(counts[i:end]), loop.time())
                i = end
                if speed <= 0:
                    await asyncio.sleep(0)
            if not self.config.loop:
                return

    # ---- connections ------------------------------------------------------------------
    def _send(self, conn: _Conn, frames: list[Frame] | list[str], trades: int, now: float) -> bool:
        """Frames to one client now, unless it is stalled (then its trades count as lost)."""
        return self._send_wire(conn, wire.encode(frames), len(frames), trades, now)

    def _send_wire(self, conn: _Conn, data: bytes, frames: int, trades: int, now: float) -> bool:
        """``frames`` frames already in wire form (see ``_send``)."""
        venue = conn.venue
        if conn.closing:
            return False
        if now < conn.stalled_until:
            conn.trades_lost += trades
            venue.trades_lost += trades
            return False
        conn.write(data)
        conn.frames_sent += frames
        venue.frames_sent += frames
        conn.trades_delivered += trades
        venue.trades_delivered += trades
        return True

    def _venue(self, request: web.Request) -> _Venue:
        venue = self._venues.get(request.match_info["connector"])
        if venue is None:
            raise web.HTTPNotFound(
                text=json_body({"code": 404, "msg": f"unknown connector; serving {', '.join(self._venues)}"}).decode(),
                content_type="application/json",
            )
        return venue

    async def _h_ws(self, request: web.Request) -> web.StreamResponse:
        venue = self._venue(request)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        loop = asyncio.get_running_loop()
        self._next_conn += 1
        conn = _Conn(self._next_conn, venue, ws, transport, loop.time())
        venue.conns[conn.id] = conn
        venue.connections_total += 1
        heartbeat = asyncio.create_task(self._heartbeat(conn))
        try:
            greeting = venue.protocol.greeting()
            if greeting:
                self._send(conn, greeting, 0, loop.time())
            while True:
                msg = await ws.receive()
                conn.last_rx = loop.time()
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    self._on_client_frame(conn, msg.data)
                elif msg.type is WSMsgType.PING:
                    if loop.time() >= conn.stalled_until:
                        conn.write(wire.control(wire.PONG, msg.data))
                elif msg.type is not WSMsgType.PONG:
                    break  # close, closing, closed or error
        finally:
            heartbeat.cancel()
            if conn.playback is not None:
                conn.playback.cancel()
            for vs in list(conn.subscribed):
                self._unsubscribe(conn, vs)
            venue.conns.pop(conn.id, None)
        return ws

    async def _heartbeat(self, conn: _Conn) -> None:
        """WebSocket pings every ``heartbeat`` s; a client silent for 3 periods is cut (venues do)."""
        loop = asyncio.get_running_loop()
        period = self.config.heartbeat
        while not conn.closing:
            await asyncio.sleep(period)
            now = loop.time()
            if now < conn.stalled_until:
                continue
            if now - max(conn.last_rx, conn.stalled_until) > 3 * period:
                conn.venue.timeouts += 1
                conn.transport.abort()
                return
            conn.write(wire.control(wire.PING, _PING_PAYLOAD))

    def _on_client_frame(self, conn: _Conn, frame: Frame) -> None:
        venue = conn.venue
        answer = venue.protocol.answer(frame)
        if answer.replies:
            self._send(conn, answer.replies, 0, asyncio.get_running_loop().time())
        for vs in answer.unsubscribe:
            self._unsubscribe(conn, vs)
        if not answer.subscribe:
            return
        if venue.protocol.replaces_subscriptions:
            for vs in conn.subscribed - set(answer.subscribe):
                self._unsubscribe(conn, vs)
        for vs in answer.subscribe:
            conn.subscribed.add(vs)
            venue.subscribers.setdefault(vs, set()).add(conn)
            self.generator.activate(venue.name, vs)
        if venue.session and conn.playback is None:
            conn.playback = asyncio.create_task(self._play(conn))

    @staticmethod
    def _unsubscribe(conn: _Conn, vs: str) -> None:
        conn.subscribed.discard(vs)
        subscribers = conn.venue.subscribers.get(vs)
        if subscribers is not None:
            subscribers.discard(conn)

    async def _h_rest(self, request: web.Request) -> web.StreamResponse:
        venue = self._venue(request)
        query: dict[str, str] = {}
        for key, value in request.query.items():
            query.setdefault(key, value)
        path = "/" + request.match_info["path"]
        reply = venue.protocol.serve_rest(
            request.method,
            path,
            query,
            self.generator.instruments(venue.name),
            venue.recent_trades,
            self.ws_url(venue.name),
        )
        if reply is None:
            return _json({"code": 404, "msg": f"no such endpoint: {request.method} {path}"}, 404)
        return web.Response(body=reply.body, status=reply.status, content_type="application/json")

    # ---- control ----------------------------------------------------------------------
    def _select(self, name: str) -> list[_Venue]:
        if name == "all":
            return list(self._venues.values())
        venue = self._venues.get(name)
        if venue is None:
            raise ConfigError("connector", f"{name!r} is not served here; serving: all, {', '.join(self._venues)}")
        return [venue]

    def stats(self) -> dict[str, Any]:
        """Counters per connector (what was generated, sent, lost, and to whom)."""
        now = asyncio.get_running_loop().time() if self._runner is not None else 0.0
        gen = self.generator
        return {
            "base_url": self.base_url,
            "mode": "session" if self.session_mode else "generate",
            "paused": self._running is not None and not self._running.is_set(),
            "generated_total": self.generated_total,
            "max_trades": self.config.max_trades,
            "rate": {key: getattr(self.config, key) for key in _RATE_KEYS[:4]},
            "connectors": {
                name: venue.stats(
                    now,
                    len(gen.instruments(name)),
                    sum(1 for vs in gen.instruments(name) if gen.is_active(name, vs.venue_symbol)),
                )
                for name, venue in self._venues.items()
            },
        }

    def fault(self, name: str, kind: str, seconds: float = 5.0) -> dict[str, Any]:
        """Break the connections of ``name`` (or ``all``): drop, stall for ``seconds``, or malformed."""
        if kind not in FAULT_KINDS:
            raise ConfigError("kind", f"{kind!r} is not a fault; use one of {', '.join(FAULT_KINDS)}")
        if kind == "stall" and not seconds > 0:
            raise ConfigError("seconds", f"a stall needs seconds > 0, got {seconds}")
        venues = self._select(name)
        now = asyncio.get_running_loop().time()
        affected = 0
        for venue in venues:
            for conn in venue.open_conns():
                affected += 1
                if kind == "drop":
                    conn.transport.abort()  # no close frame: the client sees a dead TCP connection
                    venue.drops += 1
                elif kind == "stall":
                    conn.stalled_until = max(conn.stalled_until, now + seconds)
                elif self._send(conn, [self._garbage(conn)], 0, now):
                    venue.malformed_sent += 1
        return {"kind": kind, "connectors": [v.name for v in venues], "connections": affected}

    def _garbage(self, conn: _Conn) -> Frame:
        """A truncated trade frame in the venue's own framing (text or binary)."""
        venue = conn.venue
        listed = self.generator.instruments(venue.name)
        inst = next((i for i in listed if i.venue_symbol in conn.subscribed), listed[0])
        spec = venue.protocol.spec
        trade = Trade(ts_ns=time.time_ns(), exchange=spec.exchange, market_type=spec.market_type, symbol=inst.symbol,
                      price=1.0, quantity=inst.to_base(1), side="buy", trade_id="1")  # fmt: skip
        try:
            frames = venue.protocol.encode_trades(inst, [trade])
        except Exception as exc:
            venue.note_error("encode_trades(malformed fault)", exc)
            frames = []
        frame = frames[0] if frames else '{"e":"trade","s":"' + inst.venue_symbol + '","p":"1.'
        return frame[: max(1, len(frame) * 2 // 3)]

    def list_instrument(self, name: str, base: str, quote: str = "USDT") -> dict[str, str]:
        """List ``base``/``quote`` (KRW on Upbit/Bithumb); it trades once a client subscribes."""
        if not base.isalnum():
            raise ConfigError("base", f"expected an asset code like NEWCOIN, got {base!r}")
        listed: dict[str, str] = {}
        for venue in self._select(name):
            q = "KRW" if venue.name in KRW_CONNECTORS else quote.upper()
            inst = venue.protocol.instrument_for(base.upper(), q)
            self.generator.add_instrument(venue.name, inst, hot=True)
            if venue.subscribers.get(inst.venue_symbol):
                self.generator.activate(venue.name, inst.venue_symbol)
            listed[venue.name] = inst.venue_symbol
        return listed

    def set_rate(self, changes: Mapping[str, object]) -> dict[str, object]:
        """Change rate, bursts or ``max_trades`` (None: unlimited) while running."""
        unknown = sorted(set(changes) - set(_RATE_KEYS))
        if unknown:
            raise ConfigError(unknown[0], f"not a rate setting; known: {', '.join(_RATE_KEYS)}")
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "max_trades" and value is None:
                values[key] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"replay.{key}", f"expected a number, got {value!r}")
            if key == "max_trades":
                if not float(value).is_integer():
                    raise ConfigError("replay.max_trades", f"expected a whole number or null, got {value!r}")
                value = int(value)
            values[key] = value
        self.config = replace(self.config, **values)  # validates
        if self._pacer is not None:
            self._pacer.schedule = self._schedule()
        return {key: getattr(self.config, key) for key in _RATE_KEYS}

    def pause(self) -> None:
        if self._running is not None:
            self._running.clear()

    def resume(self) -> None:
        if self._running is not None:
            self._running.set()

    # ---- control over HTTP ------------------------------------------------------------
    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ConfigError("body", f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ConfigError("body", "expected a JSON object")
        return body

    async def _h_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats())

    async def _h_fault(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            seconds = body.get("seconds", 5.0)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ConfigError("seconds", f"expected a number, got {seconds!r}")
            return _json(self.fault(str(body.get("connector", "all")), str(body.get("kind", "")), float(seconds)))
        except ConfigError as exc:
            return _refused(exc)

    async def _h_list(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            if "base" not in body:
                raise ConfigError("base", "missing (the new asset, e.g. NEWCOIN)")
            name, base, quote = str(body.get("connector", "all")), str(body["base"]), str(body.get("quote", "USDT"))
            return _json({"listed": self.list_instrument(name, base, quote)})
        except ConfigError as exc:
            return _refused(exc)

    async def _h_rate(self, request: web.Request) -> web.Response:
        try:
            return _json(self.set_rate(await self._body(request)))
        except ConfigError as exc:
            return _refused(exc)

    async def _h_pause(self, request: web.Request) -> web.Response:
        self.pause()
        return _json({"paused": True})

    async def _h_resume(self, request: web.Request) -> web.Response:
        self.resume()
        return _json({"paused": False})

    async def _h_unknown(self, request: web.Request) -> web.Response:
        return _json({"error": f"no control endpoint {request.method} {request.path}"}, 404)
