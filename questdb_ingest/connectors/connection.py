"""The one WebSocket connection loop every venue uses.

A ``Connection`` owns a set of instruments on one socket: it connects (asking the venue for a
token URL where needed), subscribes in chunks at the venue's pace, sends the venue's heartbeat,
watches for silence (any frame or pong counts, so a quiet symbol never looks dead), reconnects
forever with exponential backoff + jitter (reset after a successful subscribe), resubscribes
everything after each reconnect, and rotates to a fresh socket before the venue's lifetime limit
with an overlap, so nothing is missed (DEDUP absorbs the overlap).

While the reader waits for its feed to hand trades over (the sender applies backpressure), we
are the silent side, not the venue: the watchdog and the pong timeout do not count that time,
so backpressure never turns into a reconnect (and a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine, Sequence
from typing import Protocol

from .core import Frame, Instrument, RestClient, VenueProtocol
from .ws import WsClient, WsClosedError, describe

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 << 20
ROTATION_OVERLAP = 2.0  # seconds both sockets run side by side during a rotation


class ConnectionListener(Protocol):
    """What a ``Connection`` reports to its feed."""

    def frame(self, conn: Connection, frame: Frame, recv_ns: int) -> bool:
        """Handle one frame; True asks the reader to ``await drain()`` before reading on."""

    async def drain(self) -> None: ...

    def connected(self, conn: Connection, at_ns: int) -> None: ...

    def disconnected(self, conn: Connection, reason: str, last_rx_ns: int, at_ns: int) -> None: ...

    def connect_failed(self, conn: Connection, reason: str) -> None: ...


class Backoff:
    """Exponential backoff with jitter: initial * 2^n capped at ``maximum``, times 0.5 to 1.5."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 60)
        return float(min(self.maximum, delay * random.uniform(0.5, 1.5)))

    def reset(self) -> None:
        self.attempt = 0


