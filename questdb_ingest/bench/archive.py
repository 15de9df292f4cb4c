"""``pumpwatch bench archive``: the archive runner against a single-process script, in one run.

The corpus is seed 004's scalp ticks (10 M across 200 files by default), written once under the
state root and reused. Each contender runs in a process of its own (so its peak RSS, CPU and
bytes read are its own) into a freshly migrated namespace, rounds alternating the order, and is
timed from its first byte read until ``count()`` shows every tick:

- **the product**: ``ArchiveRunner`` (hashing, ``ingest_state`` watermarks, reject logs,
  ``archive.parallel_files`` files at once, and the 1-minute bars recomputed from the ticks);
- **the baseline**, as simple as it gets: one process, file after file, each line decoded with
  a msgspec struct, columns built with numpy/pandas, ``Sender.dataframe`` in 50,000-row requests,
  one flush each. No state, no rejects, no bars.

Seed 000 asks for time per 1,000 records, memory and disk I/O: all three are in the table.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import questdb
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..ingest.ilp import writer_conf
from ..store import queries
from ..store.migrations import migrate
from ..store.pg import connect
from .cpu import CpuMeter, questdb_pid
from .machine import machine_info

PRODUCT = "pumpwatch archive ingest"
BASELINE = "simple script: msgspec → Sender.dataframe"
REQUEST_ROWS = 50_000


# --------------------------------------------------------------------------- corpus
def corpus(root: Path, ticks: int, files: int, symbols: int = 10, seed: int = 11) -> list[Path]:
    """``files`` scalp files holding ``ticks`` ticks in all (2 Hz per symbol), written once: a
    complete corpus (``corpus.json`` says so) is reused."""
    marker = root / "corpus.json"
    want = {"ticks": ticks, "files": files, "symbols": symbols, "seed": seed}
    paths = [root / "scalp" / f"{i:05d}" / "20260101_0000.jsonl" for i in range(files)]
    if marker.exists() and json.loads(marker.read_text()) == want and all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    per_file = ticks // files
    names = [f"{200000 + i:06d}" for i in range(symbols)]
    base = 1_767_225_600_000  # 2026-01-01T00:00Z, in ms
    for i, path in enumerate(paths):
        n = per_file + (1 if i < ticks % files else 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = -(-n // symbols)
        first = base + i * steps * 500
        ms = first + np.repeat(np.arange(steps) * 500, symbols)[:n]
        sym = np.tile(np.arange(symbols), steps)[:n]
        price = np.round(70_000 + np.cumsum(rng.integers(-5, 6, size=n)), 1)
        size = rng.integers(1, 500, size=(n, 3))
        stamps = pd.to_datetime(ms, unit="ms").strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3].to_numpy()
        lines = [
            f'{{"ts":"{t}Z","event_time":"{t}Z","symbol":"{names[s]}","bid_price":{p - 5},"ask_price":{p + 5},'
            f'"bid_size":{b},"ask_size":{a},"last_price":{p},"volume":{v},"session_id":"bench",'
            f'"mitigation_level":0,"quality_flag":"normal"}}\n'
            for t, s, p, b, a, v in zip(stamps, sym, price.tolist(), *size.T.tolist(), strict=True)
        ]
        path.write_text("".join(lines))
    marker.write_text(json.dumps(want))
    return paths


# --------------------------------------------------------------------------- contenders
class _Tick(msgspec.Struct, frozen=True):
    event_time: str
    symbol: str
    session_id: str
    ts: str
    bid_price: float
    ask_price: float
    bid_size: int
    ask_size: int
    last_price: float
    volume: int
    mitigation_level: int
    quality_flag: str


def _times(values: list[str]) -> Any:
    return pd.to_datetime(pd.Series(values), format="ISO8601", utc=True).dt.tz_localize(None)


def simple_ingest(settings: Settings, paths: list[Path]) -> int:
    """The baseline: file after file, msgspec structs → columns → ``Sender.dataframe`` per 50k rows."""
    decode = msgspec.json.Decoder(_Tick).decode
    table = settings.table("scalp_ticks")
    symbols = ["symbol", "session_id", "quality_flag", "schema_version", "source_file"]
    rows = 0
    with questdb.Sender.from_conf(writer_conf(settings.client_conf())) as sender:
        for path in paths:
            with path.open("rb") as fh:
                recs = [decode(line) for line in fh]
            for start in range(0, len(recs), REQUEST_ROWS):
                part = recs[start : start + REQUEST_ROWS]
                n = len(part)
                frame = pd.DataFrame(
                    {
                        "event_time": _times([r.event_time for r in part]),
                        "ts": _times([r.ts for r in part]),
                        "symbol": pd.Categorical([r.symbol for r in part]),
                        "bid_price": np.array([r.bid_price for r in part]),
                        "ask_price": np.array([r.ask_price for r in part]),
                        "bid_size": np.array([r.bid_size for r in part], dtype=np.int64),
                        "ask_size": np.array([r.ask_size for r in part], dtype=np.int64),
                        "last_price": np.array([r.last_price for r in part]),
                        "volume": np.array([r.volume for r in part], dtype=np.int64),
                        "session_id": pd.Categorical([r.session_id for r in part]),
                        "mitigation_level": np.array([r.mitigation_level for r in part], dtype=np.int32),
                        "quality_flag": pd.Categorical([r.quality_flag for r in part]),
                        "schema_version": pd.Categorical(["1.0"] * n),
                        "source_file": pd.Categorical([str(path)] * n),
                    }
                )
                sender.dataframe(frame, table_name=table, symbols=symbols, at="event_time")
                sender.flush()
                rows += n
    return rows


def product_ingest(settings: Settings, paths: list[Path]) -> int:
    from ..archive.runner import ArchiveRunner

    report = ArchiveRunner(settings).run(paths)
    if report.failed:
        raise RuntimeError(f"archive ingest failed: {report.failed[0].path}: {report.failed[0].error}")
    return report.rows_written


def _proc_io() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key.strip()] = int(value)
    except OSError:
        pass
    return out


def _child(which: str, settings: Settings, paths: list[Path], conn: Any) -> None:
    """One contender in a process of its own; sends back its clock, rows and resource use."""
    io0 = _proc_io()
    started = time.time()
    rows = (product_ingest if which == PRODUCT else simple_ingest)(settings, paths)
    sent = time.time()
    use = resource.getrusage(resource.RUSAGE_SELF)
    io1 = _proc_io()
    conn.send(
        {
            "started": started,
            "sent": sent,
            "rows": rows,
            "cpu_s": use.ru_utime + use.ru_stime,
            "peak_rss_mb": use.ru_maxrss / 1024,
            "read_mb": (io1.get("rchar", 0) - io0.get("rchar", 0)) / 1e6,
            "disk_read_mb": (io1.get("read_bytes", 0) - io0.get("read_bytes", 0)) / 1e6,
        }
    )
    conn.close()


@dataclass
class ArchiveRound:
    contender: str
    rows: int
    seconds: float
    cpu_s: float
    questdb_cpu_s: float
    peak_rss_mb: float
    read_mb: float
    disk_read_mb: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def ms_per_1000(self) -> float:
        return 1000 * self.seconds / self.rows * 1000


@dataclass
class ArchiveBenchResult:
    ticks: int
    files: int
    rounds: list[ArchiveRound] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def of(self, contender: str) -> list[ArchiveRound]:
        return [r for r in self.rounds if r.contender == contender]

    def median(self, contender: str, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.of(contender)))

    @property
    def ratio(self) -> float:
        return self.median(PRODUCT, "rows_per_s") / self.median(BASELINE, "rows_per_s")

    def to_json(self) -> str:
        body = asdict(self) | {"ratio_product_vs_baseline": self.ratio}
        return json.dumps(body, indent=2)


def run_archive_benchmark(
    settings: Settings,
    *,
    ticks: int = 10_000_000,
    files: int = 200,
    rounds: int = 2,
    console: Console | None = None,
) -> ArchiveBenchResult:
    root = Path(settings.state.dir) / "bench" / f"archive-{ticks}-{files}"
    if console:
        console.print(f"corpus: {ticks:,} ticks in {files} files under {root} (written once, then reused)")
    paths = corpus(root, ticks, files)
    result = ArchiveBenchResult(ticks, files, machine=machine_info("http"))
    ctx = multiprocessing.get_context("spawn")
    order = [PRODUCT, BASELINE]
    for n in range(rounds):
        for which in order if n % 2 == 0 else order[::-1]:
            scoped = replace(settings, schema=replace(settings.schema, table_prefix=f"bench_archive_{n}_"))
            with connect(scoped) as conn:
                queries.drop_prefixed(conn, [scoped.schema.table_prefix])
                migrate(conn, scoped)
            meter = CpuMeter({"questdb": [pid] if (pid := questdb_pid(settings)) else []}).start()
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(which, scoped, paths, child))
            proc.start()
            stats = parent.recv()
            proc.join()
            with connect(scoped) as conn:
                queries.wait_visible(conn, scoped.table("scalp_ticks"), timeout=600)
                visible = time.time()
                (stored,) = conn.execute(f"SELECT count() FROM {scoped.table('scalp_ticks')}").fetchone() or (0,)
            if stored != ticks:
                raise RuntimeError(f"{which}: {stored:,} ticks visible, expected {ticks:,}")
            cpu = meter.stop()
            rnd = ArchiveRound(
                which,
                int(stats["rows"]),
                visible - stats["started"],
                round(stats["cpu_s"], 2),
                cpu.get("questdb", 0.0),
                round(stats["peak_rss_mb"], 1),
                round(stats["read_mb"], 1),
                round(stats["disk_read_mb"], 1),
            )
            result.rounds.append(rnd)
            if console:
                console.print(
                    f"round {n + 1} {which}: {rnd.rows_per_s:,.0f} ticks/s, peak RSS {rnd.peak_rss_mb:,.0f} MiB"
                )
            with connect(scoped) as conn:
                queries.drop_prefixed(conn, [scoped.schema.table_prefix])
    return result


def print_archive(result: ArchiveBenchResult, console: Console) -> None:
    table = Table(title=f"archive ingest: {result.ticks:,} scalp ticks in {result.files} files (median of rounds)")
    cols = ("contender", "ticks/s", "vs baseline", "ms per 1,000", "peak RSS MiB", "CPU s ours / QuestDB", "read MB")
    for col in cols:
        table.add_column(col, justify="left" if col == "contender" else "right")
    base = result.median(BASELINE, "rows_per_s")
    for who in (PRODUCT, BASELINE):
        rate = result.median(who, "rows_per_s")
        table.add_row(
            who,
            f"{rate:,.0f}",
            f"{rate / base:.2f}x",
            f"{result.median(who, 'ms_per_1000'):.2f}",
            f"{result.median(who, 'peak_rss_mb'):,.0f}",
            f"{result.median(who, 'cpu_s'):.1f} / {result.median(who, 'questdb_cpu_s'):.1f}",
            f"{result.median(who, 'read_mb'):,.0f}",
        )
    console.print(table)
