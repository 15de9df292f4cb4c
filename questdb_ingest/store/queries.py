"""Read-side SQL used by the CLI, the benchmarks and the tests (bound parameters only)."""

from __future__ import annotations

import time
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


def trade_counts_by_exchange(conn: Conn, table: str, trade_id_prefix: str = "") -> list[ExchangeCount]:
    """Per (exchange, market_type): count, summed quantity and time span, optionally for one run."""
    query = sql.SQL(
        "SELECT exchange, market_type, count(), sum(quantity), min(ts)::long, max(ts)::long FROM {} "
        "WHERE trade_id LIKE %s ORDER BY exchange, market_type"
    ).format(sql.Identifier(table))
    rows = conn.execute(query, (f"{trade_id_prefix}%",)).fetchall()
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


@dataclass(frozen=True)
class Partition:
    name: str
    rows: int


def table_partitions(conn: Conn, table: str) -> list[Partition]:
    """The table's partitions in order (``table_partitions()`` takes a constant, hence Literal)."""
    query = sql.SQL("SELECT name, numRows FROM table_partitions({}) ORDER BY name").format(sql.Literal(table))
    return [Partition(str(name), int(rows)) for name, rows in conn.execute(query).fetchall()]
