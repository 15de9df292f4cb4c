"""Listing detection: spot a new market on the watched venues, then collect the ±window around it.

``MarketListWatcher`` polls each source connector's symbol list (Upbit: ``GET /v1/market/all``)
every ``poll_interval``. A source's first successful poll is its baseline; afterwards a market in
the listing quote (KRW) never seen before is a ``ListingTrigger``, once per base asset per process.
Offline, the replay server's market list changes when ``ReplayControl.list_instrument`` lists one.

``ListingCollector`` waits on the wall clock until ``trigger + after + settle`` (the window has
closed and late trades have landed), asks a ``WindowSource`` (the hybrid manager: ring buffer or
QuestDB) for the bare base asset, i.e. every venue and quote, writes a ``listing_events`` row
through a ``ListingSink`` and exports the window (``export.export_window``). A row QuestDB did not
take stays pending and is retried with the next event and at ``close()``; it is never dropped.

Announcements: an optional ``AnnouncementSource`` tells when a listing was announced; the trigger
is then the announcement and ``trigger_delay_ms`` how long after it the market appeared. None is
wired offline (the replay server has no announcement feed), so the trigger is the detection time
and the delay is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import msgspec

from ..config import Settings
from ..connectors.core import Instrument, RestClient, VenueProtocol, asset
from ..connectors.pipeline import build_protocol
from ..connectors.registry import select
from ..connectors.rest import HttpRest
from ..errors import ConnectorError, ValidationError, VenueRequestError, WriteError
from ..ingest.writer import ListingWriter
from ..models import ListingEvent
from .export import ExportPaths, export_window
from .window import ListingData

log = logging.getLogger(__name__)

NS = 1_000_000_000
Clock = Callable[[], int]
# What a failed market-list poll can raise: REST failures, an unparsable body, a timeout.
_POLL_ERRORS = (ConnectorError, msgspec.MsgspecError, ValueError, OSError, TimeoutError)
# Longest single sleep while waiting for a window: the wall clock is re-read at least this often.
_MAX_SLEEP = 30.0


# ---- triggers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListingTrigger:
    """A new market seen on a source venue, and when it (or its announcement) happened."""

    base: str  # NEWCOIN
    market: str  # normalised BASE-QUOTE: NEWCOIN-KRW
    venue_symbol: str  # as the venue names it: KRW-NEWCOIN on Upbit
    source: str  # the connector whose market list showed it
    detected_ns: int
    announced_ns: int | None = None  # None when no announcement was seen

    @property
    def trigger_ns(self) -> int:
        """The window's centre: the announcement when known (the pump starts there), else detection."""
        return self.announced_ns if self.announced_ns is not None else self.detected_ns

    @property
    def trigger_delay_ms(self) -> int:
        """Detection minus trigger: 0 without an announcement; clamped at 0 if the announcer's clock is ahead."""
        return max(0, (self.detected_ns - self.trigger_ns) // 1_000_000)


def new_listings(before: AbstractSet[str], after: Iterable[Instrument], quote: str) -> list[Instrument]:
    """Instruments of ``after`` quoted in ``quote`` whose venue symbol is not in ``before`` (in order)."""
    want = asset(quote)
    out: list[Instrument] = []
    taken: set[str] = set()
    for inst in after:
        vs = inst.venue_symbol
        if asset(inst.quote) == want and vs not in before and vs not in taken:
            taken.add(vs)
            out.append(inst)
    return out


class AnnouncementSource(Protocol):
    """Listing announcements (e.g. Upbit's notice board) where reachable; none is wired offline."""

    async def poll(self) -> list[tuple[str, int]]:
        """``(base asset, announced_ns)`` pairs announced so far; repeats are fine."""
        ...


@dataclass
class SourceStats:
    """One source connector's polling, for the live view and for spotting a dead market list."""

    polls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    markets: int = 0
    baseline: bool = False
    last_poll_ns: int = 0
    last_error: str = ""


@dataclass
class WatcherStats:
    sources: dict[str, SourceStats] = field(default_factory=dict)
    triggers: int = 0
    announcement_polls: int = 0
    announcement_failures: int = 0
    last_announcement_error: str = ""


class MarketListWatcher:
    """Polls the source connectors' market lists and turns new markets in ``quote`` into triggers."""

    def __init__(
        self,
        sources: Sequence[VenueProtocol],
        rest: RestClient,
        *,
        quote: str = "KRW",
        poll_interval: float = 1.0,
        announcements: AnnouncementSource | None = None,
        max_new_per_poll: int = 10,
        clock: Clock = time.time_ns,
    ) -> None:
        """``max_new_per_poll``: more new markets than this in one answer means the earlier answer was
        partial (or the venue renamed its markets), not a wave of listings: they are absorbed (logged), no triggers."""
        if not sources:
            raise ValueError("MarketListWatcher needs at least one source connector")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval}")
        self.sources = list(sources)
        self.rest = rest
        self.quote = asset(quote)
        self.poll_interval = poll_interval
        self.announcements = announcements
        self.max_new_per_poll = max_new_per_poll
        self.clock = clock
        self.stats = WatcherStats({p.spec.connector: SourceStats() for p in self.sources})
        # Venue symbols ever seen per source (absent until its baseline). Never shrinks, so a market
        # missing from one answer and back in the next is not mistaken for a new listing.
        self._known: dict[str, set[str]] = {}
        self._triggered: set[str] = set()  # bases that already triggered (once per base per process)
        self._announced: dict[str, int] = {}  # base → first announcement time

    @property
    def baselined(self) -> bool:
        """True once every source has answered once (only then can a new market be recognised)."""
        return all(s.baseline for s in self.stats.sources.values())

    async def poll_once(self) -> list[ListingTrigger]:
        """One round: announcements (if any), then every source's market list concurrently."""
        await self._poll_announcements()
        found = await asyncio.gather(*(self._poll_source(p) for p in self.sources))
        return [t for triggers in found for t in triggers]

    async def run(self, on_trigger: Callable[[ListingTrigger], object]) -> None:
        """Poll every ``poll_interval`` (fixed cadence, no catch-up bursts) until cancelled."""
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            for trigger in await self.poll_once():
                on_trigger(trigger)
            next_t += self.poll_interval
            delay = next_t - loop.time()
            if delay < 0:  # a slow poll: start the next one now instead of firing a backlog
                next_t = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    async def _poll_announcements(self) -> None:
        if self.announcements is None:
            return
        self.stats.announcement_polls += 1
        try:
            items = await self.announcements.poll()
        except _POLL_ERRORS as exc:
            self.stats.announcement_failures += 1
            self.stats.last_announcement_error = f"{type(exc).__name__}: {exc}"
            log.warning("listing announcements: poll failed: %s", self.stats.last_announcement_error)
            return
        for base, announced_ns in items:
            self._announced.setdefault(asset(base), announced_ns)

    async def _poll_source(self, proto: VenueProtocol) -> list[ListingTrigger]:
        name = proto.spec.connector
        st = self.stats.sources[name]
        st.polls += 1
        try:
            found = await proto.fetch_instruments(self.rest)
            if not found:  # as a baseline it would make every market look new on the next poll
                raise VenueRequestError(proto.spec.rest_url, "empty market list")
        except _POLL_ERRORS as exc:
            st.failures += 1
            st.consecutive_failures += 1
            st.last_error = f"{type(exc).__name__}: {exc}"
            level = logging.WARNING if st.consecutive_failures == 1 else logging.DEBUG
            log.log(level, "listing watch %s: market list poll failed (%d in a row): %s", name,
                    st.consecutive_failures, st.last_error)  # fmt: skip
            return []
        detected = self.clock()
        if st.consecutive_failures:
            log.info("listing watch %s: market list back after %d failed polls", name, st.consecutive_failures)
        st.consecutive_failures = 0
        st.last_poll_ns = detected
        st.markets = len(found)
        known = self._known.get(name)
        if known is None:
            self._known[name] = {inst.venue_symbol for inst in found}
            st.baseline = True
            log.info("listing watch %s: baseline of %d markets", name, len(found))
            return []
        fresh = new_listings(known, found, self.quote)
        known.update(inst.venue_symbol for inst in found)
        if len(fresh) > self.max_new_per_poll:
            log.warning("listing watch %s: %d new %s markets at once; taken as a changed market list, not "
                        "listings", name, len(fresh), self.quote)  # fmt: skip
            return []
        triggers: list[ListingTrigger] = []
        for inst in fresh:
            if inst.base in self._triggered:
                continue
            self._triggered.add(inst.base)
            trigger = ListingTrigger(
                base=inst.base,
                market=inst.symbol,
                venue_symbol=inst.venue_symbol,
                source=name,
                detected_ns=detected,
                announced_ns=self._announced.get(inst.base),
            )
            log.info("listing detected: %s (%s on %s), trigger %d", inst.base, inst.venue_symbol, name,
                     trigger.trigger_ns)  # fmt: skip
            triggers.append(trigger)
        self.stats.triggers += len(triggers)
        return triggers


