"""Hybrid mode assembled: ring buffer + sender behind one sink, the data manager, the rollback
manager and the listing detector, started and stopped together around the connector feeds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..connectors.feed import EventSink
from ..connectors.pipeline import Pipeline
from ..connectors.registry import Connector
from ..connectors.run import Tick, run_feeds
from ..errors import PumpwatchError
from ..ingest import ListingWriter, RolloutEventWriter
from ..ingest.backlog import BackloggedWriter
from ..models import RolloutEvent
from ..sender.router import ShardedSender
from .listing import ListingDetector, ListingTrigger, ListingWriterSink
from .manager import HybridDataManager, HybridSink
from .reader import QuestDBReader
from .ring import RingBuffer
from .rollback import RollbackManager, disk_usage
from .rollout import Rollout

log = logging.getLogger(__name__)


@dataclass
class HybridRuntime:
    settings: Settings
    ring: RingBuffer
    rollout: Rollout
    reader: QuestDBReader
    sink: HybridSink
    manager: HybridDataManager
    rollback: RollbackManager
    detector: ListingDetector | None
    event_writer: BackloggedWriter[RolloutEvent]
    listing_writer: ListingWriter | None = None
    pipeline: Pipeline | None = None  # the running feeds, once ``run_hybrid`` has started them
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        sender: ShardedSender | None,
        *,
        compare: bool = False,
        rollout_config: str | None = None,
        detect_listings: bool = True,
    ) -> HybridRuntime:
        """Everything hybrid mode needs; invalid rollout config raises ``ConfigError`` here, at start-up."""
        rollout = Rollout.from_settings(settings, rollout_config)
        ring = RingBuffer.from_settings(settings.hybrid)
        reader = QuestDBReader(settings)
        sink = HybridSink(ring, sender)
        compare_writer = HybridDataManager.compare_writer_for(settings) if compare else None
        manager = HybridDataManager(
            settings, ring, rollout, reader, sink=sink, compare=compare, compare_writer=compare_writer
        )
        event_writer = BackloggedWriter(RolloutEventWriter.from_settings(settings).open(), flush_each=True)
        data_dir = Path(settings.questdb.data_dir)
        rollback = RollbackManager(
            rollout,
            reader,
            disk_probe=lambda: disk_usage(data_dir),
            spool_probe=(lambda: sender.metrics().spool_bytes) if sender is not None else (lambda: None),
            record=event_writer.write,
        )
        detector = listing_writer = None
        if detect_listings:
            listing_writer = ListingWriter.from_settings(settings).open()
            detector = ListingDetector.from_settings(settings, manager, ListingWriterSink(listing_writer))
        return cls(settings, ring, rollout, reader, sink, manager, rollback, detector, event_writer, listing_writer)

    async def start(self, stop: asyncio.Event) -> None:
        self._tasks.append(asyncio.create_task(self.rollback.run(stop), name="rollback manager"))
        if self.detector is not None:
            self.detector.listeners.append(self._refresh_feeds)
            await self.detector.start()

    def _refresh_feeds(self, trigger: ListingTrigger) -> None:
        """A listing: every feed re-reads its symbol list now, so the new pairs are subscribed at once."""
        if self.pipeline is None:
            return
        for feed in self.pipeline.feeds:
            task = asyncio.create_task(feed.refresh(), name=f"refresh {feed.name} for {trigger.base}")
            self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the detector (a window whose end has passed is still collected) and the checks."""
        if self.detector is not None:
            await self.detector.stop(timeout=self.settings.hybrid.compare_sync_timeout + 10)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        """After the sender is drained: flush the event rows and close connections."""
        if self.listing_writer is not None:
            try:
                self.listing_writer.close()
            except PumpwatchError as exc:
                log.error("listing_events: rows not written at shutdown: %s", exc)
        self.manager.close()
        self.event_writer.close()


@contextlib.asynccontextmanager
async def running(runtime: HybridRuntime, stop: asyncio.Event) -> AsyncIterator[HybridRuntime]:
    """The rollback manager and listing detector for as long as the body runs (sets ``stop`` after)."""
    await runtime.start(stop)
    try:
        yield runtime
    finally:
        stop.set()
        await runtime.stop()


async def run_hybrid(
    settings: Settings,
    connectors: Sequence[Connector],
    runtime: HybridRuntime,
    *,
    events: EventSink,
    duration: float | None,
    on_tick: Tick | None = None,
    stop: asyncio.Event | None = None,
) -> Pipeline:
    """``run_feeds`` with the hybrid sink, plus the rollback manager and listing detector around it."""
    stop = stop or asyncio.Event()

    def tick(pipeline: Pipeline, elapsed: float) -> None:
        runtime.pipeline = pipeline
        if on_tick is not None:
            on_tick(pipeline, elapsed)

    async with running(runtime, stop):
        return await run_feeds(
            settings, connectors, sink=runtime.sink, events=events, duration=duration, on_tick=tick, stop=stop
        )
