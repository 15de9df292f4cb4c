"""Where a trade's seconds go: exchange timestamp → handed to the sender → taken by a worker →
confirmed by QuestDB, through the whole pipeline at a steady rate (the replay server's sockets,
the connectors, the sharded sender).

Each stage is an HDR histogram filled where the trade passes (the feeds, the workers' intake, the
workers' confirmations), so p99 per stage comes from every trade, not a sample. The target is the
one the batching itself allows: p99 of exchange-ts → confirmed ≤ ``ingest.flush_interval`` +
``ingest.min_linger`` + 250 ms; the table shows the bound next to the measurement.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..connectors.registry import Connector
from ..histogram import Histogram
from ..sender import ShardedSender
from .connectors import against_replay, pipeline_cpu
from .insert import _drop, _wait_ready, fresh_tables
from .machine import machine_info

SLACK_MS = 250.0  # what the target allows beyond the batching: parsing, hand-off, the request itself
PREFIX = "bench_lag_"


@dataclass
class LagResult:
    rate: float
    seconds: float
    connectors: list[str]
    workers: int
    flush_interval_s: float
    min_linger_s: float
    trades: int
    confirmed: int
    stages_ms: dict[str, dict[str, float]]  # stage → count/mean/p50/p90/p99/max
    per_feed_ms: dict[str, dict[str, float]]  # connector → exchange-ts → handed to the sender
    per_exchange_ms: dict[str, dict[str, float]]  # exchange → exchange-ts → confirmed
    cpu_s: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def target_ms(self) -> float:
        return (self.flush_interval_s + self.min_linger_s) * 1000 + SLACK_MS

    @property
    def met(self) -> bool:
        return self.stages_ms["confirmed"].get("p99_ms", float("inf")) <= self.target_ms

    def to_json(self) -> str:
        body = asdict(self) | {"benchmark": "lag", "target_ms": self.target_ms, "met": self.met}
        return json.dumps(body, indent=2)


def bench_lag(
    settings: Settings,
    connectors: Sequence[Connector],
    *,
    rate: float,
    seconds: float,
    workers: int,
    symbols: int,
    console: Console,
) -> LagResult:
    """``seconds`` of replay-server trades at ``rate`` (generated with the current time as their
    exchange timestamp, no bursts) through the connectors and the sender; the per-stage delays."""
    from ..connectors.pipeline import MemoryEvents, Pipeline, SenderSink
    from ..connectors.replay.control import ReplayControl
    from ..connectors.replay_process import ReplayProcess

    names = [c.name for c in connectors]
    scoped = fresh_tables(settings, PREFIX)
    args = ["--connectors", ",".join(names), "--symbols", str(symbols), "--rate", str(rate), "--burst-seconds", "0"]
    with tempfile.TemporaryDirectory() as tmp, ReplayProcess(args) as replay:
        run_settings = against_replay(scoped, replay.base_url, tmp)
        with ShardedSender(run_settings, workers=workers) as snd:
            _wait_ready(snd)
            meter = pipeline_cpu(settings, snd, replay)

            async def drive() -> Pipeline:
                pipeline = Pipeline(run_settings, connectors, sink=SenderSink(snd), events=MemoryEvents())
                async with ReplayControl(replay.base_url) as ctl:
                    await ctl.pause()
                    pipeline.start()
                    await pipeline.wait_ready(60)
                    await asyncio.sleep(1.0)  # subscribed everywhere before the clock starts
                    meter.start()
                    await ctl.resume()
                    with console.status(f"{rate:,.0f} trades/s for {seconds:.0f} s …"):
                        await asyncio.sleep(seconds)
                    await ctl.pause()
                    await asyncio.sleep(0.5)  # frames in flight reach the feeds
                await pipeline.stop()
                return pipeline

            pipeline = asyncio.run(drive())
            snd.flush(timeout=120)
            cpu = meter.stop()
            metrics = snd.metrics()
    _drop(settings, PREFIX)
    handed = Histogram()
    for feed in pipeline.feeds:
        handed.merge(feed.stats.lag_ms)
    result = LagResult(
        rate=rate,
        seconds=seconds,
        connectors=names,
        workers=workers,
        flush_interval_s=settings.ingest.flush_interval,
        min_linger_s=settings.ingest.min_linger,
        trades=sum(f.stats.trades for f in pipeline.feeds),
        confirmed=metrics.books.confirmed,
        stages_ms={
            "handed to the sender": handed.summary(),
            "taken by a worker": metrics.arrival_ms,
            "confirmed": metrics.delay_ms,
        },
        per_feed_ms={f.name: f.stats.lag_ms.summary() for f in pipeline.feeds},
        per_exchange_ms={ex: e.delay_ms for ex, e in metrics.exchanges.items()},
        cpu_s=cpu,
        machine=machine_info("http"),
    )
    print_lag(result, console)
    return result


def print_lag(r: LagResult, console: Console) -> None:
    title = (
        f"exchange timestamp → each stage, {r.rate:,.0f} trades/s for {r.seconds:.0f} s, "
        f"{len(r.connectors)} connectors, sender x{r.workers}"
    )
    table = Table(title=title)
    for col in ("stage", "trades", "mean", "p50", "p90", "p99", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, s in r.stages_ms.items():
        table.add_row(
            stage,
            f"{int(s.get('count', 0)):,}",
            *(f"{s.get(k, 0.0):,.1f} ms" for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")),
        )
    console.print(table)
    verdict = "[green]met[/]" if r.met else "[red]NOT met[/]"
    p99 = r.stages_ms["confirmed"].get("p99_ms", 0.0)
    console.print(
        f"target p99 exchange-ts → confirmed ≤ flush_interval {r.flush_interval_s:g} s + min_linger "
        f"{r.min_linger_s:g} s + {SLACK_MS:.0f} ms = {r.target_ms:,.0f} ms: {p99:,.0f} ms — {verdict}; "
        f"{r.confirmed:,} of {r.trades:,} trades confirmed"
    )
    if r.cpu_s:
        console.print("CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_s.items()))
