"""``pumpwatch verify`` against the real QuestDB: the real sharded sender writes known trades over
several minutes and two exchanges (its workers keep the confirmation ledger), then the check
compares the ledger with what QuestDB holds — exact per minute; a dropped partition (rows gone
after QuestDB confirmed them) is a mismatch naming its minutes, exit 1; gaps in the range are
listed; resent rows counted twice in the ledger are no loss."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from psycopg import sql

from questdb_ingest.cli import main
from questdb_ingest.config import Settings
from questdb_ingest.models import TradeBatch
from questdb_ingest.ops.verify import verify
from questdb_ingest.sender import ShardedSender
from questdb_ingest.sender.ledger import MINUTE_NS
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import wait_visible

from ..conftest import QuestDB, scoped_settings
from .sender_helpers import sender_settings, wait_ready

pytestmark = pytest.mark.questdb

DAY_NS = 86_400 * 10**9


def _batch(start_ns: int, n: int, seed: int) -> TradeBatch:
    """``n`` trades over four minutes from ``start_ns`` on binance spot and okx futures."""
    rng = np.random.default_rng(seed)
    ts = np.sort(start_ns + rng.integers(0, 4 * MINUTE_NS, n)).astype(np.int64)
    venue = rng.integers(0, 2, n)
    return TradeBatch.from_columns(
        ts_ns=ts,
        exchange=np.where(venue == 0, "binance", "okx").astype(object),
        market_type=np.where(venue == 0, "spot", "futures").astype(object),
        symbol=np.full(n, "BTC-USDT", dtype=object),
        price=np.full(n, 100.0),
        quantity=np.full(n, 1.0),
        side=np.full(n, "buy", dtype=object),
        trade_id=np.array([f"v{seed}-{i}" for i in range(n)], dtype=object),
        sequence_number=np.arange(n, dtype=np.int64),
        recv_ns=ts,
    )


def _expected(batch: TradeBatch) -> dict[tuple[str, str, int], int]:
    out: dict[tuple[str, str, int], int] = {}
    for ex, mt, ts in zip(batch.exchange, batch.market_type, batch.ts_ns, strict=True):
        key = (str(ex), str(mt), int(ts) // MINUTE_NS * MINUTE_NS)
        out[key] = out.get(key, 0) + 1
    return out


def _write(qdb: QuestDB, tmp_path: Path, batch: TradeBatch) -> Settings:
    settings = sender_settings(scoped_settings(qdb.prefix), qdb.new_prefix(), tmp_path / "spool", workers=2)
    settings = replace(settings, sender=replace(settings.sender, ledger_dir=str(tmp_path / "ledger")))
    with ShardedSender(settings) as sender:
        wait_ready(sender)
        for part in range(0, len(batch), 250):  # many batches: several flushes per worker
            sender.submit(batch.take(np.arange(part, min(part + 250, len(batch)))))
    return settings


def test_every_minute_matches_exactly_and_gaps_are_listed(qdb: QuestDB, tmp_path: Path) -> None:
    start = (time.time_ns() // MINUTE_NS - 30) * MINUTE_NS  # half an hour ago
    batch = _batch(start, 2_000, seed=1)
    settings = _write(qdb, tmp_path, batch)
    with connect(settings) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (gap_start_ts, gap_end_ts, gap_ms, exchange, market_type, scope, reason, filled, "
                "backfilled_trades, symbols) VALUES (%s::timestamp_ns, %s::timestamp_ns, 5000, 'okx', 'futures', "
                "'okx_futures#0', 'drill', true, 3, 1)"
            ).format(sql.Identifier(settings.table("gaps"))),
            [start + 61 * 10**9, start + 66 * 10**9],
        )
        wait_visible(conn, settings.table("gaps"))
    report = verify(settings, start, start + 4 * MINUTE_NS)
    assert report.ok and not report.unledgered
    got = {(m.exchange, m.market_type, m.minute_ns): (m.confirmed, m.stored) for m in report.minutes}
    assert got == {k: (n, n) for k, n in _expected(batch).items()}
    assert [(g["exchange"], g["scope"], g["backfilled_trades"]) for g in report.gaps] == [("okx", "okx_futures#0", 3)]

    env = {"PUMPWATCH_SCHEMA_TABLE_PREFIX": settings.schema.table_prefix,
           "PUMPWATCH_SENDER_LEDGER_DIR": settings.sender.ledger_dir}  # fmt: skip
    result = CliRunner().invoke(main, ["verify", "--since", str(start), "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["ok"] and sum(t["stored"] for t in body["totals"]) == len(batch)

    # A resend after a worker restart: the ledger counts those rows twice, flagged — still no loss.
    ledger = Path(settings.sender.ledger_dir)
    minute = min(_expected(batch))
    line = {"table": settings.table("trades"), "exchange": minute[0], "market_type": minute[1],
            "minute_ns": minute[2], "rows": 5, "resent": 5, "at": "x"}  # fmt: skip
    with open(next(ledger.glob("shard-0.*.jsonl")), "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    assert verify(settings, start, start + 4 * MINUTE_NS).ok
    # ... but 5 confirmed rows more than QuestDB holds, not resent, are loss: that minute is named.
    with open(next(ledger.glob("shard-0.*.jsonl")), "a", encoding="utf-8") as f:
        f.write(json.dumps(line | {"resent": 0}) + "\n")
    bad = verify(settings, start, start + 4 * MINUTE_NS)
    assert not bad.ok and [(m.exchange, m.minute_ns, m.confirmed - m.stored) for m in bad.missing] == [
        (minute[0], minute[2], 10)
    ]


def test_rows_gone_after_confirmation_fail_the_check(qdb: QuestDB, tmp_path: Path) -> None:
    """Trades of two days ago confirmed, then their partition dropped: every minute is missing, exit 1."""
    day_start = (time.time_ns() // DAY_NS - 2) * DAY_NS
    start = day_start + 12 * 3600 * 10**9
    batch = _batch(start, 400, seed=2)
    settings = _write(qdb, tmp_path, batch)
    table = settings.table("trades")
    with connect(settings) as conn:
        wait_visible(conn, table)
        day = dt.datetime.fromtimestamp(day_start / 1e9, dt.UTC).strftime("%Y-%m-%d")
        conn.execute(sql.SQL("ALTER TABLE {} DROP PARTITION LIST {}").format(sql.Identifier(table), sql.Literal(day)))
        wait_visible(conn, table)
    env = {"PUMPWATCH_SCHEMA_TABLE_PREFIX": settings.schema.table_prefix,
           "PUMPWATCH_SENDER_LEDGER_DIR": settings.sender.ledger_dir}  # fmt: skip
    result = CliRunner().invoke(main, ["verify", "--since", str(start), "--until", str(start + 4 * MINUTE_NS)], env=env)
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.output and "MISSING binance/spot" in result.output
    report = verify(settings, start, start + 4 * MINUTE_NS)
    assert {(m.exchange, m.market_type, m.minute_ns) for m in report.missing} == set(_expected(batch))
    assert sum(m.confirmed for m in report.missing) == len(batch)