# ---- collection -------------------------------------------------------------------------------
class WindowSource(Protocol):
    """Answers the ±window around a trigger (the hybrid manager: ring buffer or QuestDB)."""

    async def get_listing_data(self, symbol: str, trigger_ns: int, before: float, after: float) -> ListingData: ...


class ListingSink(Protocol):
    """Stores a listing event. Returns once it is stored; raises ``WriteError`` to have it retried."""

    def write(self, event: ListingEvent) -> None: ...


class ListingWriterSink:
    """A ``ListingWriter`` as a sink that flushes each event, so returning means QuestDB committed it.

    A retry after a failure can send a row twice; ``listing_events`` dedups on (ts, symbol)."""

    def __init__(self, writer: ListingWriter) -> None:
        self.writer = writer

    def write(self, event: ListingEvent) -> None:
        if self.writer.last_error is not None:
            self.writer.flush()  # rows kept from the failed flush first; raises while QuestDB is still down
        self.writer.write(event)
        self.writer.flush()


COLLECTED, FAILED, NOT_COLLECTED = "collected", "failed", "not_collected"


@dataclass
class CollectedListing:
    """What became of one trigger (the live view's row). ``written`` flips once the row is stored."""

    trigger: ListingTrigger
    status: str  # collected | failed (window query failed) | not_collected (stopped before the window closed)
    event: ListingEvent | None = None
    export: ExportPaths | None = None
    counts: dict[str, int] = field(default_factory=dict)
    source: str = ""
    latency_ms: float = 0.0
    fell_back: bool = False
    written: bool = False
    finished_ns: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CollectorStats:
    triggers: int = 0
    collected: int = 0
    failed: int = 0
    not_collected: int = 0
    exported: int = 0
    export_failures: int = 0
    written: int = 0
    write_failures: int = 0


