"""Connectors wired to their destinations: every selected feed in one event loop, trades to a
sink (the sharded sender), health and gap rows to QuestDB, bad frames to dead-letter files."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..config import ConnectorSettings, Settings
from ..errors import SenderError
from ..ingest import GapWriter, HealthWriter
from ..ingest.backlog import BackloggedWriter
from ..models import GapEvent, HealthEvent, TradeBatch
from ..sender.router import ShardedSender
from .core import VenueProtocol
from .deadletter import DeadLetters
from .feed import EventSink, Feed, FrameTap, TradeSink
from .registry import Connector
from .rest import HttpRest

log = logging.getLogger(__name__)


class SenderSink:
    """Trades to the sharded sender; ``submit`` runs in a thread so backpressure never blocks the loop.

    Feeds hand over validated batches only (``TradeSink``), so the router does not check them again."""

    def __init__(self, sender: ShardedSender) -> None:
        self.sender = sender

    async def submit(self, batch: TradeBatch) -> None:
        await asyncio.to_thread(self.sender.submit, batch, validate=False)


@dataclass
class MemorySink:
    """Keeps batches in memory (tests, ``record`` without a database)."""

    keep: bool = True
    batches: list[TradeBatch] = field(default_factory=list)
    rows: int = 0

    async def submit(self, batch: TradeBatch) -> None:
        self.rows += len(batch)
        if self.keep:
            self.batches.append(batch)

    def all(self) -> TradeBatch:
        return TradeBatch.concat(self.batches)


@dataclass
class MemoryEvents:
    health_rows: list[HealthEvent] = field(default_factory=list)
    gap_rows: list[GapEvent] = field(default_factory=list)

    def health(self, event: HealthEvent) -> None:
        self.health_rows.append(event)

    def gap(self, event: GapEvent) -> None:
        self.gap_rows.append(event)


class WriterEvents:
    """Health and gap rows to QuestDB through the in-process writers (a few rows per second), written
    by a thread of their own: a feed only appends to a queue, so a QuestDB that is down, or accepts
    connections and never answers, can never stall the event loop the feeds run on.

    While QuestDB refuses or cannot be reached, rows wait in a bounded backlog and are retried
    with the next event (and every ``RETRY_S`` when none comes), so an outage never stops a
    connector and a gap row is not dropped.
    """

    RETRY_S = 2.0

    def __init__(self, settings: Settings) -> None:
        self.health_writer = BackloggedWriter(HealthWriter.from_settings(settings).open())
        self.gap_writer = BackloggedWriter(GapWriter.from_settings(settings).open())
        self.memory = MemoryEvents()
        self._queue: queue.SimpleQueue[HealthEvent | GapEvent | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="event-writer", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self.health_writer.dropped + self.gap_writer.dropped

    @property
    def waiting(self) -> int:
        """Rows not yet handed to QuestDB (queued for the writer thread or in a backlog)."""
        return self._queue.qsize() + len(self.health_writer.backlog) + len(self.gap_writer.backlog)

    def health(self, event: HealthEvent) -> None:
        self.memory.health(event)
        self._queue.put(event)

    def gap(self, event: GapEvent) -> None:
        self.memory.gap(event)
        self._queue.put(event)

    def _write_loop(self) -> None:
        while True:
            try:
                event = self._queue.get(timeout=self.RETRY_S)
            except queue.Empty:
                for writer in (self.health_writer, self.gap_writer):
                    if writer.backlog:
                        writer.retry()
                continue
            if event is None:
                return
            if isinstance(event, GapEvent):
                self.gap_writer.write(event)
            else:
                self.health_writer.write(event)

    def _close_writers(self) -> None:
        self.health_writer.close()
        self.gap_writer.close()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and close the writers, waiting at most ``timeout`` for a QuestDB that
        does not answer (what is left then is logged with its count, never silently dropped)."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("event rows: QuestDB did not take them in %.0fs; %d row(s) not written", timeout, self.waiting)
            return
        closer = threading.Thread(target=self._close_writers, name="event-close", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            log.error("event rows: closing the writers timed out (%.0fs); %d row(s) not written", timeout, self.waiting)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("feed %s stopped: %r", task.get_name(), task.exception())


def build_protocol(conn: Connector, settings: ConnectorSettings) -> VenueProtocol:
    """The connector's protocol, pointed at ``base_url`` (the replay server) and with heartbeat
    overrides applied when configured."""
    proto = conn.protocol()
    spec = proto.spec.with_base_url(settings.base_url) if settings.base_url else proto.spec
    if settings.ping_interval:
        spec = replace(spec, ping_interval=settings.ping_interval)
    if settings.watchdog_timeout:
        spec = replace(spec, watchdog_timeout=settings.watchdog_timeout)
    return proto if spec is proto.spec else type(proto)(spec)


class Pipeline:
    """Runs the feeds until ``stop()``; ``stop`` hands every parsed trade to the sink first.

    When the sink fails for good, every feed halts at once (``halt_all``) and ``halted`` is set,
    so the runner stops instead of capturing trades that can no longer be stored."""

    def __init__(
        self,
        settings: Settings,
        connectors: Sequence[Connector],
        *,
        sink: TradeSink,
        events: EventSink,
        session_id: str | None = None,
        tap: FrameTap | None = None,
    ) -> None:
        cs = settings.connectors
        self.settings = settings
        self.session_id = session_id or f"{time.time_ns():x}"
        self.rest = HttpRest(min_interval=0.0 if cs.base_url else 0.2)
        self.dead_letters = DeadLetters(cs.dead_letter_dir)
        self.feeds = [
            Feed(
                build_protocol(c, cs),
                settings=cs,
                rest=self.rest,
                sink=sink,
                events=events,
                dead_letters=self.dead_letters,
                session_id=self.session_id,
                tap=tap,
                on_halt=self._halted,
            )
            for c in connectors
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.halted = asyncio.Event()
        self.failure: SenderError | None = None

    def _halted(self, feed: Feed, exc: SenderError) -> None:
        """One feed found the sink dead: stop every feed's intake now, not one at a time."""
        if self.failure is None:
            self.failure = exc
        for other in self.feeds:
            if other is not feed:
                other.halt(exc)
        self.halted.set()

    @property
    def unsent(self) -> int:
        """Trades the feeds received but could not hand over (the sink had failed)."""
        return sum(f.stats.unsent for f in self.feeds)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(f.run(), name=f.name) for f in self.feeds]
        for task in self._tasks:
            task.add_done_callback(_report_crash)

    async def wait_ready(self, timeout: float) -> None:
        """Until every feed has its symbol list and has started its connections."""
        await asyncio.wait_for(asyncio.gather(*(f.ready.wait() for f in self.feeds)), timeout)

    async def stop(self) -> None:
        await asyncio.gather(*(f.stop() for f in self.feeds), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.rest.close()
        self.dead_letters.close()

    def feed(self, name: str) -> Feed:
        return next(f for f in self.feeds if f.name == name)
