"""The capture service: what ``pumpwatch run`` is, as one object that owns its parts.

``Capture`` owns the replay server it may start, the schema watch, the sharded sender, the event
writers, the optional hybrid runtime and the feeds (live, replay or synthetic). ``start`` brings
them up — QuestDB need not be up: trades are spooled and the schema is checked when it answers;
``run`` captures until the duration, a signal, or the sender failing; ``stop`` drains within
``sender.drain_timeout`` and returns the ``CaptureOutcome``, whose books count every trade a feed
received: stored (confirmed or spooled), never taken by the sender, or left in its memory.
The CLI and its live view are thin layers over it.
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

import psycopg

from ..config import Settings
from ..connectors.pipeline import Pipeline, SenderSink, WriterEvents
from ..connectors.registry import Connector, select
from ..connectors.replay_process import ReplayProcess
from ..connectors.run import SyntheticRun, run_feeds, run_synthetic
from ..errors import (
    MigrationError,
    PumpwatchError,
    QuestDBAuthError,
    SchemaPendingError,
    SenderError,
    UnstoredRowsError,
)
from ..pacing import RateSchedule
from ..sender import SenderMetrics, ShardedSender
from ..store.migrations import check_schema, migrate
from ..store.pg import connect

log = logging.getLogger(__name__)

SCHEMA_RETRY_S = 5.0
WORKERS_READY_S = 60.0  # start-up waits this long for the sender's workers before the feeds start


@dataclass(frozen=True)
class CaptureOptions:
    """What ``pumpwatch run`` was asked to do (its flags)."""

    source: str = "live"  # live | replay | synthetic
    replay_url: str | None = None
    replay_symbols: int = 10
    rate: float = 1000.0
    burst_rate: float = 5000.0
    workers: int | None = None
    hybrid: bool = False
    compare: bool = False
    rollout_config: str | None = None
    migrate: bool = False  # apply pending migrations (never a TTL decrease) instead of refusing to run


@dataclass
class CaptureOutcome:
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


class SchemaWatch:
    """The schema check of ``run``: at start and then, while QuestDB cannot be reached, every
    ``SCHEMA_RETRY_S`` in a thread of its own, so capture never waits for it. It only reads, except
    with ``--migrate`` (pending migrations are applied; a TTL is never changed here)."""

    def __init__(self, settings: Settings, *, apply: bool) -> None:
        self.settings = settings
        self.apply = apply
        self.state = "unchecked"  # unchecked | unreachable | refused | ok | pending | error
        self.refusal: QuestDBAuthError | None = None  # why QuestDB refused the login (state "refused")
        self.message = ""
        self.problems = ""  # what is wrong with the schema (pending/edited/unknown migrations)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alarm(self) -> str:
        return "" if self.state == "ok" else self.message

    def check(self) -> str:
        """One check; returns the new state. Pending or broken schema is reported, never raised."""
        try:
            with connect(self.settings, connect_timeout=3) as conn:
                status = check_schema(conn, self.settings)
                if status.pending and self.apply and not (status.edited or status.unknown):
                    report = migrate(conn, self.settings, reconcile_ttl=False)
                    log.warning("schema: applied %s", ", ".join(m.path.name for m in report.applied))
                    status = check_schema(conn, self.settings)
        except QuestDBAuthError as exc:  # up but refusing us: no spool-and-wait, the password is wrong
            self.refusal = exc
            self._set("refused", str(exc))
            return self.state
        except psycopg.OperationalError as exc:
            q = self.settings.questdb
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self._set("unreachable", f"QuestDB is not reachable over PGWire at {q.host}:{q.pg_port} ({reason})")
            return self.state
        except (psycopg.Error, MigrationError) as exc:
            self._set("error", f"schema check failed: {exc}")
            return self.state
        if not status.ok:
            self.problems = status.problems(self.settings)
            self._set("pending", f"schema: {self.problems}; trades wait in the spool until then")
        else:
            self._set("ok", "schema up to date")
            for change in status.ttl:
                log.warning(
                    "schema: %s differs from schema.ttl_days; run does not change it (pumpwatch db migrate does)",
                    change.describe(),
                )
        return self.state

    def _set(self, state: str, message: str) -> None:
        if (state, message) != (self.state, self.message):
            (log.info if state == "ok" else log.error)("%s", message)
        self.state, self.message = state, message

    def watch(self) -> None:
        """Keep checking in the background until the schema is up to date."""
        if self.state != "ok" and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="schema-watch", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SCHEMA_RETRY_S):
            if self.check() == "ok":
                return

    def close(self) -> None:
        self._stop.set()


class Capture:
    """``with Capture(settings, options) as c: await c.run(...); outcome = c.stop()``"""

    def __init__(
        self, settings: Settings, options: CaptureOptions, *, stop_requested: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.options = options
        # Set by a signal before the feeds run (start-up): start() returns early, run() captures nothing.
        self.stop_requested = stop_requested or threading.Event()
        self.connectors: list[Connector] = []
        self.schema = SchemaWatch(settings, apply=options.migrate)
        self.sender: ShardedSender | None = None
        self.events: WriterEvents | None = None
        self.runtime: Any = None  # HybridRuntime, built only with --hybrid-mode
        self.pipeline: Pipeline | None = None
        self.synthetic: SyntheticRun | None = None
        self.started = 0.0
        self._stack = contextlib.ExitStack()
        self._outcome: CaptureOutcome | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Capture:
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
            elif o.replay_url:
                self.settings = _with_base_url(self.settings, o.replay_url)
            self.connectors = select(self.settings.connectors.enabled)
            self._check_schema()
            self.sender = ShardedSender(self.settings, workers=o.workers).start()
            ready = self.sender.wait_ready(WORKERS_READY_S, abort=self.stop_requested)
            if self.sender.failure is not None:  # the workers cannot start: capture nothing
                raise self.sender.failure
            if not ready and not self.stop_requested.is_set():
                log.error("sender workers not ready after %.0fs; capturing anyway", WORKERS_READY_S)
            if o.source != "synthetic":
                self.events = WriterEvents(self.settings)
            if o.hybrid:
                from ..hybrid.runtime import HybridRuntime

                self.runtime = HybridRuntime.build(
                    self.settings,
                    self.sender,
                    compare=o.compare,
                    rollout_config=o.rollout_config,
                    detect_listings=o.source != "synthetic",
                )
        except BaseException:
            self._abandon()
            raise
        self.started = time.monotonic()
        return self

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
        if self.sender is not None:
            with contextlib.suppress(PumpwatchError):
                self.sender.close(timeout=10)
        if self.events is not None:
            self.events.close(timeout=5)
        self.schema.close()
        self._stack.close()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._outcome is None and self.sender is not None:
            with contextlib.suppress(PumpwatchError):
                self.stop()
        self._stack.close()

    # -- running ----------------------------------------------------------------------------
    async def run(
        self,
        duration: float | None,
        *,
        on_tick: Callable[[Capture], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Capture until ``duration`` passes, SIGINT/SIGTERM, ``stop``, or the sender fails."""
        assert self.sender is not None, "start() first"
        if self.stop_requested.is_set():
            return
        stop = stop or asyncio.Event()
        o = self.options
        if o.source == "synthetic":
            pattern = RateSchedule(rate=o.rate, burst_rate=o.burst_rate)
            sink = self.runtime.sink if self.runtime is not None else SenderSink(self.sender)

            def synthetic_tick(run: SyntheticRun) -> None:
                self.synthetic = run
                if on_tick is not None:
                    on_tick(self)

            if self.runtime is not None:
                from ..hybrid.runtime import running

                async with running(self.runtime, stop):
                    self.synthetic = await run_synthetic(
                        sink, pattern, duration=duration, on_tick=synthetic_tick, stop=stop
                    )
            else:
                self.synthetic = await run_synthetic(
                    sink, pattern, duration=duration, on_tick=synthetic_tick, stop=stop
                )
            return

        assert self.events is not None

        def tick(pipeline: Pipeline, elapsed: float) -> None:
            self.pipeline = pipeline
            if self.runtime is not None:
                self.runtime.pipeline = pipeline
            if on_tick is not None:
                on_tick(self)

        if self.runtime is not None:
            from ..hybrid.runtime import run_hybrid

            self.pipeline = await run_hybrid(
                self.settings, self.connectors, self.runtime, events=self.events, duration=duration, on_tick=tick,
                stop=stop,
            )  # fmt: skip
        else:
            self.pipeline = await run_feeds(
                self.settings,
                self.connectors,
                sink=SenderSink(self.sender),
                events=self.events,
                duration=duration,
                on_tick=tick,
                stop=stop,
            )

    @property
    def failure(self) -> SenderError | None:
        """Why intake stopped early: the sender failed under the feeds (or the generator)."""
        if self.pipeline is not None and self.pipeline.failure is not None:
            return self.pipeline.failure
        return self.synthetic.failure if self.synthetic is not None else None

    @property
    def received(self) -> int:
        if self.pipeline is not None:
            return sum(f.stats.trades for f in self.pipeline.feeds)
        return self.synthetic.trades if self.synthetic is not None else 0

    @property
    def unsent(self) -> int:
        if self.pipeline is not None:
            return self.pipeline.unsent
        return self.synthetic.unsent if self.synthetic is not None else 0

    def alarms(self) -> list[str]:
        """What an operator must see now: sender alarms (spool full, refused rows), a dead sender,
        quarantined spool records, the schema watch."""
        out: list[str] = []
        if self.schema.alarm:
            out.append(self.schema.alarm)
        if self.sender is not None:
            m = self.sender.metrics()
            out += [f"shard {w.shard}: {w.alarm}" for w in m.per_worker if w.alarm]
            if m.books.quarantined or m.books.quarantined_unknown:
                out.append(quarantine_alarm(m))
        if self.failure is not None:
            out.append(f"intake stopped: {self.failure}")
        return out

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, *, abort: threading.Event | None = None) -> CaptureOutcome:
        """Drain the sender (within ``sender.drain_timeout``; ``abort`` cuts it short), close the
        event writers and the hybrid runtime; the books of the whole run."""
        if self._outcome is not None:
            return self._outcome
        assert self.sender is not None
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
        failure = self.failure
        self._outcome = CaptureOutcome(
            received=self.received,
            unsent=self.unsent,
            unstored=sum(unstored.values()),
            metrics=metrics,
            failure=str(failure) if failure is not None else "",
            unstored_by_exchange=unstored,
        )
        return self._outcome


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