@dataclass(eq=False)
class _Job:
    trigger: ListingTrigger
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    collecting: bool = False
    record: CollectedListing = field(init=False)

    def __post_init__(self) -> None:
        self.record = CollectedListing(self.trigger, NOT_COLLECTED)


class ListingCollector:
    """Collects, stores and exports the window of each trigger; overlapping listings run concurrently."""

    def __init__(
        self,
        source: WindowSource,
        sink: ListingSink,
        export_dir: Path | str,
        *,
        before: float = 20.0,
        after: float = 20.0,
        settle: float = 2.0,
        history: int = 100,
        close_timeout: float = 30.0,
        clock: Clock = time.time_ns,
    ) -> None:
        if before < 0 or after < 0 or settle < 0:
            raise ValueError(f"before/after/settle must be >= 0, got {before}/{after}/{settle}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.source = source
        self.sink = sink
        self.export_dir = Path(export_dir)
        self.before = before
        self.after = after
        self.settle = settle
        self.close_timeout = close_timeout
        self.clock = clock
        self.stats = CollectorStats()
        self._history: deque[CollectedListing] = deque(maxlen=history)
        self._jobs: dict[str, _Job] = {}
        self._submitted: set[str] = set()
        self._pending: deque[CollectedListing] = deque()  # collected, row not stored yet (oldest first)
        self._write_lock = asyncio.Lock()
        self._closed = False

    # -- views ----------------------------------------------------------------------------------
    @property
    def history(self) -> list[CollectedListing]:
        """Finished triggers, oldest first (bounded)."""
        return list(self._history)

    @property
    def in_progress(self) -> list[ListingTrigger]:
        """Triggers still waiting for their window to close or being collected."""
        return [job.trigger for job in self._jobs.values()]

    @property
    def pending_events(self) -> list[ListingEvent]:
        """Events collected but not stored yet (QuestDB down); retried with the next event and at close."""
        return [r.event for r in self._pending if r.event is not None]

    def due_ns(self, trigger: ListingTrigger) -> int:
        """Wall-clock time the window of ``trigger`` is collected at."""
        return trigger.trigger_ns + round((self.after + self.settle) * NS)

    # -- lifecycle ------------------------------------------------------------------------------
    def submit(self, trigger: ListingTrigger) -> bool:
        """Schedule ``trigger`` (needs a running loop); False when closed or its base was already taken."""
        if self._closed:
            log.warning("listing %s ignored: the collector is closed", trigger.base)
            return False
        if trigger.base in self._submitted:
            return False
        self._submitted.add(trigger.base)
        self.stats.triggers += 1
        job = _Job(trigger)
        self._jobs[trigger.base] = job
        job.task = asyncio.create_task(self._run(job), name=f"listing {trigger.base}")
        job.task.add_done_callback(self._task_done)
        return True

    async def close(self, timeout: float | None = None) -> None:
        """Finish what can be finished and stop.

        A trigger whose window has ended is collected now (skipping the rest of the settle grace);
        one whose window is still open is cancelled and recorded as not collected. Collections
        get ``timeout`` (default ``close_timeout``) seconds; then pending rows are retried once and
        any still unstored are logged with their content (and stay in ``pending_events``)."""
        self._closed = True
        now = self.clock()
        for job in list(self._jobs.values()):
            if job.collecting or job.task is None:
                continue
            if now >= job.trigger.trigger_ns + round(self.after * NS):
                job.wake.set()
            else:
                job.task.cancel()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.close_timeout if timeout is None else timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.retry_pending()
        for record in self._pending:
            log.error("listing event NOT stored (QuestDB unreachable at shutdown): %s", record.event)

    async def retry_pending(self) -> int:
        """Try to store the pending events now; returns how many are still pending."""
        async with self._write_lock:
            await self._flush_pending()
        return len(self._pending)

    async def __aenter__(self) -> ListingCollector:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- one trigger ----------------------------------------------------------------------------
    async def _run(self, job: _Job) -> None:
        trigger = job.trigger
        try:
            await self._wait_until(self.due_ns(trigger), job.wake)
            job.collecting = True
            await self._collect(job)
        except asyncio.CancelledError:
            if job.record.status == NOT_COLLECTED:
                what = "while collecting" if job.collecting else "before its window closed"
                job.record.errors.append(f"stopped {what}")
                log.warning("listing %s not collected: stopped %s", trigger.base, what)
            raise
        finally:
            self._finish(job)

    async def _wait_until(self, due_ns: int, wake: asyncio.Event) -> None:
        """Sleep until the wall clock reaches ``due_ns`` (re-read, in case it steps) or ``wake`` is set."""
        while not wake.is_set():
            remaining = (due_ns - self.clock()) / NS
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, _MAX_SLEEP))

    async def _collect(self, job: _Job) -> None:
        """Query, export, store; ``job.record`` says how far it got (also when cancelled half-way)."""
        trigger = job.trigger
        try:
            data = await self.source.get_listing_data(trigger.base, trigger.trigger_ns, self.before, self.after)
        except Exception as exc:  # any source failure ends this trigger as "failed", never the collector
            log.exception("listing %s: window query failed", trigger.base)
            job.record = CollectedListing(trigger, FAILED, errors=[f"window query failed: {type(exc).__name__}: {exc}"])
            return
        event = ListingEvent(
            ts_ns=trigger.trigger_ns,
            symbol=trigger.base,
            announced_ns=trigger.announced_ns,
            detected_ns=trigger.detected_ns,
            trigger_delay_ms=trigger.trigger_delay_ms,
            collected_trades=data.total_trades,
            exchanges_with_data=data.exchanges_with_data,
        )
        record = job.record = CollectedListing(
            trigger,
            COLLECTED,
            event=event,
            counts=data.counts(),
            source=data.source,
            latency_ms=data.latency_ms,
            fell_back=data.fell_back,
            notes=list(data.notes),
        )
        try:
            record.export = await asyncio.to_thread(export_window, data, self.export_dir)
            self.stats.exported += 1
        except (OSError, ValueError) as exc:  # pyarrow's ArrowIOError is an OSError, ArrowInvalid a ValueError
            self.stats.export_failures += 1
            record.errors.append(f"export failed: {type(exc).__name__}: {exc}")
            log.error("listing %s: export to %s failed: %s", trigger.base, self.export_dir, exc)
        async with self._write_lock:
            self._pending.append(record)
            await self._flush_pending()
        log.info("listing %s collected: %d trades on %d venues from %s (%s)", trigger.base, data.total_trades,
                 data.exchanges_with_data, data.source, "stored" if record.written else "row pending")  # fmt: skip

    async def _flush_pending(self) -> None:
        """Store pending events oldest first; stop at the first ``WriteError`` (QuestDB is down). Needs the lock."""
        while self._pending:
            record = self._pending[0]
            assert record.event is not None
            try:
                await asyncio.to_thread(self.sink.write, record.event)
            except ValidationError as exc:  # would fail forever: report it, do not block the queue
                self._pending.popleft()
                self.stats.write_failures += 1
                record.errors.append(f"event rejected: {exc}")
                log.error("listing %s: event rejected, not stored: %s", record.trigger.base, exc)
                continue
            except WriteError as exc:
                self.stats.write_failures += 1
                log.warning("listing events: %d pending, QuestDB did not take them: %s", len(self._pending), exc)
                return
            self._pending.popleft()
            record.written = True
            self.stats.written += 1

    def _finish(self, job: _Job) -> None:
        record = job.record
        record.finished_ns = self.clock()
        self._jobs.pop(job.trigger.base, None)
        self._history.append(record)
        if record.status == COLLECTED:
            self.stats.collected += 1
        elif record.status == FAILED:
            self.stats.failed += 1
        else:
            self.stats.not_collected += 1

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s crashed: %r", task.get_name(), task.exception())


