"""Streaming benchmark: a steady rate through the sharded sender, measuring end-to-end delay
(trade creation → visible to SQL) and the sender processes' peak RSS."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..load import RssProbe, VisibilityProbe, run_load
from ..pacing import RateSchedule
from ..sender import ShardedSender
from .insert import _drop, _wait_ready, fresh_tables
from .machine import machine_info

_PREFIX = "bench_stream_"


@dataclass
class StreamResult:
    rate: float
    seconds: float
    workers: int
    flush_interval: float
    batch_rows: int
    submitted: int
    achieved_rate: float
    visible_p50_ms: float
    visible_p99_ms: float
    visible_max_ms: float
    confirmed_delay_ms: dict[str, float]
    peak_rss_mib: float
    peak_router_rss_mib: float
    late_ticks: int
    books_balanced: bool
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def delay_target_ms(self) -> float:
        return self.flush_interval * 1000 + 250

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": "stream", **asdict(self), "delay_target_ms": self.delay_target_ms}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def run_stream_benchmark(
    settings: Settings, *, rate: float, seconds: float, workers: int, console: Console | None = None
) -> StreamResult:
    scoped = fresh_tables(settings, _PREFIX)
    table = scoped.table("trades")
    probe = VisibilityProbe(scoped, table).start()
    with ShardedSender(scoped, workers=workers) as snd:
        _wait_ready(snd)
        rss = RssProbe(snd).start()
        stats = run_load(snd, RateSchedule.steady(rate), duration=seconds, symbols=300)
        snd.flush()
        rss.stop()
    metrics = snd.metrics()
    if not probe.wait_for(stats.submitted):
        raise AssertionError(f"not every row became visible ({probe.samples[-1][1]} of {stats.submitted})")
    time.sleep(0.05)
    probe.stop()
    delays = probe.delays_ms(stats.created)
    _drop(settings, _PREFIX)
    result = StreamResult(
        rate=rate,
        seconds=seconds,
        workers=workers,
        flush_interval=scoped.ingest.flush_interval,
        batch_rows=scoped.ingest.batch_rows,
        submitted=stats.submitted,
        achieved_rate=round(stats.submitted / stats.elapsed, 1),
        visible_p50_ms=round(float(np.percentile(delays, 50)), 1),
        visible_p99_ms=round(float(np.percentile(delays, 99)), 1),
        visible_max_ms=round(float(delays.max()), 1),
        confirmed_delay_ms=metrics.delay_ms,
        peak_rss_mib=round(rss.max_bytes / 2**20, 1),
        peak_router_rss_mib=round(rss.max_router_bytes / 2**20, 1),
        late_ticks=stats.late_ticks,
        books_balanced=metrics.books.balanced,
        machine=machine_info("ILP/HTTP"),
    )
    if console:
        print_report(result, console)
    return result


def with_flush_interval(settings: Settings, flush_interval: float | None) -> Settings:
    if flush_interval is None:
        return settings
    return replace(settings, ingest=replace(settings.ingest, flush_interval=flush_interval))


def print_report(r: StreamResult, console: Console) -> None:
    t = Table(title=f"stream {r.rate:,.0f} trades/s for {r.seconds:.0f}s, {r.workers} workers")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("submitted", f"{r.submitted:,} ({r.achieved_rate:,.0f}/s, {r.late_ticks} late ticks)")
    t.add_row(
        "visible delay p50 / p99 / max",
        f"{r.visible_p50_ms:,.0f} / {r.visible_p99_ms:,.0f} / {r.visible_max_ms:,.0f} ms",
    )
    t.add_row("target p99", f"< {r.delay_target_ms:,.0f} ms (flush_interval + 250 ms)")
    d = r.confirmed_delay_ms
    t.add_row("confirmed delay mean / max", f"{d.get('mean_ms', 0):,.0f} / {d.get('max_ms', 0):,.0f} ms")
    t.add_row("peak RSS (router + workers)", f"{r.peak_rss_mib:,.0f} MiB (router {r.peak_router_rss_mib:,.0f} MiB)")
    t.add_row("books balanced", str(r.books_balanced))
    console.print(t)
