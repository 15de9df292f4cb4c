"""Connector benchmarks: parser throughput per venue, and the in-memory pipeline
(frames → parsers → router → sender → QuestDB) next to a single-process baseline.

The frames are the venues' own wire format, produced by each venue's replay encoder from
synthetic trades (several trades per call, so batching venues get multi-trade frames as they send
under load). Both pipeline contenders parse the same frames with the same parsers; the baseline
then builds the DataFrame and calls ``Sender.dataframe`` in the same process, as a simple feed
handler would, while our pipeline hands columns to the sharded sender's worker processes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..connectors.core import Frame, FrameParser, Instruments, TradeColumns, VenueProtocol
from ..connectors.registry import Connector
from ..connectors.synthetic import symbol_universe
from ..models import Trade, now_ns
from ..sender import ShardedSender
from .cpu import CpuMeter, questdb_pid
from .insert import _drop, _wait_ready, fresh_tables
from .machine import machine_info

if TYPE_CHECKING:
    from ..connectors.replay_process import ReplayProcess
    from .contest import ContestResult

TRADES_PER_CALL = 4


@dataclass
class VenueMix:
    name: str
    proto: VenueProtocol
    instruments: Instruments
    frames: list[Frame]
    trades: int


def _venue_quote(proto: VenueProtocol) -> str:
    return "KRW" if proto.spec.exchange in ("upbit", "bithumb") else "USDT"


def build_mix(
    connectors: Sequence[Connector], trades_per_connector: int, symbols: int = 20, seed: int = 5
) -> list[VenueMix]:
    """Per connector: wire frames carrying ``trades_per_connector`` trades over ``symbols`` instruments."""
    rng = np.random.default_rng(seed)
    mixes = []
    start = now_ns() - 3_600_000_000_000
    for c in connectors:
        proto = c.protocol()
        quote = _venue_quote(proto)
        insts = [proto.instrument_for(s.split("-")[0], quote) for s in symbol_universe(symbols)]
        contracts = proto.spec.market_type == "futures"
        frames: list[Frame] = []
        n = 0
        # Ids consecutive per instrument, as the venues number them: a global counter made every
        # Binance frame look like a hole in the stream (a gap and a REST backfill per frame).
        next_id = [1_000_000] * len(insts)
        prices = 10 ** rng.uniform(-1, 4, size=len(insts))
        while n < trades_per_connector:
            k = rng.integers(0, len(insts))
            inst = insts[k]
            group = []
            for _ in range(min(TRADES_PER_CALL, trades_per_connector - n)):
                next_id[k] += 1
                n += 1
                # Futures venues count whole contracts (even at multiplier 1); spot sends base units.
                if contracts:
                    qty = inst.to_base(int(rng.integers(1, 50)))
                else:
                    qty = round(float(rng.exponential(5)) + 0.001, 6)
                group.append(
                    Trade(
                        ts_ns=start + n * 1_000_000,
                        exchange=proto.spec.exchange,
                        market_type=proto.spec.market_type,
                        symbol=inst.symbol,
                        price=round(float(prices[k] * (1 + rng.normal(0, 0.001))), 4),
                        quantity=qty,
                        side="buy" if rng.random() < 0.5 else "sell",
                        trade_id=str(next_id[k]),
                    )
                )
            frames.extend(proto.encode_trades(inst, group))
        mixes.append(VenueMix(c.name, proto, Instruments(insts), frames, n))
    return mixes


def _parse_all(parse: FrameParser, frames: list[Frame], out: TradeColumns, recv_ns: int) -> None:
    for frame in frames:
        parse(frame, recv_ns, out)


@dataclass
class ParseRow:
    connector: str
    frames: int
    trades: int
    seconds: float

    @property
    def trades_per_s(self) -> float:
        return self.trades / self.seconds


def bench_parse(mixes: list[VenueMix], repeat: int = 3) -> list[ParseRow]:
    """Best-of-``repeat`` single-core parse time per venue (frames → trade columns → TradeBatch)."""
    rows = []
    for mix in mixes:
        parse = mix.proto.make_parser(mix.instruments)
        best = float("inf")
        for _ in range(repeat):
            out = TradeColumns()
            t0 = time.perf_counter()
            _parse_all(parse, mix.frames, out, 1)
            out.drain(mix.proto.spec.exchange, mix.proto.spec.market_type)
            best = min(best, time.perf_counter() - t0)
        rows.append(ParseRow(mix.name, len(mix.frames), mix.trades, best))
    return rows


@dataclass
class ConnectorBenchResult:
    parse: list[ParseRow]
    contest: ContestResult | None
    e2e: E2EResult | None = None
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def e2e_vs_simple(self) -> float:
        """End to end through the replay sockets, as a multiple of the in-memory simple baseline."""
        from .contest import SIMPLE

        base = self.contest.median(SIMPLE) if self.contest else 0.0
        return self.e2e.trades_per_s / base if self.e2e and base else 0.0

    def to_json(self) -> str:
        parse = [asdict(p) | {"trades_per_s": p.trades_per_s} for p in self.parse]
        total_trades = sum(p.trades for p in self.parse)
        total_s = sum(p.seconds for p in self.parse)
        body: dict[str, Any] = {
            "benchmark": "connectors",
            "parse": parse,
            "parse_overall_trades_per_s": total_trades / total_s if total_s else 0.0,
            "machine": self.machine,
        }
        if self.contest is not None:
            body["contest"] = self.contest.to_dict()
        if self.e2e is not None:
            body["e2e"] = asdict(self.e2e) | {"vs_simple": self.e2e_vs_simple}
        return json.dumps(body, indent=2)


def print_parse(rows: list[ParseRow], console: Console) -> None:
    table = Table(title="parser throughput, one core (frames → trade columns → TradeBatch, best of 3)")
    for col in ("connector", "frames", "trades", "trades/frame", "trades/s"):
        table.add_column(col, justify="left" if col == "connector" else "right")
    for r in rows:
        table.add_row(
            r.connector, f"{r.frames:,}", f"{r.trades:,}", f"{r.trades / r.frames:.1f}", f"{r.trades_per_s:,.0f}"
        )
    total_t, total_s = sum(r.trades for r in rows), sum(r.seconds for r in rows)
    table.add_row(
        "[b]overall[/]", f"{sum(r.frames for r in rows):,}", f"{total_t:,}", "", f"[b]{total_t / total_s:,.0f}[/]"
    )
    console.print(table)


def run_connector_benchmark(
    settings: Settings,
    connectors: Sequence[Connector],
    *,
    trades: int,
    workers: int,
    repeat: int,
    pipeline: bool,
    console: Console,
    contest_trades: int = 300_000,
    contest_symbols: int = 200,
    e2e: bool = True,
) -> ConnectorBenchResult:
    """Parser throughput per venue; then (``pipeline``) the contest on Binance ``@trade`` frames with
    its per-stage CPU table, and the product end to end through the replay server's sockets on the
    same frames, reported against the contest's simple baseline."""
    from ..connectors.registry import select
    from .contest import print_contest, print_stages, run_contest, stage_costs

    per = max(1, trades // len(connectors))
    parse = bench_parse(build_mix(connectors, per))
    print_parse(parse, console)
    result = ConnectorBenchResult(parse, None, machine=machine_info("http"))
    if not pipeline:
        return result
    binance = select("binance_spot")
    mix = build_mix(binance, contest_trades, symbols=contest_symbols)[0]
    contest = run_contest(settings, mix, workers=workers, repeat=repeat, console=console)
    contest.stages = stage_costs(mix)
    contest.machine = result.machine
    result.contest = contest
    print_stages(contest.stages, console)
    print_contest(contest, console)
    if e2e:
        result.e2e = bench_e2e(
            settings,
            binance,
            trades=contest_trades,
            rate=2 * contest_trades,  # offered faster than it can land: the figure is capacity
            workers=workers,
            symbols=contest_symbols,
            playback=True,
            console=console,
        )
        console.print(
            f"end to end through the replay sockets: {result.e2e.trades_per_s:,.0f} trades/s = "
            f"[b]{result.e2e_vs_simple:.2f}x[/] the in-memory simple baseline"
        )
    return result


@dataclass
class E2EResult:
    trades: int
    rate_asked: float
    connectors: list[str]
    workers: int
    generated: int
    landed: int
    distinct: int
    seconds_to_visible: float
    trades_per_s: float
    seconds_generating: float
    dead_letters: int
    gaps: int
    slow_drops: int
    peak_rss_mib: float
    cpu_s: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"benchmark": "connectors-e2e", **asdict(self)}, indent=2)


