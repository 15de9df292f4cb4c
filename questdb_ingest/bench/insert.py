"""Insert benchmark: ``TradeWriter`` against the raw client's ``Sender.dataframe`` in one run.

Both contenders write the same synthetic trades over ILP/HTTP into identical, freshly migrated
tables and are timed until ``count()`` shows every row (WAL applied). The raw client gets a
ready-made DataFrame (its best case); the writer's time includes validation and conversion.
Rounds alternate the order so neither always meets a warmer server.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import questdb
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..connectors import SyntheticMarket
from ..ingest import TradeWriter
from ..ingest.ilp import writer_conf
from ..models import TRADE_SYMBOL_COLUMNS, TradeBatch
from ..store import queries
from ..store.migrations import migrate
from ..store.pg import connect
from .machine import machine_info

CONTENDERS = ("raw Sender.dataframe", "TradeWriter")


@dataclass
class Round:
    contender: str
    send_s: float
    visible_s: float
    rows: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.visible_s


@dataclass
class InsertResult:
    records: int
    batch_rows: int
    rounds: list[Round]
    machine: dict[str, Any] = field(default_factory=dict)

    def median(self, contender: str, attr: str = "visible_s") -> float:
        return float(statistics.median(getattr(r, attr) for r in self.rounds if r.contender == contender))

    @property
    def ratio(self) -> float:
        """Writer throughput as a fraction of the raw client's (>= 0.9 is the target)."""
        return self.median(CONTENDERS[0]) / self.median(CONTENDERS[1])

    def to_json(self) -> str:
        summary = {
            c: {
                "median_send_s": self.median(c, "send_s"),
                "median_visible_s": self.median(c),
                "rows_per_s": self.records / self.median(c),
            }
            for c in CONTENDERS
        }
        return json.dumps(
            {
                "benchmark": "insert",
                "records": self.records,
                "batch_rows": self.batch_rows,
                "machine": self.machine,
                "summary": summary,
                "writer_vs_raw": self.ratio,
                "rounds": [asdict(r) | {"rows_per_s": r.rows_per_s} for r in self.rounds],
            },
            indent=2,
        )


def _fresh_tables(settings: Settings, prefix: str) -> Settings:
    """Drop and re-create the prefixed tables; returns settings pointing at them."""
    scoped = replace(settings, schema=replace(settings.schema, table_prefix=prefix))
    with connect(scoped) as conn:
        for name in ("trades", "exchange_health", "listing_events", "schema_migrations"):
            queries.drop_table(conn, scoped.table(name))
        migrate(conn, scoped)
    return scoped


def _finish(settings: Settings, table: str, started: float, sent_at: float, rows: int, contender: str) -> Round:
    with connect(settings) as conn:
        queries.wait_visible(conn, table, timeout=300)
        visible_at = time.perf_counter()
        count, _, _ = queries.table_totals(conn, table)
    if count != rows:
        raise AssertionError(f"{contender}: {count} rows visible, expected {rows}")
    return Round(contender, sent_at - started, visible_at - started, rows)


def _run_raw(settings: Settings, batch: TradeBatch, batch_rows: int) -> Round:
    scoped = _fresh_tables(settings, "bench_raw_")
    table = scoped.table("trades")
    frame = batch.to_frame()
    conf = writer_conf(settings.client_conf()).replace("auto_flush=off;", "")
    conf += f"auto_flush_rows={batch_rows};auto_flush_interval=off;"
    started = time.perf_counter()
    with questdb.Sender.from_conf(conf) as sender:
        sender.dataframe(frame, table_name=table, symbols=list(TRADE_SYMBOL_COLUMNS), at="ts")
        sender.flush()
    sent_at = time.perf_counter()
    return _finish(scoped, table, started, sent_at, len(batch), CONTENDERS[0])


def _run_writer(settings: Settings, batch: TradeBatch, batch_rows: int) -> Round:
    scoped = _fresh_tables(settings, "bench_writer_")
    table = scoped.table("trades")
    started = time.perf_counter()
    with TradeWriter(scoped.client_conf(), table, batch_rows=batch_rows) as writer:
        writer.write(batch)
    sent_at = time.perf_counter()
    return _finish(scoped, table, started, sent_at, len(batch), CONTENDERS[1])


def run_insert_benchmark(
    settings: Settings, *, records: int, batch_rows: int, repeat: int, console: Console | None = None
) -> InsertResult:
    batch = SyntheticMarket(symbols=300, seed=11).batch(records, span_ns=3_600_000_000_000)
    rounds: list[Round] = []
    for i in range(repeat):
        order = (_run_raw, _run_writer) if i % 2 == 0 else (_run_writer, _run_raw)
        for run in order:
            r = run(settings, batch, batch_rows)
            rounds.append(r)
            if console:
                console.print(
                    f"round {i + 1}/{repeat} {r.contender:>22}: sent {r.send_s:6.2f}s, "
                    f"visible {r.visible_s:6.2f}s, {r.rows_per_s:>12,.0f} rows/s"
                )
    return InsertResult(records, batch_rows, rounds, machine_info("ILP/HTTP"))


def print_report(result: InsertResult, console: Console) -> None:
    table = Table(title=f"insert {result.records:,} trades, batch_rows={result.batch_rows:,} (median)")
    for col in ("contender", "send s", "visible s", "rows/s", "vs raw"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    raw = result.median(CONTENDERS[0])
    for c in CONTENDERS:
        vis = result.median(c)
        table.add_row(
            c, f"{result.median(c, 'send_s'):.2f}", f"{vis:.2f}", f"{result.records / vis:,.0f}", f"{raw / vis:.2f}x"
        )
    console.print(table)
    m = result.machine
    console.print(f"{m.get('cores')} cores, {m.get('cpu')}, QuestDB {m.get('questdb')}, {m.get('transport')}")
