"""Rollback manager: every ``interval`` it judges QuestDB's health and, when a threshold is
crossed, moves reads back to the previous phase (or to the buffer only).

Measured each time: the error rate and mean latency of QuestDB reads since the last check
(window queries plus one probe per check, so a stopped QuestDB is noticed even when nobody
queries), disk usage of the QuestDB data directory, and how much the sender's spool grew
(growth means QuestDB is not taking rows). A rollback is logged with the values, kept in
``events`` for the live view, and written to ``rollout_events`` when QuestDB takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PumpwatchError, QueryError
from ..models import RolloutEvent
from .reader import QueryStats, QuestDBReader
from .rollout import Measured, Rollout, RolloutChange

log = logging.getLogger(__name__)


def disk_usage(path: str | Path) -> float | None:
    """Used fraction of the filesystem holding ``path`` (None when the directory is not here)."""
    p = Path(path)
    if not p.exists():
        return None
    usage = shutil.disk_usage(p)
    return usage.used / usage.total if usage.total else None


@dataclass(frozen=True)
class HealthReading:
    queries: int
    errors: int
    error_rate: float
    mean_latency_ms: float
    probe_error: str
    disk_usage: float | None
    spool_bytes: int | None
    spool_growth_bytes: int

    def measured(self) -> Measured:
        figures = Measured(
            error_rate=self.error_rate, mean_latency_ms=self.mean_latency_ms, spool_growth_bytes=self.spool_growth_bytes
        )
        if self.disk_usage is not None:
            figures["disk_usage"] = self.disk_usage
        return figures


@dataclass(frozen=True)
class Verdict:
    reading: HealthReading
    breaches: list[str]
    change: RolloutChange | None


@dataclass
class RollbackManager:
    """Judge health with ``check()``; ``run()`` does it every ``thresholds.interval_s``."""

    rollout: Rollout
    reader: QuestDBReader
    disk_probe: Callable[[], float | None]
    spool_probe: Callable[[], int | None] = lambda: None
    record: Callable[[RolloutEvent], object] | None = None
    checks: int = 0
    verdicts: deque[Verdict] = field(default_factory=lambda: deque(maxlen=100))
    events: deque[RolloutChange] = field(default_factory=lambda: deque(maxlen=100))
    _last_spool: int | None = None

    @property
    def stats(self) -> QueryStats:
        return self.reader.stats

    def read_health(self) -> HealthReading:
        probe_error = ""
        try:
            self.reader.probe()
        except QueryError as exc:
            probe_error = str(exc)
        window = self.stats.take()
        spool = self.spool_probe()
        growth = 0 if spool is None or self._last_spool is None else max(0, spool - self._last_spool)
        if spool is not None:
            self._last_spool = spool
        return HealthReading(
            queries=window.queries,
            errors=window.errors,
            error_rate=window.error_rate,
            mean_latency_ms=window.mean_latency_ms,
            probe_error=probe_error,
            disk_usage=self.disk_probe(),
            spool_bytes=spool,
            spool_growth_bytes=growth,
        )

    def breaches(self, r: HealthReading) -> list[str]:
        t = self.rollout.config.rollback
        out = []
        if r.probe_error:
            out.append(f"QuestDB does not answer: {r.probe_error}")
        if r.queries >= t.min_queries and r.error_rate > t.max_error_rate:
            out.append(f"query error rate {r.error_rate:.1%} > {t.max_error_rate:.1%} ({r.errors}/{r.queries})")
        if r.queries >= t.min_queries and r.mean_latency_ms > t.max_mean_latency_ms:
            out.append(f"mean query latency {r.mean_latency_ms:.0f} ms > {t.max_mean_latency_ms:.0f} ms")
        if r.disk_usage is not None and r.disk_usage > t.max_disk_usage:
            out.append(f"disk usage {r.disk_usage:.1%} > {t.max_disk_usage:.1%}")
        if r.spool_growth_bytes > t.max_spool_growth_bytes:
            out.append(f"sender spool grew {r.spool_growth_bytes:,} bytes > {t.max_spool_growth_bytes:,}")
        return out

    def check(self) -> Verdict:
        """One evaluation: read health, roll back on a breach, advance when due and allowed."""
        self.checks += 1
        self.rollout.refresh()
        reading = self.read_health()
        breaches = self.breaches(reading)
        change: RolloutChange | None = None
        phase = self.rollout.current().number
        if breaches and phase > 0:
            change = self.rollout.rollback(
                "; ".join(breaches),
                to_buffer=self.rollout.config.rollback.to_buffer,
                measured=reading.measured(),
                actor="rollback-manager",
            )
            log.error("rollback phase %d → %d: %s", change.from_phase, change.to_phase, change.reason)
        elif breaches:
            log.warning("QuestDB unhealthy, reads already on the buffer only: %s", "; ".join(breaches))
        elif self.rollout.config.auto_advance and self.rollout.due() and phase < self.rollout.config.last:
            change = self.rollout.advance("phase duration passed, health within thresholds", actor="rollback-manager")
            log.info("advance phase %d → %d", change.from_phase, change.to_phase)
        if change is not None:
            self.events.append(change)
            self._write(change)
        verdict = Verdict(reading, breaches, change)
        self.verdicts.append(verdict)
        return verdict

    def _write(self, change: RolloutChange) -> None:
        if self.record is None:
            return
        try:
            self.record(change.event())
        except PumpwatchError as exc:
            log.warning("rollout event not written to QuestDB (kept in the state file): %s", exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Check every interval until ``stop`` is set (a failing check is logged, never fatal)."""
        interval = self.rollout.config.rollback.interval_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.check)
            except Exception:
                log.exception("rollback check failed")
