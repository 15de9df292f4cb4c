"""Helpers shared by the sender's integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from questdb_ingest.config import Settings
from questdb_ingest.sender import ShardedSender
from questdb_ingest.store import queries
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect


def sender_settings(base: Settings, prefix: str, spool_dir: Path, **sender: Any) -> Settings:
    """``base`` with its own migrated tables (``prefix``), its own spool and sender overrides."""
    settings = replace(
        base,
        schema=replace(base.schema, table_prefix=prefix),
        sender=replace(base.sender, spool_dir=str(spool_dir), **sender),
    )
    with connect(settings) as conn:
        migrate(conn, settings)
    return settings


def count_distinct(settings: Settings, table: str = "trades") -> tuple[int, int]:
    """(rows, distinct trades) once every WAL transaction is applied: a trade is its venue, market,
    symbol and trade id (Binance numbers trades per symbol)."""
    key = "concat(exchange, '|', market_type, '|', symbol, '|', trade_id)"
    with connect(settings) as conn:
        queries.wait_visible(conn, settings.table(table), timeout=120)
        row = conn.execute(
            sql.SQL("SELECT count(), count_distinct(" + key + ") FROM {}").format(sql.Identifier(settings.table(table)))
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def wait_ready(sender: ShardedSender, timeout: float = 60) -> None:
    wait_until(lambda: all(w.state != "starting" for w in sender.metrics().per_worker), timeout, "workers to start")


def pg_ok(settings: Settings) -> bool:
    try:
        with connect(settings, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False
