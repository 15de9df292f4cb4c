"""Hybrid run at the seed's load: replay server (base rate with bursts) → every connector →
ring buffer + sender → QuestDB, in compare mode, with new listings injected on the replay
server and random windows compared while it runs.

Passes when nothing differs (every compared window identical in the buffer and in QuestDB,
per venue and trade id) and nothing is lost (per connector, QuestDB rows = distinct trade ids =
trades the replay server generated, and the buffer received them all).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from psycopg import sql
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..connectors.pipeline import MemoryEvents, Pipeline
from ..connectors.registry import Connector
from ..connectors.replay.control import ReplayControl
from ..connectors.replay_process import ReplayProcess
from ..hybrid.runtime import HybridRuntime, run_hybrid
from ..models import now_ns
from ..sender import ShardedSender
from ..store import queries
from ..store.pg import connect
from .insert import _drop, _wait_ready, fresh_tables
from .machine import machine_info

NS = 1_000_000_000


@dataclass
class ListingOutcome:
    base: str
    status: str
    source: str
    counts: dict[str, int]
    sql_counts: dict[str, int]
    written: bool
    export: str


@dataclass
class HybridRunResult:
    seconds: float
    connectors: list[str]
    rate: float
    burst_rate: float
    generated: dict[str, int]
    landed: dict[str, int]
    distinct: dict[str, int]
    buffer_rows: int
    compares: int
    compares_with_diffs: int
    differences: int
    compare_skipped: int
    listings: list[ListingOutcome]
    rollbacks: int
    dead_letters: int
    gaps: int
    peak_rss_mib: float
    last_diff: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(max(0, n - self.landed.get(c, 0)) for c, n in self.generated.items())

    @property
    def duplicates(self) -> int:
        return sum(self.landed.get(c, 0) - self.distinct.get(c, 0) for c in self.generated)

    @property
    def passed(self) -> bool:
        exact = all(self.landed.get(c) == n == self.distinct.get(c) for c, n in self.generated.items())
        listings_ok = all(x.status == "collected" and x.counts == x.sql_counts for x in self.listings)
        return exact and self.differences == 0 and self.buffer_rows == sum(self.generated.values()) and listings_ok

    def to_json(self) -> str:
        out = asdict(self) | {"lost": self.lost, "duplicates": self.duplicates, "passed": self.passed}
        return json.dumps({"benchmark": "hybrid", **out}, indent=2)


def _venue_counts(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    table = settings.table("trades")
    with connect(settings) as conn:
        queries.wait_visible(conn, table, timeout=120)
        rows = conn.execute(
            sql.SQL(
                "SELECT exchange, market_type, count(), count_distinct(concat(symbol, '|', trade_id)) FROM {} "
                "GROUP BY exchange, market_type"
            ).format(sql.Identifier(table))
        ).fetchall()
    landed = {f"{r[0]}_{r[1]}": int(str(r[2])) for r in rows}
    distinct = {f"{r[0]}_{r[1]}": int(str(r[3])) for r in rows}
    return landed, distinct


def _window_sql_counts(settings: Settings, base: str, start_ns: int, end_ns: int) -> dict[str, int]:
    """Independent count of a window per venue (plain SQL, not the code under test)."""
    with connect(settings) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT exchange, market_type, count() FROM {} WHERE ts BETWEEN %s::long::timestamp_ns "
                "AND %s::long::timestamp_ns AND symbol LIKE %s GROUP BY exchange, market_type"
            ).format(sql.Identifier(settings.table("trades"))),
            (start_ns, end_ns, f"{base}-%"),
        ).fetchall()
    return {f"{r[0]}_{r[1]}": int(str(r[2])) for r in rows if int(str(r[2]))}


def run_settings_for(scoped: Settings, tmp: Path, base_url: str, before: float, after: float) -> Settings:
    """Settings for a hybrid run against a replay server, with every file under ``tmp``."""
    return replace(
        scoped,
        ingest=replace(scoped.ingest, flush_interval=0.2),
        connectors=replace(
            scoped.connectors,
            base_url=base_url,
            dead_letter_dir=str(tmp / "dead"),
            refresh_interval=1.0,
            reconnect_initial=0.2,
            reconnect_max=1.0,
        ),
        sender=replace(scoped.sender, spool_dir=str(tmp / "spool")),
        hybrid=replace(
            scoped.hybrid,
            export_dir=str(tmp / "listings"),
            rollout_state=str(tmp / "rollout.json"),
            window_before=before,
            window_after=after,
            window_settle=1.0,
            listing_poll_interval=0.5,
        ),
    )


async def drive_hybrid(
    settings: Settings,
    connectors: Sequence[Connector],
    runtime: HybridRuntime,
    ctl: ReplayControl,
    *,
    seconds: float,
    listing_every: float,
    compare_every: float,
    seed: int = 5,
    on_tick: Any = None,
) -> tuple[Pipeline, dict[str, Any], list[tuple[str, int, int]]]:
    """Run the feeds for ``seconds`` while listing new coins and comparing random windows; then
    pause the replay server, let every generated trade arrive and every due window be collected.

    Returns the pipeline, the replay server's final stats and the random windows compared."""
    rng = random.Random(seed)
    stop = asyncio.Event()
    holder: list[Pipeline] = []
    h = settings.hybrid

    def tick(pipeline: Pipeline, elapsed: float) -> None:
        if not holder:
            holder.append(pipeline)
        if on_tick is not None:
            on_tick(pipeline, elapsed)

    task = asyncio.create_task(
        run_hybrid(settings, connectors, runtime, events=MemoryEvents(), duration=None, on_tick=tick, stop=stop)
    )
    compared: list[tuple[str, int, int]] = []
    others = [c.name for c in connectors if c.name != "upbit_spot"]
    started = time.monotonic()
    next_listing = started + 3.0
    next_compare = started + 5.0
    listed = 0
    # Leave the last listing time to be collected before the end.
    last_listing_at = started + seconds - (h.window_after + h.window_settle + 3.0)
    while time.monotonic() - started < seconds:
        now = time.monotonic()
        if now >= next_listing and now <= last_listing_at and "upbit_spot" in {c.name for c in connectors}:
            listed += 1
            base = f"PUMP{listed:03d}"
            for name in others:
                await ctl.list_instrument(name, base, "KRW" if name == "bithumb_spot" else "USDT")
            await asyncio.sleep(2.5)  # the venues' symbol refresh subscribes it first
            await ctl.list_instrument("upbit_spot", base, "KRW")
            next_listing = now + listing_every
        if now >= next_compare and holder:
            bases = sorted({i.base for f in holder[0].feeds for i in f.instruments.values()})
            if bases:
                base = rng.choice(bases)
                trigger = now_ns() - int((h.window_after + 1.0) * 1e9)
                data = await runtime.manager.get_listing_data(base, trigger)
                compared.append((base, data.start_ns, data.end_ns))
            next_compare = now + compare_every
        await asyncio.sleep(0.2)
    await ctl.pause()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stats = await ctl.stats()
        if (
            holder
            and all(f.stats.trades >= stats["connectors"][f.name]["generated"]["count"] for f in holder[0].feeds)
            and (runtime.detector is None or not runtime.detector.collector.in_progress)
        ):
            break
        await asyncio.sleep(0.2)
    stats = await ctl.stats()
    stop.set()
    pipeline = await task
    return pipeline, stats, compared


