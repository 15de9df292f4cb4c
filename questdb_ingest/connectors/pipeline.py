"""Connectors wired to their destinations: every selected feed in one event loop, trades to a
sink (the sharded sender), health and gap rows to QuestDB, bad frames to dead-letter files."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..config import ConnectorSettings, Settings
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
    """Health and gap rows to QuestDB through the in-process writers (a few rows per second).

    While QuestDB refuses or cannot be reached, rows wait in a bounded backlog and are retried
    with the next event, so an outage never stops a connector and a gap row is not dropped.
    """

    def __init__(self, settings: Settings) -> None:
        self.health_writer = BackloggedWriter(HealthWriter.from_settings(settings).open())
        self.gap_writer = BackloggedWriter(GapWriter.from_settings(settings).open())
        self.memory = MemoryEvents()

    @property
    def dropped(self) -> int:
        return self.health_writer.dropped + self.gap_writer.dropped

    def health(self, event: HealthEvent) -> None:
        self.memory.health(event)
        self.health_writer.write(event)

    def gap(self, event: GapEvent) -> None:
        self.memory.gap(event)
        self.gap_writer.write(event)

    def close(self) -> None:
        self.health_writer.close()
        self.gap_writer.close()


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
    """Runs the feeds until ``stop()``; ``stop`` hands every parsed trade to the sink first."""

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
            )
            for c in connectors
        ]
        self._tasks: list[asyncio.Task[None]] = []

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