def write_session(directory: Path, mixes: list[VenueMix], rate: float) -> int:
    """The mixes as a recorded session paced at ``rate`` trades/s in all (each connector an equal
    share), for the replay server's playback; returns the trades it carries."""
    from ..connectors.replay.session import SessionWriter

    per_connector = rate / max(1, len(mixes))
    t0 = now_ns()
    total = 0
    with SessionWriter(directory) as writer:
        for mix in mixes:
            parse = mix.proto.make_parser(mix.instruments)
            out = TradeColumns()
            done = 0
            for frame in mix.frames:
                writer.write(mix.name, t0 + int(done / per_connector * 1e9), frame)
                done += parse(frame, t0, out)
                out.clear()
            total += done
    return total


def against_replay(scoped: Settings, base_url: str, tmp: str) -> Settings:
    """The benchmark's settings pointed at a replay server, with dead letters and spool in ``tmp``."""
    return replace(
        scoped,
        connectors=replace(scoped.connectors, base_url=base_url, dead_letter_dir=f"{tmp}/dead"),
        sender=replace(scoped.sender, spool_dir=f"{tmp}/spool"),
    )


def pipeline_cpu(settings: Settings, snd: ShardedSender, replay: ReplayProcess) -> CpuMeter:
    """CPU per role of a replay-server run: this process, the workers, the server and QuestDB."""
    assert replay.proc is not None
    roles = {"connectors + router": [os.getpid()], "sender workers": snd.worker_pids()}
    roles |= {"replay server": [replay.proc.pid], "questdb": [p for p in [questdb_pid(settings)] if p]}
    return CpuMeter(roles)


