"""Synthetic load through the sharded sender: the seed's pattern of a steady base rate with pumps.

The generator submits a batch every ``tick`` on an absolute schedule (so a slow tick is caught up,
not lost), stamping each trade with its creation time so end-to-end delay can be measured. The
optional probes sample visibility (``count()`` over PGWire) and the sender processes' RSS.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import Settings
from .connectors import SyntheticMarket
from .pacing import Pacer, RateSchedule
from .sender import ShardedSender
from .store.pg import connect


@dataclass
class LoadStats:
    submitted: int = 0
    ticks: int = 0
    late_ticks: int = 0
    started: float = 0.0
    elapsed: float = 0.0
    rate_now: float = 0.0
    created: list[tuple[int, int]] = field(default_factory=list)  # (creation ns, rows) per tick


def run_load(
    sender: ShardedSender,
    pattern: RateSchedule,
    *,
    duration: float,
    symbols: int = 300,
    seed: int = 5,
    tick: float = 0.05,
    stop: threading.Event | None = None,
    on_tick: Callable[[LoadStats], None] | None = None,
    run_id: str | None = None,
) -> LoadStats:
    """Submit the pattern for ``duration`` seconds (or until ``stop`` is set)."""
    market = SyntheticMarket(symbols=symbols, seed=seed, run_id=run_id)
    stats = LoadStats(started=time.monotonic())
    pacer = Pacer(pattern, stats.started)
    next_tick = stats.started
    while True:
        now = time.monotonic()
        stats.elapsed = now - stats.started
        if stats.elapsed >= duration or (stop is not None and stop.is_set()):
            break
        stats.rate_now = pattern.rate_at(stats.elapsed)
        rows = pacer.due(now)
        if rows:
            created = time.time_ns()
            # Exchange times within the last microseconds: the trade "happened" now.
            batch = market.batch(rows, start_ns=created - rows - 1000, span_ns=rows + 1000)
            sender.submit(batch)
            stats.submitted += rows
            stats.created.append((created, rows))
        stats.ticks += 1
        if on_tick is not None:
            on_tick(stats)
        next_tick += tick
        pause = next_tick - time.monotonic()
        if pause > 0:
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
        else:
            stats.late_ticks += 1
    stats.elapsed = time.monotonic() - stats.started
    return stats


class VisibilityProbe:
    """Polls ``count()`` of a table that only this run writes, to time when rows become visible."""

    def __init__(self, settings: Settings, table: str, interval: float = 0.01) -> None:
        self._settings = settings
        self._table = table
        self._interval = interval
        self.samples: list[tuple[int, int]] = []  # (ns, count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-probe", daemon=True)

    def start(self) -> VisibilityProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        with connect(self._settings) as conn:
            query = f'SELECT count() FROM "{self._table}"'
            while not self._stop.is_set():
                row = conn.execute(query).fetchone()
                self.samples.append((time.time_ns(), int(str(row[0])) if row else 0))
                self._stop.wait(self._interval)

    def wait_for(self, rows: int, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.samples and self.samples[-1][1] >= rows:
                return True
            time.sleep(self._interval)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def delays_ms(self, created: list[tuple[int, int]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Per row: first sample showing it minus its creation time (rows assumed visible in order)."""
        created_ns = np.repeat(np.array([c for c, _ in created], dtype=np.int64), [n for _, n in created])
        times = np.array([t for t, _ in self.samples], dtype=np.int64)
        counts = np.array([c for _, c in self.samples], dtype=np.int64)
        first = np.searchsorted(counts, np.arange(len(created_ns)), side="right")
        if len(first) and first[-1] >= len(times):
            raise RuntimeError(f"only {counts[-1] if len(counts) else 0} of {len(created_ns)} rows became visible")
        return (times[first] - created_ns).astype(np.float64) / 1e6


class RssProbe:
    """Samples the summed resident memory of this process and the sender's workers."""

    def __init__(self, sender: ShardedSender, interval: float = 0.25) -> None:
        self._sender = sender
        self._interval = interval
        self.max_bytes = 0
        self.max_router_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-probe", daemon=True)

    def start(self) -> RssProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            router = rss_bytes(os.getpid())
            total = router + sum(rss_bytes(pid) for pid in self._sender.worker_pids() if pid)
            self.max_router_bytes = max(self.max_router_bytes, router)
            self.max_bytes = max(self.max_bytes, total)
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
