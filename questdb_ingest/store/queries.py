"""Read-side SQL used by the CLI, the benchmarks and the tests (bound parameters only)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

Conn = psycopg.Connection[tuple[Any, ...]]


def wal_pending(conn: Conn, table: str) -> int:
    """Transactions committed to the table's WAL but not yet applied (visible) — 0 when caught up."""
    row = conn.execute(
        "SELECT sequencerTxn - writerTxn, suspended FROM wal_tables() WHERE name = %s", (table,)
    ).fetchone()
    if row is None:
        raise LookupError(f"table {table!r} is not a WAL table or does not exist")
    lag, suspended = row
    if suspended:
        raise RuntimeError(f"WAL apply for {table!r} is suspended; see the QuestDB log")
    return int(lag)


def wait_visible(conn: Conn, table: str, timeout: float = 60.0) -> float:
    """Block until every committed WAL transaction of ``table`` is applied; returns seconds waited."""
    started = time.monotonic()
    while wal_pending(conn, table) > 0:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{table}: WAL not applied after {timeout:.0f}s")
        time.sleep(0.02)
    return time.monotonic() - started


@dataclass(frozen=True)
class ExchangeCount:
    exchange: str
    market_type: str
    trades: int
    volume: float
    first_ts_ns: int
    last_ts_ns: int


def trade_counts_by_exchange(
    conn: Conn, table: str, trade_id_prefix: str = "", since_ns: int | None = None
) -> list[ExchangeCount]:
    """Per (exchange, market_type): count, summed quantity and time span, optionally for one run
    (its trade-id prefix) or since a time."""
    since = sql.SQL(" AND ts >= %s::timestamp_ns") if since_ns is not None else sql.SQL("")
    query = sql.SQL(
        "SELECT exchange, market_type, count(), sum(quantity), min(ts)::long, max(ts)::long FROM {} "
        "WHERE trade_id LIKE %s{} ORDER BY exchange, market_type"
    ).format(sql.Identifier(table), since)
    params: list[object] = [f"{trade_id_prefix}%", *([since_ns] if since_ns is not None else [])]
    rows = conn.execute(query, params).fetchall()
    return [ExchangeCount(str(e), str(m), int(c), float(v), int(lo), int(hi)) for e, m, c, v, lo, hi in rows]


def table_totals(conn: Conn, table: str) -> tuple[int, float, float]:
    """``count()``, ``sum(price)``, ``sum(quantity)`` of a trades table."""
    query = sql.SQL("SELECT count(), sum(price), sum(quantity) FROM {}").format(sql.Identifier(table))
    row = conn.execute(query).fetchone()
    assert row is not None
    count, price, qty = row
    return int(count), float(price or 0.0), float(qty or 0.0)


def drop_table(conn: Conn, table: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def drop_prefixed(conn: Conn, prefixes: Sequence[str]) -> list[str]:
    """Drop every materialized view, then every table, whose name starts with one of ``prefixes``
    (views first: a base table cannot go while a view reads it). Returns what was dropped."""

    def named(query: str) -> list[str]:
        return [str(r[0]) for r in conn.execute(query).fetchall() if any(str(r[0]).startswith(p) for p in prefixes)]

    views = named("SELECT view_name FROM materialized_views()")
    for view in views:
        conn.execute(sql.SQL("DROP MATERIALIZED VIEW IF EXISTS {}").format(sql.Identifier(view)))
    tables = [t for t in named("SELECT table_name FROM tables()") if t not in views]
    for table in tables:
        drop_table(conn, table)
    return views + tables


@dataclass(frozen=True)
class Partition:
    name: str
    rows: int


def table_partitions(conn: Conn, table: str) -> list[Partition]:
    """The table's partitions in order (``table_partitions()`` takes a constant, hence Literal)."""
    query = sql.SQL("SELECT name, numRows FROM table_partitions({}) ORDER BY name").format(sql.Literal(table))
    return [Partition(str(name), int(rows)) for name, rows in conn.execute(query).fetchall()]


def wal_sequencer_txn(conn: Conn, table: str) -> int:
    """The last transaction committed to the table's WAL (``wait_applied`` waits for it)."""
    row = conn.execute("SELECT sequencerTxn FROM wal_tables() WHERE name = %s", (table,)).fetchone()
    if row is None:
        raise LookupError(f"table {table!r} is not a WAL table or does not exist")
    return int(row[0])


def wait_applied(conn: Conn, table: str, txn: int, timeout: float = 30.0) -> bool:
    """Until WAL transaction ``txn`` of ``table`` is applied (visible to queries); False on timeout.

    Unlike ``wait_visible`` this ends under continuous ingestion: later transactions don't count."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT writerTxn, suspended FROM wal_tables() WHERE name = %s", (table,)).fetchone()
        if row is None:
            raise LookupError(f"table {table!r} is not a WAL table or does not exist")
        if row[1]:
            raise RuntimeError(f"WAL apply for {table!r} is suspended; see the QuestDB log")
        if int(row[0]) >= txn:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