class Connection:
    def __init__(
        self,
        proto: VenueProtocol,
        rest: RestClient,
        listener: ConnectionListener,
        *,
        index: int,
        backoff: Backoff,
        rotate_after: float | None,
    ) -> None:
        self.proto = proto
        self.rest = rest
        self.listener = listener
        self.index = index
        self.backoff = backoff
        self.rotate_after = rotate_after
        self.instruments: list[Instrument] = []
        self.connected = False
        self.frames = 0
        self.connects = 0
        self.disconnects = 0
        self.rotations = 0
        self.last_rx_ns = 0
        self.last_error = ""
        self._ws: WsClient | None = None
        self._stopping = False
        self._waiting = False  # the reader waits on the feed (backpressure): silence is ours
        self.overlap_until = 0.0  # monotonic time until which a rotation runs two sockets side by side
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def scope(self) -> str:
        return f"{self.proto.spec.connector}#{self.index}"

    @property
    def room(self) -> int:
        return self.proto.spec.topics_per_connection - len(self.instruments)

    def assign(self, instruments: Sequence[Instrument]) -> None:
        """Add instruments; on a live socket they are subscribed at once (no restart)."""
        have = {x.venue_symbol for x in self.instruments}
        new = [i for i in instruments if i.venue_symbol not in have]
        if not new:
            return
        self.instruments.extend(new)
        if self._ws is not None and self.connected:
            wanted = self.instruments if self.proto.replaces_subscriptions else new
            self._spawn(self._subscribe(self._ws, list(wanted)))

    def _spawn(self, coro: Coroutine[object, object, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await _close(self._ws)
        for task in list(self._tasks):
            task.cancel()

    async def run(self) -> None:
        """Connect, serve, reconnect — until ``stop()``."""
        while not self._stopping:
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure to connect is retried; the reason is reported
                self.last_error = describe(exc)
                self.listener.connect_failed(self, self.last_error)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.backoff.reset()
            self.connected = True
            self.connects += 1
            self.listener.connected(self, time.time_ns())
            reason = await self._serve_with_rotation(ws)
            self.connected = False
            self._ws = None
            if self._stopping:
                return
            self.disconnects += 1
            self.last_error = reason
            log.warning("%s disconnected: %s", self.scope, reason)
            self.listener.disconnected(self, reason, self.last_rx_ns, time.time_ns())
            await asyncio.sleep(self.backoff.next_delay())

    async def _open(self) -> WsClient:
        url = await self.proto.connect_url(self.rest)
        ws = await WsClient.open(url, timeout=15, max_frame_bytes=MAX_FRAME_BYTES)
        self.last_rx_ns = time.time_ns()
        try:
            await self._subscribe(ws, list(self.instruments))
        except BaseException:
            await _close(ws)
            raise
        self._ws = ws
        return ws

    async def _subscribe(self, ws: WsClient, instruments: list[Instrument]) -> None:
        if not instruments:
            return
        for n, message in enumerate(self.proto.subscribe_messages(instruments)):
            if n:
                await asyncio.sleep(self.proto.spec.subscribe_pause)
            await ws.send(message)

    async def _serve_with_rotation(self, ws: WsClient) -> str:
        current = ws
        serve: asyncio.Task[str] = asyncio.create_task(self._serve(current))
        wait_for = self.rotate_after
        while True:
            done, _ = await asyncio.wait({serve}, timeout=wait_for)
            if serve in done:
                await _close(current)
                return serve.result()
            try:
                fresh = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the old socket and try again a little later
                log.warning("%s rotation failed: %s", self.scope, describe(exc))
                wait_for = min(60.0, self.rotate_after or 60.0)
                continue
            self.rotations += 1
            self.overlap_until = time.monotonic() + ROTATION_OVERLAP + 1.0
            log.info("%s rotated to a fresh connection", self.scope)
            self._spawn(_retire(current, serve))
            current = fresh
            serve = asyncio.create_task(self._serve(current))
            wait_for = self.rotate_after

    async def _serve(self, ws: WsClient) -> str:
        tasks = {
            asyncio.create_task(self._read(ws)),
            asyncio.create_task(self._heartbeat(ws)),
            asyncio.create_task(self._watchdog()),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        task = done.pop()
        exc = task.exception()
        return describe(exc) if exc is not None else str(task.result())

    async def _read(self, ws: WsClient) -> str:
        listener = self.listener
        try:
            while True:
                batch = await ws.frames()
                now = time.time_ns()
                self.last_rx_ns = now
                self.frames += len(batch)
                for frame in batch:
                    if listener.frame(self, frame, now):
                        self._waiting = True
                        try:
                            await listener.drain()
                        finally:
                            self._waiting = False
                            self.last_rx_ns = time.time_ns()
        except WsClosedError as exc:
            return describe(exc)

    async def _heartbeat(self, ws: WsClient) -> str:
        spec = self.proto.spec
        while True:
            await asyncio.sleep(spec.ping_interval)
            message = self.proto.ping_message() if spec.app_ping else None
            if message is not None:
                await ws.send(message)
                continue
            waiter = await ws.ping()
            try:
                await asyncio.wait_for(waiter, timeout=spec.watchdog_timeout)
            except TimeoutError:
                if self._waiting:
                    continue  # we stopped reading the socket, so the pong waits unread
                return f"heartbeat: no pong within {spec.watchdog_timeout:.0f} s"
            self.last_rx_ns = time.time_ns()

    async def _watchdog(self) -> str:
        timeout = self.proto.spec.watchdog_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            if self._waiting:
                continue
            silent = (time.time_ns() - self.last_rx_ns) / 1e9
            if silent > timeout:
                return f"watchdog: nothing received for {silent:.1f} s (limit {timeout:.0f} s)"


async def _retire(ws: WsClient, serve: asyncio.Task[str]) -> None:
    """Let a rotated-out socket overlap the new one briefly, then close it cleanly."""
    await asyncio.sleep(ROTATION_OVERLAP)
    await _close(ws)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(serve, timeout=5)


async def _close(ws: WsClient) -> None:
    try:
        await ws.close(timeout=2)
    except (OSError, WsClosedError):
        ws.abort()