def run_hybrid_bench(
    settings: Settings,
    connectors: Sequence[Connector],
    *,
    seconds: float = 300.0,
    symbols: int = 10,
    rate: float = 1000.0,
    burst_rate: float = 5000.0,
    burst_every: float = 60.0,
    burst_seconds: float = 10.0,
    listing_every: float = 30.0,
    compare_every: float = 5.0,
    workers: int | None = None,
    console: Console | None = None,
) -> HybridRunResult:
    from ..load import RssProbe

    names = [c.name for c in connectors]
    scoped = fresh_tables(settings, "bench_hybrid_")
    args = ["--connectors", ",".join(names), "--symbols", str(symbols), "--rate", str(rate)]
    args += ["--burst-rate", str(burst_rate), "--burst-every", str(burst_every), "--burst-seconds", str(burst_seconds)]
    with tempfile.TemporaryDirectory() as tmp_dir, ReplayProcess(args) as replay:
        tmp = Path(tmp_dir)
        run_settings = run_settings_for(scoped, tmp, replay.base_url, before=20.0, after=20.0)
        sender = ShardedSender(run_settings, workers=workers).start()
        runtime = HybridRuntime.build(run_settings, sender, compare=True)
        try:
            _wait_ready(sender)
            rss = RssProbe(sender).start()

            async def main() -> tuple[Pipeline, dict[str, Any], list[tuple[str, int, int]]]:
                async with ReplayControl(replay.base_url) as ctl:
                    return await drive_hybrid(
                        run_settings,
                        connectors,
                        runtime,
                        ctl,
                        seconds=seconds,
                        listing_every=listing_every,
                        compare_every=compare_every,
                    )

            pipeline, stats, _ = asyncio.run(main())
        finally:
            sender.close()
            runtime.close()
        rss.stop()
        landed, distinct = _venue_counts(run_settings)
        listings = []
        for c in runtime.detector.history if runtime.detector is not None else []:
            start = c.trigger.trigger_ns - int(run_settings.hybrid.window_before * NS)
            end = c.trigger.trigger_ns + int(run_settings.hybrid.window_after * NS)
            listings.append(
                ListingOutcome(
                    base=c.trigger.base,
                    status=c.status,
                    source=c.source,
                    counts=dict(c.counts),
                    sql_counts=_window_sql_counts(run_settings, c.trigger.base, start, end),
                    written=c.written,
                    export=str(c.export.directory) if c.export is not None else "",
                )
            )
    _drop(settings, "bench_hybrid_")
    ms = runtime.manager.stats
    result = HybridRunResult(
        seconds=seconds,
        connectors=names,
        rate=rate,
        burst_rate=burst_rate,
        generated={n: int(stats["connectors"][n]["generated"]["count"]) for n in names},
        landed=landed,
        distinct=distinct,
        buffer_rows=runtime.ring.stats().appended_rows,
        compares=ms.compares,
        compares_with_diffs=ms.compares_with_diffs,
        differences=ms.differences,
        compare_skipped=ms.compare_skipped,
        listings=listings,
        rollbacks=sum(1 for c in runtime.rollback.events if c.action == "rollback"),
        dead_letters=sum(f.stats.dead_letters for f in pipeline.feeds),
        gaps=sum(f.stats.gaps for f in pipeline.feeds),
        peak_rss_mib=rss.max_bytes / 2**20,
        last_diff=ms.last_diff,
        machine=machine_info("http"),
    )
    if console is not None:
        print_hybrid(result, console)
    return result