# ---- both together ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorStats:
    running: bool
    watcher: WatcherStats
    collector: CollectorStats
    in_progress: int
    pending_events: int
    error: str = ""


class ListingDetector:
    """The watcher feeding the collector: ``start()`` polls in a task, ``stop()`` winds both down."""

    def __init__(self, watcher: MarketListWatcher, collector: ListingCollector, *, owned_rest: HttpRest | None = None):
        self.watcher = watcher
        self.collector = collector
        self._owned_rest = owned_rest
        # Called with each trigger before it is collected (e.g. refresh every feed's symbol list now,
        # so the new market's trades are captured from the first seconds, not at the next refresh).
        self.listeners: list[Callable[[ListingTrigger], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._error = ""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        source: WindowSource,
        sink: ListingSink,
        *,
        rest: RestClient | None = None,
        announcements: AnnouncementSource | None = None,
    ) -> ListingDetector:
        """The ``[hybrid]`` listing settings; protocols honour ``connectors.base_url`` (the replay server)."""
        h = settings.hybrid
        protocols = [
            build_protocol(c, settings.connectors) for c in select(h.listing_sources, key="hybrid.listing_sources")
        ]
        owned: HttpRest | None = None
        if rest is None:
            # One attempt per poll: the next poll is the retry, and a stale answer is worth nothing.
            owned = rest = HttpRest(min_interval=0.0, attempts=1, timeout=max(2.0, 5 * h.listing_poll_interval))
        watcher = MarketListWatcher(
            protocols, rest, quote=h.listing_quote, poll_interval=h.listing_poll_interval, announcements=announcements
        )
        collector = ListingCollector(
            source, sink, h.export_dir, before=h.window_before, after=h.window_after, settle=h.window_settle
        )
        return cls(watcher, collector, owned_rest=owned)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stats(self) -> DetectorStats:
        return DetectorStats(
            running=self.running,
            watcher=self.watcher.stats,
            collector=self.collector.stats,
            in_progress=len(self.collector.in_progress),
            pending_events=len(self.collector.pending_events),
            error=self._error,
        )

    @property
    def history(self) -> list[CollectedListing]:
        return self.collector.history

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("listing detector already started")
        self._task = asyncio.create_task(self.watcher.run(self._on_trigger), name="listing watcher")
        self._task.add_done_callback(self._watcher_done)

    def _on_trigger(self, trigger: ListingTrigger) -> bool:
        for listener in self.listeners:
            try:
                listener(trigger)
            except Exception:
                log.exception("listing listener failed for %s", trigger.base)
        return self.collector.submit(trigger)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop polling, finish or cancel collections (``ListingCollector.close``), close our HTTP session."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self.collector.close(timeout)
        finally:
            if self._owned_rest is not None:
                await self._owned_rest.close()

    async def __aenter__(self) -> ListingDetector:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _watcher_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._error = f"watcher stopped: {task.exception()!r}"
            log.error("listing %s", self._error)