def bench_e2e(
    settings: Settings,
    connectors: Sequence[Connector],
    *,
    trades: int,
    rate: float,
    workers: int,
    symbols: int,
    console: Console,
    playback: bool = False,
) -> E2EResult:
    """Replay server (child process) → sockets → connectors → sender → QuestDB, until ``count()`` has all.

    ``playback``: the server plays a session written beforehand (frames already encoded, paced at
    ``rate``) instead of generating and encoding trades while the clock runs, so the server costs
    little more than its socket writes and the figure is the connectors' and the sender's."""
    import asyncio
    import tempfile

    from ..connectors.pipeline import Pipeline, SenderSink
    from ..connectors.replay.control import ReplayControl
    from ..connectors.replay_process import ReplayProcess
    from ..load import RssProbe
    from ..store import queries
    from ..store.pg import connect

    names = [c.name for c in connectors]
    scoped = fresh_tables(settings, "bench_e2e_")
    table = scoped.table("trades")
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = tmp_dir.name
    if playback:
        mixes = build_mix(connectors, max(1, trades // len(connectors)), symbols=symbols)
        trades = write_session(Path(tmp) / "session", mixes, rate)
        # The same instruments as the frames: the server counts each frame's trades with them.
        args = [
            "--connectors",
            ",".join(names),
            "--symbols",
            str(symbols),
            "--session",
            f"{tmp}/session",
            "--speed",
            "1",
        ]
    else:
        args = ["--connectors", ",".join(names), "--symbols", str(symbols), "--rate", str(rate)]
        args += ["--burst-seconds", "0", "--max-trades", str(trades)]

    def sent(stats: dict[str, Any]) -> int:
        if playback:
            return sum(int(v["trades_delivered"]) for v in stats["connectors"].values())
        return int(stats["generated_total"])

    with tmp_dir, ReplayProcess(args) as replay:
        run_settings = against_replay(scoped, replay.base_url, tmp)
        with ShardedSender(run_settings, workers=workers) as snd:
            _wait_ready(snd)
            rss = RssProbe(snd).start()
            meter = pipeline_cpu(settings, snd, replay)

            async def drive() -> tuple[Pipeline, dict[str, Any], float]:
                from ..connectors.pipeline import MemoryEvents

                pipeline = Pipeline(run_settings, connectors, sink=SenderSink(snd), events=MemoryEvents())
                async with ReplayControl(replay.base_url) as ctl:
                    await ctl.pause()
                    pipeline.start()
                    await pipeline.wait_ready(60)
                    await asyncio.sleep(2.0)  # sockets open and subscribed
                    meter.start()
                    await ctl.resume()
                    started = time.perf_counter()
                    while True:
                        stats = await ctl.stats()
                        if sent(stats) >= trades:
                            generated_s[0] = time.perf_counter() - started
                            break
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(0.5)
                    stats = await ctl.stats()
                    deadline = time.monotonic() + 120
                    while sum(f.stats.trades for f in pipeline.feeds) < trades and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                await pipeline.stop()
                return pipeline, stats, started

            generated_s = [0.0]
            pipeline, stats, started = asyncio.run(drive())
            snd.flush(timeout=300)
            cpu = meter.stop()
            with connect(run_settings) as conn:
                deadline = time.monotonic() + 300
                while True:
                    queries.wait_visible(conn, table, timeout=300)
                    count, _, _ = queries.table_totals(conn, table)
                    if count >= trades or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                visible_at = time.perf_counter()
                key = "concat(exchange, '|', market_type, '|', symbol, '|', trade_id)"
                distinct_sql = f"SELECT count(), count_distinct({key}) FROM {table}"
                row = conn.execute(distinct_sql).fetchone()
            rss.stop()
            peak = rss.max_bytes
    _drop(settings, "bench_e2e_")
    landed, distinct = (int(str(row[0])), int(str(row[1]))) if row else (0, 0)
    elapsed = visible_at - started
    result = E2EResult(
        trades=trades,
        rate_asked=rate,
        connectors=names,
        workers=workers,
        generated=sent(stats),
        landed=landed,
        distinct=distinct,
        seconds_to_visible=elapsed,
        trades_per_s=landed / elapsed,
        seconds_generating=generated_s[0],
        dead_letters=sum(f.stats.dead_letters for f in pipeline.feeds),
        gaps=sum(f.stats.gaps for f in pipeline.feeds),
        slow_drops=sum(int(v["slow_drops"]) for v in stats["connectors"].values()),
        peak_rss_mib=peak / 2**20,
        cpu_s=cpu,
        machine=machine_info("http"),
    )
    print_e2e(result, console)
    return result


def print_e2e(r: E2EResult, console: Console) -> None:
    table = Table(title=f"end to end: replay sockets → {len(r.connectors)} connectors → sender x{r.workers} → QuestDB")
    cols = ["asked rate", "generated", "s generating", "landed", "distinct", "s to visible", "trades/s", "dead"]
    for col in (*cols, "gaps", "cut slow", "peak RSS MiB"):
        table.add_column(col, justify="right")
    values = (
        f"{r.rate_asked:,.0f}", f"{r.generated:,}", f"{r.seconds_generating:.2f}", f"{r.landed:,}",
        f"{r.distinct:,}", f"{r.seconds_to_visible:.2f}", f"{r.trades_per_s:,.0f}", f"{r.dead_letters:,}",
        f"{r.gaps:,}", f"{r.slow_drops:,}", f"{r.peak_rss_mib:,.0f}",
    )  # fmt: skip
    table.add_row(*values)
    console.print(table)
    if r.cpu_s:
        split = ", ".join(f"{role} {seconds:.2f}" for role, seconds in r.cpu_s.items())
        console.print(
            f"CPU seconds from resume to all confirmed: {split} (of {2 * r.seconds_to_visible:.1f} on 2 cores)"
        )