def print_hybrid(r: HybridRunResult, console: Console) -> None:
    table = Table(title=f"hybrid compare run: {r.seconds:,.0f}s at {r.rate:,.0f}/s, bursts {r.burst_rate:,.0f}/s")
    for col in ("generated", "in QuestDB", "distinct", "in buffer", "lost", "windows compared", "differences"):
        table.add_column(col, justify="right")
    table.add_column("listings collected", justify="right")
    table.add_column("result")
    total = sum(r.generated.values())
    ok = sum(1 for x in r.listings if x.status == "collected" and x.counts == x.sql_counts)
    table.add_row(
        f"{total:,}",
        f"{sum(r.landed.get(c, 0) for c in r.generated):,}",
        f"{sum(r.distinct.get(c, 0) for c in r.generated):,}",
        f"{r.buffer_rows:,}",
        f"{r.lost:,}",
        f"{r.compares:,}",
        f"{r.differences:,}",
        f"{ok}/{len(r.listings)}",
        "[green]pass[/]" if r.passed else "[red]FAIL[/]",
    )
    console.print(table)
    if r.listings:
        lt = Table(title="listings: window counts per venue (export = SQL)")
        for col in ("base", "status", "source", "trades", "venues", "matches SQL"):
            lt.add_column(col)
        for x in r.listings:
            lt.add_row(
                x.base,
                x.status,
                x.source,
                f"{sum(x.counts.values()):,}",
                str(len(x.counts)),
                "yes" if x.counts == x.sql_counts else f"no: {x.sql_counts}",
            )
        console.print(lt)
