"""Listing-window query benchmark: the same ±N s windows read from QuestDB and from the ring buffer.

Loads ``trades`` synthetic trades spread over the last hour across 12 venues and ``universe``
symbols (uniformly, so each window holds a typical share) into the ring buffer and, through the
sharded sender, into a freshly migrated ``bench_query_`` namespace. Then, for ``symbols``
randomly chosen base assets, ``rounds`` windows each at random triggers: every window is read
from both sources, timed, and the two answers must agree per venue and trade id.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.progress import Progress
from rich.table import Table

from ..config import Settings
from ..connectors.registry import CONNECTORS
from ..connectors.synthetic import symbol_universe
from ..hybrid.compare import diff_windows
from ..hybrid.reader import QuestDBReader
from ..hybrid.ring import RingBuffer
from ..load import rss_bytes
from ..models import NO_SEQUENCE, TradeBatch, now_ns
from ..sender import ShardedSender
from ..store import queries
from ..store.market import wait_view_fresh
from ..store.pg import connect
from .insert import fresh_tables
from .machine import machine_info

NS = 1_000_000_000
HOUR_NS = 3600 * NS


@dataclass
class QueryBenchResult:
    trades: int
    venues: int
    universe: int
    timerange_s: float
    symbols: list[str]
    rounds: int
    load_s: float
    visible_s: float
    buffer_bytes: int
    buffer_rss_mib: float
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rows_per_window: dict[str, float] = field(default_factory=dict)
    disagreements: int = 0
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
        "n": float(len(arr)),
    }


def _batch(
    rng: np.random.Generator, rows: int, start_ns: int, span_ns: int, symbols: npt.NDArray[np.object_], first_id: int
) -> TradeBatch:
    venues = CONNECTORS[:12]
    conn_idx = rng.integers(0, len(venues), size=rows)
    sym_idx = rng.integers(0, len(symbols), size=rows)
    ts = start_ns + np.sort(rng.integers(0, span_ns, size=rows))
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    return TradeBatch(
        ts_ns=ts.astype(np.int64),
        exchange=np.array([c.exchange for c in venues], dtype=object)[conn_idx],
        market_type=np.array([c.market_type for c in venues], dtype=object)[conn_idx],
        symbol=symbols[sym_idx],
        price=np.round(rng.uniform(0.5, 2.0, size=rows) * 100, 6),
        quantity=np.round(rng.exponential(10.0, size=rows) + 1e-6, 6),
        side=np.where(rng.random(rows) < 0.5, "buy", "sell").astype(object),
        trade_id=ids.astype(str).astype(object),
        sequence_number=np.full(rows, NO_SEQUENCE, dtype=np.int64),
        recv_ns=ts.astype(np.int64),
    )


def _rss_mib() -> float:
    return rss_bytes(os.getpid()) / 2**20


def run_query_bench(
    settings: Settings,
    *,
    trades: int = 10_000_000,
    universe: int = 300,
    timerange_s: float = 40.0,
    symbols: int = 10,
    rounds: int = 20,
    workers: int | None = None,
    seed: int = 11,
    chunk: int = 250_000,
) -> QueryBenchResult:
    rng = np.random.default_rng(seed)
    scoped = fresh_tables(settings, "bench_query_")
    names = np.array(symbol_universe(universe), dtype=object)
    end_ns = now_ns() - 5 * NS
    start_ns = end_ns - HOUR_NS
    ring = RingBuffer(hot_window_s=2 * 3600, memory_cap_bytes=settings.hybrid.memory_cap_mb << 20)
    rss_before = _rss_mib()
    started = time.perf_counter()
    with ShardedSender(scoped, workers=workers).start() as sender, Progress(transient=True) as progress:
        task = progress.add_task("loading trades (ring buffer + QuestDB)", total=trades)
        span = HOUR_NS // max(1, -(-trades // chunk))
        for i, first in enumerate(range(0, trades, chunk)):
            rows = min(chunk, trades - first)
            batch = _batch(rng, rows, start_ns + i * span, span, names, first)
            ring.append(batch)
            sender.submit(batch, validate=False)
            progress.advance(task, rows)
        sender.flush()
        load_s = time.perf_counter() - started
    with connect(scoped) as conn:
        queries.wait_visible(conn, scoped.table("trades"), timeout=600)
    visible_s = time.perf_counter() - started
    buffer_rss = _rss_mib() - rss_before

    chosen = [str(s).split("-", 1)[0] for s in rng.choice(names, size=min(symbols, len(names)), replace=False)]
    half = int(timerange_s * NS / 2)
    windows = [(base, int(rng.integers(start_ns + half, end_ns - half))) for base in chosen for _ in range(rounds)]
    reader = QuestDBReader(scoped)
    lat: dict[str, list[float]] = {"buffer": [], "questdb": []}
    answers: dict[str, list[dict[str, TradeBatch]]] = {"buffer": [], "questdb": []}
    try:
        with connect(scoped) as conn:
            wait_view_fresh(conn, scoped, timeout=600)  # candles_1m catching up would compete for the CPU
        reader.window(chosen[0], start_ns, start_ns + NS)  # connect and warm the plan before timing
        ring.window(chosen[0], start_ns, start_ns + NS)
        # A long-running service freezes its start-up objects too; the timed loops then see only their own garbage.
        gc.collect()
        gc.freeze()
        # One source at a time, so neither pays for the other's after-effects (QuestDB's threads, caches).
        for source, read in (("buffer", ring.window), ("questdb", reader.window)):
            for base, trigger in windows:
                t0 = time.perf_counter()
                answer = read(base, trigger - half, trigger + half)
                lat[source].append((time.perf_counter() - t0) * 1e3)
                answers[source].append(answer)
    finally:
        gc.unfreeze()
        reader.close()
    rows_seen = [sum(len(b) for b in a.values()) for a in answers["buffer"]]
    disagreements = sum(
        diff_windows(a, b).differences for a, b in zip(answers["buffer"], answers["questdb"], strict=True)
    )
    return QueryBenchResult(
        trades=trades,
        venues=12,
        universe=universe,
        timerange_s=timerange_s,
        symbols=chosen,
        rounds=rounds,
        load_s=load_s,
        visible_s=visible_s,
        buffer_bytes=ring.memory_bytes,
        buffer_rss_mib=buffer_rss,
        latency_ms={source: _percentiles(values) for source, values in lat.items()},
        rows_per_window={
            "median": float(statistics.median(rows_seen)),
            "min": float(min(rows_seen)),
            "max": float(max(rows_seen)),
        },
        disagreements=disagreements,
        machine=machine_info("http"),
    )


def query_table(result: QueryBenchResult) -> Table:
    table = Table(
        title=(
            f"listing window ±{result.timerange_s / 2:g} s — {result.trades:,} trades, {result.venues} venues, "
            f"{result.universe} symbols; {len(result.symbols)} symbols x {result.rounds} windows"
        )
    )
    for col in ("source", "p50 ms", "p99 ms", "max ms", "target p99", "met"):
        table.add_column(col, justify="left" if col == "source" else "right")
    targets = {"questdb": 20.0, "buffer": 1.0}
    for source in ("questdb", "buffer"):
        s = result.latency_ms[source]
        ok = s["p99"] <= targets[source]
        table.add_row(
            source,
            f"{s['p50']:.3f}",
            f"{s['p99']:.3f}",
            f"{s['max']:.3f}",
            f"≤ {targets[source]:g} ms",
            "[green]yes[/]" if ok else "[red]no[/]",
        )
    return table
