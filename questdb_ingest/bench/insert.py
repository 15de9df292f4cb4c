"""Insert benchmark: the sharded sender against the raw client and a per-row baseline, in one run.

Every contender writes the same synthetic trades into identical, freshly migrated tables and is
timed until ``count()`` shows every row (WAL applied). The raw client gets a ready-made
DataFrame (its best case); our contenders' times include validation, sharding and IPC. Rounds
rotate the order so no contender always meets a warmer server. The sender's worker processes are
started before the clock starts (a service starts them once).
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import questdb
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..connectors import SyntheticMarket
from ..ingest.ilp import writer_conf
from ..models import NO_SEQUENCE, TRADE_SYMBOL_COLUMNS, TradeBatch
from ..sender import ShardedSender
from ..sender.sinks import check_websocket, transport_conf
from ..store import queries
from ..store.migrations import migrate
from ..store.pg import connect
from .machine import machine_info

RAW = "raw client"
PER_ROW = "per-row f-string (tcp)"


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
    workers: int
    transport: str
    contenders: list[str]
    rounds: list[Round]
    skipped: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def median(self, contender: str, attr: str = "visible_s") -> float:
        return float(statistics.median(getattr(r, attr) for r in self.rounds if r.contender == contender))

    def ratio(self, contender: str) -> float:
        """Throughput of ``contender`` as a multiple of the raw client's (>= 0.9 is the sender's target)."""
        return self.median(self.contenders[0]) / self.median(contender)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            c: {
                "median_send_s": self.median(c, "send_s"),
                "median_visible_s": self.median(c),
                "rows_per_s": self.records / self.median(c),
                "vs_raw": self.ratio(c),
            }
            for c in self.contenders
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "insert",
            "records": self.records,
            "batch_rows": self.batch_rows,
            "workers": self.workers,
            "transport": self.transport,
            "machine": self.machine,
            "summary": self.summary(),
            "skipped": self.skipped,
            "rounds": [asdict(r) | {"rows_per_s": r.rows_per_s} for r in self.rounds],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def fresh_tables(settings: Settings, prefix: str) -> Settings:
    """Drop and re-create the prefixed tables; returns settings pointing at them."""
    scoped = _drop(settings, prefix)
    with connect(scoped) as conn:
        migrate(conn, scoped)
    return scoped


def _finish(settings: Settings, table: str, started: float, sent_at: float, rows: int, contender: str) -> Round:
    with connect(settings) as conn:
        deadline = time.monotonic() + 300
        while True:  # ILP/TCP has no commit answer: wait for the rows themselves
            queries.wait_visible(conn, table, timeout=300)
            count, _, _ = queries.table_totals(conn, table)
            if count >= rows or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        visible_at = time.perf_counter()
    if count != rows:
        raise AssertionError(f"{contender}: {count} rows visible, expected {rows}")
    return Round(contender, sent_at - started, visible_at - started, rows)


Runner = Callable[[Settings, TradeBatch, int], Round]


def _raw_runner(transport: str) -> Runner:
    def run(settings: Settings, batch: TradeBatch, batch_rows: int) -> Round:
        scoped = fresh_tables(settings, "bench_raw_")
        table = scoped.table("trades")
        frame = batch.to_frame()
        symbols = list(TRADE_SYMBOL_COLUMNS)
        started = time.perf_counter()
        if transport == "ws":
            with questdb.connect(transport_conf(settings, "ws")) as db:
                db.dataframe(frame, table_name=table, symbols=symbols, at="ts")
        else:
            conf = transport_conf(settings, transport)
            if transport == "http":
                conf = writer_conf(conf).replace("auto_flush=off;", "")
            conf += f"auto_flush_rows={batch_rows};auto_flush_interval=off;"
            with questdb.Sender.from_conf(conf) as sender:
                sender.dataframe(frame, table_name=table, symbols=symbols, at="ts")
                sender.flush()
        sent_at = time.perf_counter()
        return _finish(scoped, table, started, sent_at, len(batch), f"{RAW} ({transport})")

    return run


def _sender_runner(transport: str, workers: int) -> Runner:
    def run(settings: Settings, batch: TradeBatch, batch_rows: int) -> Round:
        scoped = fresh_tables(settings, "bench_sender_")
        scoped = replace(scoped, ingest=replace(scoped.ingest, batch_rows=batch_rows))
        table = scoped.table("trades")
        name = f"sender x{workers} ({transport})"
        with ShardedSender(scoped, workers=workers, transport=transport, allow_unconfirmed=transport == "tcp") as snd:
            snd.flush(timeout=120)  # workers up (their hello is in) before the clock starts
            _wait_ready(snd)
            started = time.perf_counter()
            snd.submit(batch)
            snd.flush()
            sent_at = time.perf_counter()
        return _finish(scoped, table, started, sent_at, len(batch), name)

    return run


def _wait_ready(snd: ShardedSender, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(w.state == "starting" for w in snd.metrics().per_worker):
        if time.monotonic() > deadline:
            raise TimeoutError("sender workers did not start")
        time.sleep(0.05)


def ilp_lines(table: str, rows: list[tuple[Any, ...]]) -> list[str]:
    """The per-row way many feed handlers write ILP: one f-string per trade (Python values in)."""
    lines = []
    for ts, exchange, market, symbol, price, quantity, side, trade_id, seq, recv in rows:
        seq_field = f",sequence_number={seq}i" if seq != NO_SEQUENCE else ""
        lines.append(
            f"{table},exchange={exchange},market_type={market},symbol={symbol},side={side} "
            f'price={price!r},quantity={quantity!r},trade_id="{trade_id}"{seq_field},recv_ts={recv // 1000}t {ts}\n'
        )
    return lines


def _python_rows(batch: TradeBatch) -> list[tuple[Any, ...]]:
    """Trades as the Python tuples a per-row feed handler holds (built before the clock starts)."""
    return list(zip(*(getattr(batch, name).tolist() for name in TradeBatch.column_names()), strict=True))


def _per_row_runner(settings: Settings, batch: TradeBatch, batch_rows: int) -> Round:
    scoped = fresh_tables(settings, "bench_rows_")
    table = scoped.table("trades")
    q = settings.questdb
    rows = _python_rows(batch)
    started = time.perf_counter()
    with socket.create_connection((q.host, q.ilp_tcp_port)) as sock:
        for start in range(0, len(rows), batch_rows):
            sock.sendall("".join(ilp_lines(table, rows[start : start + batch_rows])).encode())
    sent_at = time.perf_counter()
    return _finish(scoped, table, started, sent_at, len(batch), PER_ROW)


def run_insert_benchmark(
    settings: Settings,
    *,
    records: int,
    batch_rows: int,
    repeat: int,
    workers: int,
    transport: str = "http",
    per_row: bool = True,
    console: Console | None = None,
) -> InsertResult:
    if transport == "ws":
        check_websocket(transport_conf(settings, "ws"))
    batch = SyntheticMarket(symbols=300, seed=11).batch(records, span_ns=3_600_000_000_000)
    runners: dict[str, Runner] = {
        f"{RAW} ({transport})": _raw_runner(transport),
        f"sender x{workers} ({transport})": _sender_runner(transport, workers),
    }
    if per_row:
        runners[PER_ROW] = _per_row_runner
    names = list(runners)
    rounds: list[Round] = []
    for i in range(repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            r = runners[name](settings, batch, batch_rows)
            rounds.append(r)
            if console:
                console.print(
                    f"round {i + 1}/{repeat} {r.contender:>30}: sent {r.send_s:6.2f}s, "
                    f"visible {r.visible_s:6.2f}s, {r.rows_per_s:>12,.0f} rows/s"
                )
    for name in ("bench_raw_", "bench_sender_", "bench_rows_"):
        _drop(settings, name)
    return InsertResult(records, batch_rows, workers, transport, names, rounds, machine=machine_info(transport))


def _drop(settings: Settings, prefix: str) -> Settings:
    """Drop the benchmark's prefixed tables; returns settings pointing at that prefix."""
    scoped = replace(settings, schema=replace(settings.schema, table_prefix=prefix))
    with connect(scoped) as conn:
        queries.drop_prefixed(conn, [prefix])
    return scoped


def print_report(result: InsertResult, console: Console) -> None:
    table = Table(
        title=f"insert {result.records:,} trades, batch_rows={result.batch_rows:,}, {result.transport} (median)"
    )
    for col in ("contender", "send s", "visible s", "rows/s", "vs raw"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for c in result.contenders:
        vis = result.median(c)
        table.add_row(
            c,
            f"{result.median(c, 'send_s'):.2f}",
            f"{vis:.2f}",
            f"{result.records / vis:,.0f}",
            f"{result.ratio(c):.2f}x",
        )
    console.print(table)
    m = result.machine
    console.print(f"{m.get('cores')} cores, {m.get('cpu')}, QuestDB {m.get('questdb')}, {m.get('transport')}")
