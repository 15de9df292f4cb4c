"""``ApiServer``: the HTTP API as a child process of the service.

The service calls ``publish(snapshot, alerts)`` each tick (an encode and a memory copy into the
shared ``SnapshotChannel``, never a wait); the child serves every request from the newest
snapshot or from QuestDB. The child exits when told to, or on its own when the service process
is gone (it watches its parent), so no orphan keeps the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

from ..config import Settings
from ..errors import PumpwatchError
from .channel import SnapshotChannel, SnapshotTooLargeError, decode, encode
from .server import ApiApp

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
PARENT_CHECK_S = 1.0
NICE = 10  # the API process's scheduling priority below the service's


class SharedView:
    """The API process's view of the service: the newest snapshot in the channel (decoded once per
    publish), the settings, the recent alerts."""

    def __init__(self, settings: Settings, channel: SnapshotChannel) -> None:
        self.settings = settings
        self.channel = channel
        self._payload: bytes | None = None
        self._decoded: tuple[Any, list[dict[str, Any]]] | None = None

    def _current(self) -> tuple[Any, list[dict[str, Any]]]:
        payload = self.channel.read()
        if payload is None:
            raise PumpwatchError("the service has not published a snapshot yet")
        if payload != self._payload or self._decoded is None:
            self._payload, self._decoded = payload, decode(payload)
        return self._decoded

    def latest(self) -> Any:
        return self._current()[0]

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        return self._current()[1][:limit]


def _child(settings: Settings, channel_name: str, conn: Connection, parent: int) -> None:
    """The API process: serve until told to stop or the parent is gone. SIGINT/SIGTERM (a Ctrl-C or
    systemd signalling the whole group) are the service's to act on: the API keeps answering
    (``draining``) until the service stops it."""
    import signal

    from ..logs import configure, current

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICE)  # capture first: on a busy box the API waits, the feeds do not
    spec = current()
    if spec is not None:
        configure(spec)
    channel = SnapshotChannel.attach(channel_name)
    app = ApiApp(SharedView(settings, channel), settings)

    async def main() -> None:
        runner = web.AppRunner(app.application(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.api.host, settings.api.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            conn.send(("error", str(exc)))
            await runner.cleanup()
            return
        server: Any = site._server  # the bound socket tells the port when 0 (any free port) was asked for
        conn.send(("ready", int(server.sockets[0].getsockname()[1])))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)  # a message (or EOF: the parent closed its end) = stop
        try:
            while not stop.is_set() and os.getppid() == parent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PARENT_CHECK_S)
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        channel.close()


class ApiServer:
    """``ApiServer(settings).start()``; ``publish`` each tick; ``stop()``. ``url`` is where it listens."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = settings.api.host
        self.port = settings.api.port
        self.channel = SnapshotChannel.create()
        self.process: Any = None
        self._conn: Connection | None = None
        self.publish_errors = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> ApiServer:
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        self.process = ctx.Process(
            target=_child, args=(self.settings, self.channel.name, child_end, os.getpid()), name="pumpwatch-api",
            daemon=True,
        )  # fmt: skip
        self.process.start()
        child_end.close()
        self._conn = parent_end
        if not parent_end.poll(START_TIMEOUT_S):
            self.stop()
            raise PumpwatchError(f"the API process did not start within {START_TIMEOUT_S:.0f}s")
        kind, value = parent_end.recv()
        if kind != "ready":
            self.stop()
            raise PumpwatchError(f"the API cannot listen on {self.url}: {value} (api.host / api.port)")
        self.port = int(value)
        log.info("API on %s (health: %s/api/health, Prometheus: %s/metrics)", self.url, self.url, self.url)
        return self

    def publish(self, snapshot: Any, alerts: list[dict[str, Any]]) -> None:
        """The newest snapshot for the API (never blocks; a snapshot too large is skipped and counted)."""
        try:
            self.channel.publish(encode(snapshot, alerts))
        except SnapshotTooLargeError as exc:
            self.publish_errors += 1
            if self.publish_errors == 1:
                log.error("API: %s; the API keeps serving the previous snapshot", exc)

    def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop", None))
            self._conn.close()
            self._conn = None
        if self.process is not None:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
            self.process = None
        self.channel.close()
