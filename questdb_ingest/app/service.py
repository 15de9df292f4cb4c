"""The running system as one object: what ``pumpwatch run`` is, and what the API and views show.

``Service`` owns every part — the replay server it may start, the schema watch, the sharded
sender, the event writers, the source of trades (live or replayed feeds, or synthetic trades;
``sources``), the optional hybrid runtime, the alert path, the retention manager, the backup
scheduler, the QuestDB probe and the HTTP API — and brings them up and down in one order:

* ``start()`` — QuestDB need not be up: trades are spooled and the schema is checked when it
  answers; it refuses to start only for a schema that is behind, a refused login or bad config;
* ``run()`` — captures until the duration, a signal, ``stop``, or the sender failing;
* ``stop()`` — drains within ``sender.drain_timeout`` and returns the ``ServiceOutcome``, whose
  books count every trade a feed received: stored (confirmed or spooled), never taken by the
  sender, or left in its memory;
* ``snapshot()`` — everything the live view and the API show, as one typed ``ServiceSnapshot``.
  It is taken on the feeds' loop every tick (``latest()`` serves the newest to other threads),
  so an API request never touches an object the feeds are changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from .. import __version__
from ..config import Settings
from ..connectors.pipeline import SenderSink, WriterEvents
from ..connectors.registry import Connector, select
from ..connectors.replay_process import ReplayProcess
from ..errors import MigrationError, PumpwatchError, SchemaPendingError, SenderError, UnstoredRowsError
from ..ops.alerts import Alert, AlertDispatcher, AlertSink, Watches
from ..pacing import RateSchedule
from ..sender import SenderMetrics, ShardedSender
from ..timefmt import iso
from .probe import QuestDBProbe
from .schema import SchemaWatch
from .snapshot import (
    HybridSnapshot,
    ListingSnapshot,
    QuestDBSnapshot,
    RateTracker,
    SchemaSnapshot,
    ServiceSnapshot,
    feed_snapshot,
)
from .sources import FeedSource, Source, SyntheticSource

log = logging.getLogger(__name__)

WORKERS_READY_S = 60.0  # start-up waits this long for the sender's workers before the feeds start


@dataclass(frozen=True)
class ServiceOptions:
    """What ``pumpwatch run`` was asked to do (its flags)."""

    source: str = "live"  # live | replay | synthetic
    replay_url: str | None = None
    replay_symbols: int = 10
    rate: float = 1000.0
    burst_rate: float = 5000.0
    burst_every: float = 60.0
    burst_seconds: float = 5.0
    symbols: int = 300  # synthetic: distinct symbols
    workers: int | None = None
    transport: str = "http"
    hybrid: bool = False
    compare: bool = False
    rollout_config: str | None = None
    migrate: bool = False  # apply pending migrations (never a TTL decrease) instead of refusing to run
    api: bool | None = None  # serve the HTTP API (None: api.enabled)
    operations: bool = True  # retention manager and backup scheduler (as configured)
    list_coin: str = ""  # replay: list this new coin on every venue (Upbit KRW last) ...
    list_after: float = 10.0  # ... this many seconds after the feeds start

    @property
    def schedule(self) -> RateSchedule:
        return RateSchedule(self.rate, self.burst_rate, self.burst_every, self.burst_seconds)


@dataclass
class ServiceOutcome:
    """The run's books, from the feeds' side: every trade received is stored, unsent or unstored."""

    received: int  # trades the feeds received (synthetic: generated)
    unsent: int  # received but never taken by the sender (it had stopped)
    unstored: int  # taken by the sender but held only in its memory when it stopped
    metrics: SenderMetrics
    failure: str = ""  # why intake stopped early ("" when it ran to the end)
    unstored_by_exchange: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.unsent + self.unstored

    def describe(self) -> str:
        b = self.metrics.books
        stored = b.received - self.unstored - b.dead_lettered
        text = (
            f"the feeds received {self.received:,} trade(s): {stored:,} stored (confirmed by QuestDB or in the spool)"
        )
        if b.dead_lettered:
            text += f", {b.dead_lettered:,} refused by QuestDB (dead-letter spool)"
        if self.lost:
            text += (
                f", {self.lost:,} NOT stored ({self.unstored:,} held by the sender when it stopped, "
                f"{self.unsent:,} never taken by it)"
            )
        return text


class Service:
    """``with Service(settings, options) as s: await s.run(...); outcome = s.stop()``"""

    def __init__(
        self,
        settings: Settings,
        options: ServiceOptions,
        *,
        stop_requested: threading.Event | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        # Set by a signal before the feeds run (start-up): start() returns early, run() captures nothing.
        self.stop_requested = stop_requested or threading.Event()
        self.state = "starting"
        self.connectors: list[Connector] = []
        self.schema = SchemaWatch(settings, apply=options.migrate)
        self.sender: ShardedSender | None = None
        self.events: WriterEvents | None = None
        self.runtime: Any = None  # HybridRuntime, built only with --hybrid-mode
        self.source: Source | None = None
        # One alert path for every part: log line + /api/alerts + webhook (rate-limited, deduplicated).
        self.dispatcher: AlertDispatcher | None = None
        self.alerts: AlertSink
        if alerts is None:
            self.dispatcher = self.alerts = AlertDispatcher(settings.alerts)
        else:
            self.alerts = alerts
        self.watches = Watches(settings.alerts, self.alerts)
        self._rollback_seen_ns = 0
        self._failure_alerted = False
        self._failed_hooks: set[str] = set()
        self.stop_reason = ""  # set by run(): stopped | failure | duration
        self.probe = QuestDBProbe(settings)
        self.api: Any = None  # ApiServer, when serving
        self.replay_pid: int | None = None  # the replay server this service started
        self.operations: list[Any] = []  # retention manager, backup scheduler: start()/stop()
        self.retention: Any = None  # RetentionManager, when retention.enabled
        self.backups: Any = None  # BackupScheduler, for live capture with backup.interval
        self.started = 0.0
        self.started_ns = 0
        self._stack = contextlib.ExitStack()
        self._outcome: ServiceOutcome | None = None
        self._rates = RateTracker()
        self._latest: ServiceSnapshot | None = None
        self._tick_hooks: list[Callable[[ServiceSnapshot], None]] = []

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Service:
        """Bring every part up. Refuses to start only when QuestDB answers and its schema is behind
        (``SchemaPendingError``/``MigrationError``) or it refuses the login (``QuestDBAuthError``);
        an unreachable QuestDB is reported and waited for."""
        o = self.options
        if o.hybrid:
            from ..hybrid.rollout import Rollout

            Rollout.from_settings(self.settings, o.rollout_config)  # an invalid rollout config fails first
        try:
            if o.source == "replay" and not o.replay_url:
                args = ["--symbols", str(o.replay_symbols), "--rate", str(o.rate), "--burst-rate", str(o.burst_rate)]
                enabled = self.settings.connectors.enabled
                server = self._stack.enter_context(
                    ReplayProcess([*args, *(["--connectors", enabled] if enabled != "all" else [])])
                )
                self.settings = _with_base_url(self.settings, server.base_url)
                self.replay_pid = server.proc.pid if server.proc is not None else None
            elif o.replay_url:
                self.settings = _with_base_url(self.settings, o.replay_url)
            self.connectors = select(self.settings.connectors.enabled)
            if self.dispatcher is not None:
                self.dispatcher.start()
            self._check_schema()
            self.sender = ShardedSender(self.settings, workers=o.workers, transport=o.transport).start()
            ready = self.sender.wait_ready(WORKERS_READY_S, abort=self.stop_requested)
            if self.sender.failure is not None:  # the workers cannot start: capture nothing
                raise self.sender.failure
            if not ready and not self.stop_requested.is_set():
                log.error("sender workers not ready after %.0fs; capturing anyway", WORKERS_READY_S)
            if o.hybrid:
                from ..hybrid.runtime import HybridRuntime

                self.runtime = HybridRuntime.build(
                    self.settings,
                    self.sender,
                    compare=o.compare,
                    rollout_config=o.rollout_config,
                    detect_listings=o.source != "synthetic",
                )
            sink = self.runtime.sink if self.runtime is not None else SenderSink(self.sender)
            if o.source == "synthetic":
                self.source = SyntheticSource(sink, o.schedule, symbols=o.symbols)
            else:
                self.events = WriterEvents(self.settings)
                self.source = FeedSource(o.source, self.settings, self.connectors, sink, self.events)
            self.probe.start()
            if o.operations:
                self._start_operations()
            if self.options.api if self.options.api is not None else self.settings.api.enabled:
                from ..api import ApiServer

                self.api = ApiServer(self.settings).start()
        except BaseException:
            self._abandon()
            raise
        self.started = time.monotonic()
        self.started_ns = time.time_ns()
        self._latest = self.snapshot()
        self._publish(self._latest)
        return self

    def _guarded(self, what: str, fn: Callable[[ServiceSnapshot], None], snap: ServiceSnapshot) -> None:
        try:
            fn(snap)
        except Exception:
            if what not in self._failed_hooks:
                self._failed_hooks.add(what)
                log.exception("%s failed (capture goes on; logged once)", what)

    def _observe(self, snap: ServiceSnapshot) -> None:
        """Turn what the snapshot shows into alerts: feeds down longer than alerts.feed_down_after,
        dead-letter surges, spool alarms, rollbacks, intake stopped."""
        m = snap.sender
        full = m is not None and any("full" in w.alarm.lower() for w in m.per_worker)
        self.watches.observe(
            time.monotonic(),
            feeds={f.name: f.connected for f in snap.feeds} if snap.state == "running" else None,
            dead_letters={f.name: f.dead_letters for f in snap.feeds},
            spool_bytes=m.spool_bytes if m is not None else None,
            spool_full=full,
            spool_limit_bytes=self.settings.sender.spool_max_bytes,
        )
        if self.runtime is not None:
            # A bounded deque: new changes are the ones after the newest already alerted on.
            fresh = [e for e in self.runtime.rollback.events if e.at_ns > self._rollback_seen_ns]
            for event in fresh:
                self.alerts.emit(Alert(
                    "rollout.rollback", "critical" if event.action == "rollback" else "warning",
                    f"rollout {event.action}: phase {event.from_phase} → {event.to_phase} ({event.reason})",
                    key=event.action, details={"from": event.from_phase, "to": event.to_phase},
                ))  # fmt: skip
                self._rollback_seen_ns = event.at_ns
        if snap.failure and not self._failure_alerted:
            self._failure_alerted = True
            self.alerts.emit(Alert("intake.stopped", "critical", f"intake stopped: {snap.failure}"))

    def _maintenance(self) -> dict[str, Any]:
        """The maintenance jobs' last runs, for the API and Prometheus."""
        out: dict[str, Any] = {}
        report = self.retention.last_report if self.retention is not None else None
        if report is not None:
            out["retention"] = {
                "level": report.level, "finished": report.finished_at, "dropped": len(report.dropped),
                "usage_percent": report.usage_after.percent if report.usage_after is not None else None,
                "still_above_emergency": report.still_above_emergency, "errors": list(report.errors),
            }  # fmt: skip
        if self.backups is not None:
            out["backup"] = self.backups.status()
            last = self.backups.last_result
            out["backup"]["last_bytes"] = last.manifest.total_bytes if last is not None else None
        return out

    def _publish(self, snap: ServiceSnapshot) -> None:
        if self.api is not None:
            self.api.publish(snap, self.recent_alerts(200))

    def _start_operations(self) -> None:
        """The maintenance jobs the settings enable (each owns its thread; stopped in ``stop``):
        disk-pressure retention (``retention.enabled``; it never drops what the spool still holds)
        and, for live capture only (replayed and synthetic runs hold demo data), scheduled backups
        every ``backup.interval`` (0 = off, e.g. when the systemd timer takes them)."""
        from ..ops.backup import BackupScheduler
        from ..ops.retention import RetentionManager

        if self.settings.retention.enabled:
            self.retention = RetentionManager(self.settings, self.alerts)
            self.retention.start()
            self.operations.append(self.retention)
        if self.options.source == "live" and self.settings.backup.interval:
            self.backups = BackupScheduler(self.settings, self.alerts)
            self.backups.start()
            self.operations.append(self.backups)

    def _check_schema(self) -> None:
        state = self.schema.check()
        if state == "pending":
            raise SchemaPendingError(
                f"schema: {self.schema.problems} — or start with `pumpwatch run --migrate`; nothing was captured", []
            )
        if state == "error":
            raise MigrationError(self.schema.message)
        if state == "refused" and self.schema.refusal is not None:
            raise self.schema.refusal
        if state == "unreachable":
            log.error(
                "%s; capturing into the spool at %s, replayed once it answers; the schema is checked then",
                self.schema.message,
                self.settings.sender.spool_dir,
            )
            self.schema.watch()

    def _abandon(self) -> None:
        """Start-up failed part way: close what was opened (nothing was captured yet)."""
        self._stop_services()
        if self.sender is not None:
            with contextlib.suppress(PumpwatchError):
                self.sender.close(timeout=10)
        if self.events is not None:
            self.events.close(timeout=5)
        self.schema.close()
        self._stack.close()

    def _stop_services(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        for part in reversed(self.operations):
            with contextlib.suppress(Exception):
                part.stop()
        self.operations = []
        self.probe.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout=5.0)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._outcome is None and self.sender is not None:
            with contextlib.suppress(PumpwatchError):
                self.stop()
        self._stack.close()

    # -- running ----------------------------------------------------------------------------
    def on_tick(self, hook: Callable[[ServiceSnapshot], None]) -> None:
        """Call ``hook`` with each tick's snapshot (on the feeds' loop: keep it quick)."""
        self._tick_hooks.append(hook)

    async def run(
        self,
        duration: float | None,
        *,
        on_tick: Callable[[Service], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Capture until ``duration`` passes, SIGINT/SIGTERM, ``stop``, or the sender fails."""
        assert self.sender is not None and self.source is not None, "start() first"
        if self.stop_requested.is_set():
            return
        stop = stop or asyncio.Event()
        self.state = "running"
        source = self.source

        def tick() -> None:
            if self.runtime is not None and isinstance(source, FeedSource):
                self.runtime.pipeline = source.pipeline
            self._rates.sample(source.received, {f.name: f.stats.trades for f in source.feeds})
            snap = self._latest = self.snapshot()
            # Watching and publishing must never stop capture: a failure is logged (once) and skipped.
            self._guarded("alert watches", self._observe, snap)
            self._guarded("API publish", self._publish, snap)
            for hook in self._tick_hooks:
                hook(snap)
            if on_tick is not None:
                on_tick(self)

        injector = asyncio.create_task(self._list_coin()) if self.options.list_coin else None
        try:
            if self.runtime is not None:
                from ..hybrid.runtime import running

                async with running(self.runtime, stop):  # (it sets ``stop`` on the way out)
                    await source.run(duration, stop, tick)
                    stopped = stop.is_set()
            else:
                await source.run(duration, stop, tick)
                stopped = stop.is_set()
            # why capture ended: ``stop`` was set (SIGINT/SIGTERM or the caller), the sender failed, or time
            self.stop_reason = "stopped" if stopped else "failure" if self.failure is not None else "duration"
        finally:
            if injector is not None:
                injector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await injector
            self.state = "draining"
            self._latest = self.snapshot()
            self._publish(self._latest)

    async def _list_coin(self) -> None:
        """A new listing on the replay server, as a real one unfolds: the coin appears on every other
        venue first (their symbol refresh subscribes it), then on Upbit's KRW market list — which the
        listing detector turns into a ±window collection."""
        from ..connectors.replay.control import ReplayControl

        base = self.options.list_coin.upper()
        await asyncio.sleep(self.options.list_after)
        async with ReplayControl(self.settings.connectors.base_url) as ctl:
            for conn in self.connectors:
                if conn.name != "upbit_spot":
                    await ctl.list_instrument(conn.name, base, "KRW" if conn.name == "bithumb_spot" else "USDT")
            log.warning("replay: %s listed on %d venue(s); Upbit KRW next", base, len(self.connectors) - 1)
            source = self.source
            # Subscribed now rather than at the next periodic refresh (connectors.refresh_interval).
            await asyncio.gather(*(f.refresh() for f in (source.feeds if source is not None else ())))
            await asyncio.sleep(1.0)
            if any(c.name == "upbit_spot" for c in self.connectors):
                await ctl.list_instrument("upbit_spot", base, "KRW")
                log.warning("replay: %s-KRW listed on Upbit", base)

    @property
    def failure(self) -> SenderError | None:
        """Why intake stopped early: the sender failed under the feeds (or the generator)."""
        return self.source.failure if self.source is not None else None

    @property
    def received(self) -> int:
        return self.source.received if self.source is not None else 0

    @property
    def unsent(self) -> int:
        return self.source.unsent if self.source is not None else 0

    def alarms(self, metrics: SenderMetrics | None = None) -> list[str]:
        """What an operator must see now: sender alarms (spool full, refused rows), a dead sender,
        quarantined spool records, the schema watch."""
        out: list[str] = []
        if self.schema.alarm:
            out.append(self.schema.alarm)
        m = metrics if metrics is not None else self.sender.metrics() if self.sender is not None else None
        if m is not None:
            out += [f"shard {w.shard}: {w.alarm}" for w in m.per_worker if w.alarm]
            if m.books.quarantined or m.books.quarantined_unknown:
                out.append(quarantine_alarm(m))
        if self.failure is not None:
            out.append(f"intake stopped: {self.failure}")
        return out

    def raise_alert(self, alert: Alert) -> None:
        self.alerts.emit(alert)

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        """The newest alerts first (the API's ``/api/alerts``)."""
        recent = getattr(self.alerts, "recent", None)
        if callable(recent):
            return list(recent(limit))
        kept = getattr(self.alerts, "alerts", [])
        return [msgspec.to_builtins(a) for a in reversed(kept[-limit:])]

    # -- what it shows ----------------------------------------------------------------------
    def latest(self) -> ServiceSnapshot:
        """The newest snapshot (taken each tick on the feeds' loop): safe from any thread."""
        return self._latest if self._latest is not None else self.snapshot()

    def snapshot(self) -> ServiceSnapshot:
        """Everything the views and the API show, from the counters the parts keep (no I/O)."""
        metrics = self.sender.metrics() if self.sender is not None else None
        total_rate, feed_rates = self._rates.rates()
        source = self.source
        feeds = [feed_snapshot(f, feed_rates.get(f.name, 0.0)) for f in (source.feeds if source else ())]
        probe = self.probe.result
        workers_ok = metrics is not None and all(w.alive and w.state == "normal" for w in metrics.per_worker)
        writes_confirmed = probe.reachable and workers_ok and self.schema.state == "ok"
        error = probe.error or (
            "" if workers_ok else "a sender worker is spooling or down" if metrics is not None else "no sender"
        )
        if not error and self.schema.state != "ok":
            error = self.schema.message or f"schema {self.schema.state}"
        q = self.settings.questdb
        failure = self.failure
        return ServiceSnapshot(
            version=__version__,
            taken_ns=time.time_ns(),
            state=self.state if self._outcome is None else "stopped",
            source=self.options.source,
            started=iso(self.started_ns) if self.started_ns else None,
            uptime_s=round(time.monotonic() - self.started, 3) if self.started else 0.0,
            received=self.received,
            trades_per_s=round(total_rate, 1),
            unsent=self.unsent,
            feeds=feeds,
            schema=SchemaSnapshot(self.schema.state, self.schema.message),
            questdb=QuestDBSnapshot(
                host=q.host,
                http_port=q.http_port,
                pg_port=q.pg_port,
                reachable=probe.reachable,
                version=probe.version,
                checked=iso(probe.checked_ns) if probe.checked_ns else None,
                data_dir=q.data_dir,
                disk_total_bytes=probe.disk_total_bytes,
                disk_used_bytes=probe.disk_used_bytes,
                disk_used_ratio=probe.disk_used_ratio,
                writes_confirmed=writes_confirmed,
                error=error,
            ),
            hybrid=_hybrid_snapshot(self.runtime) if self.runtime is not None else None,
            alarms=self.alarms(metrics),
            api_url=self.api.url if self.api is not None else "",
            alert_stats=self.dispatcher.stats() if self.dispatcher is not None else {},
            maintenance=self._maintenance(),
            failure=str(failure) if failure is not None else "",
            sender=metrics,
        )

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, *, abort: threading.Event | None = None) -> ServiceOutcome:
        """Drain the sender (within ``sender.drain_timeout``; ``abort`` cuts it short), close the
        event writers, the hybrid runtime, the maintenance jobs and the API; the books of the run."""
        if self._outcome is not None:
            return self._outcome
        assert self.sender is not None
        self.state = "draining"
        unstored: dict[str, int] = {}
        try:
            metrics = self.sender.close(abort=abort)
        except UnstoredRowsError as exc:
            unstored = exc.by_exchange
            metrics = self.sender.metrics()
        finally:
            self.schema.close()
            if self.events is not None:
                self.events.close(timeout=min(30.0, self.settings.sender.drain_timeout))
            if self.runtime is not None:
                self.runtime.close()
            self._stop_services()
            self._stack.close()  # the replay server this service started
        failure = self.failure
        self._outcome = ServiceOutcome(
            received=self.received,
            unsent=self.unsent,
            unstored=sum(unstored.values()),
            metrics=metrics,
            failure=str(failure) if failure is not None else "",
            unstored_by_exchange=unstored,
        )
        self.state = "stopped"
        return self._outcome


def _hybrid_snapshot(rt: Any) -> HybridSnapshot:
    phase = rt.rollout.current()
    rs = rt.ring.stats()
    ms = rt.manager.stats
    last: ListingSnapshot | None = None
    listings = polls = poll_failures = waiting = 0
    if rt.detector is not None:
        d = rt.detector.stats
        listings, waiting = d.collector.triggers, d.in_progress
        polls = sum(src.polls for src in d.watcher.sources.values())
        poll_failures = sum(src.failures for src in d.watcher.sources.values())
        if rt.detector.history:
            h = rt.detector.history[-1]
            last = ListingSnapshot(
                base=h.trigger.base, detected=iso(h.trigger.detected_ns), detected_ns=h.trigger.detected_ns,
                status=h.status, source=h.source, counts=dict(h.counts),
            )  # fmt: skip
    verdict = rt.rollback.verdicts[-1] if rt.rollback.verdicts else None
    if verdict is None:
        check = f"first check in {rt.rollout.config.rollback.interval_s:g}s"
    elif verdict.breaches:
        check = "; ".join(verdict.breaches)
    else:
        r = verdict.reading
        disk = f", disk {r.disk_usage:.0%}" if r.disk_usage is not None else ""
        check = f"healthy (errors {r.error_rate:.0%}, mean {r.mean_latency_ms:.1f} ms{disk})"
    change = rt.rollback.events[-1] if rt.rollback.events else None
    return HybridSnapshot(
        rollout_phase=phase.number, rollout_phase_name=phase.name, questdb_percentage=phase.questdb_percentage,
        fallback_enabled=phase.fallback_enabled, time_in_phase_s=rt.rollout.time_in_phase(),
        compare=rt.manager.compare, ring_rows=rs.rows, ring_venues=rs.venues, ring_oldest_ns=rs.oldest_ts_ns or 0,
        ring_newest_ns=rs.newest_ts_ns or 0, ring_bytes=rs.allocated_bytes, ring_cap_bytes=rs.memory_cap_bytes,
        ring_evicted_rows=rs.evicted_rows, reads=ms.reads, buffer_answers=ms.buffer_answers,
        questdb_answers=ms.questdb_answers, fallbacks=ms.fallbacks,
        ring_hit_rate=round(ms.buffer_answers / ms.reads, 4) if ms.reads else None,
        questdb_queries=rt.reader.stats.queries, questdb_errors=rt.reader.stats.errors, compares=ms.compares,
        compares_with_diffs=ms.compares_with_diffs, differences=ms.differences, compare_skipped=ms.compare_skipped,
        last_diff=ms.last_diff, rollback_checks=rt.rollback.checks, rollback_state=check,
        last_change=f"{change.action} {change.from_phase}→{change.to_phase}" if change is not None else "",
        listing_polls=polls, listing_poll_failures=poll_failures, listings=listings, listings_waiting=waiting,
        last_listing=last,
    )  # fmt: skip


def quarantine_alarm(m: SenderMetrics) -> str:
    b = m.books
    paths = sorted({q["path"] for w in m.per_worker for q in w.quarantined})
    unknown = f" and {b.quarantined_unknown} damaged range(s) of unknown size" if b.quarantined_unknown else ""
    return (
        f"{b.quarantined:,} spooled row(s){unknown} were quarantined as damaged and are not stored "
        f"(kept in {', '.join(paths[:3])}{' …' if len(paths) > 3 else ''})"
    )


def _with_base_url(settings: Settings, base_url: str) -> Settings:
    return replace(settings, connectors=replace(settings.connectors, base_url=base_url))
