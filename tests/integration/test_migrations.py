"""Schema migrations against the real QuestDB."""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg import sql

from questdb_ingest.cli import main
from questdb_ingest.errors import MigrationChecksumError, TtlDecreaseError
from questdb_ingest.resources import resource
from questdb_ingest.store import queries
from questdb_ingest.store.migrations import applied_versions, discover, migrate
from tests.conftest import QuestDB, scoped_settings

TABLES = ("exchange_health", "gaps", "listing_events", "trades")
VERSIONS = [m.version for m in discover(resource("schema"))]


def test_migrate_twice_is_a_noop(qdb: QuestDB) -> None:
    settings = scoped_settings(qdb.new_prefix())
    with qdb.conn() as conn:
        first = migrate(conn, settings)
        second = migrate(conn, settings)
        assert [m.version for m in first.applied] == VERSIONS
        assert second.applied == [] and [m.version for m in second.already] == VERSIONS
        assert list(applied_versions(conn, settings)) == VERSIONS
        rows = conn.execute(
            "SELECT table_name, partitionBy, walEnabled, dedup, ttlValue, ttlUnit FROM tables() "
            "WHERE table_name IN (%s, %s, %s, %s) ORDER BY table_name",
            tuple(settings.table(t) for t in TABLES),
        ).fetchall()
    assert [r[0] for r in rows] == [settings.table(t) for t in TABLES]
    for _, partition_by, wal, dedup, ttl_value, ttl_unit in rows:
        assert (partition_by, wal, dedup) == ("DAY", True, True)
        assert (ttl_value, ttl_unit) == (30, "DAY")


def test_trades_columns_and_dedup_keys(qdb: QuestDB) -> None:
    with qdb.conn() as conn:
        cols = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                sql.SQL('SELECT "column", type, upsertKey FROM table_columns({})').format(
                    sql.Literal(qdb.table("trades"))
                )
            ).fetchall()
        }
    assert cols["ts"][0] == "TIMESTAMP_NS" and cols["recv_ts"][0] == "TIMESTAMP_NS"
    assert {c for c, (_, key) in cols.items() if key} == {"ts", "exchange", "market_type", "symbol", "trade_id"}
    assert cols["exchange"][0] == cols["symbol"][0] == cols["side"][0] == "SYMBOL"


def test_edited_applied_migration_is_refused(qdb: QuestDB, tmp_path: Path) -> None:
    schema = tmp_path / "schema"
    shutil.copytree(resource("schema"), schema)
    settings = scoped_settings(qdb.new_prefix(), schema={"schema_dir": str(schema)})
    with qdb.conn() as conn:
        migrate(conn, settings)
        path = schema / "001_core_tables.sql"
        path.write_text(
            path.read_text().replace(
                "TTL {{ttl_days}} DAYS WAL\nDEDUP UPSERT KEYS(ts, symbol)", "TTL {{ttl_days}} DAYS WAL"
            )
        )
        with pytest.raises(MigrationChecksumError) as err:
            migrate(conn, settings)
    assert err.value.version == 1
    assert "immutable" in str(err.value)


def test_new_migration_is_applied_after_the_first(qdb: QuestDB, tmp_path: Path) -> None:
    schema = tmp_path / "schema"
    shutil.copytree(resource("schema"), schema)
    prefix = qdb.new_prefix()
    extra = len(VERSIONS) + 1
    (schema / f"{extra:03d}_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {{prefix}}extra (ts TIMESTAMP, v DOUBLE) TIMESTAMP(ts) PARTITION BY DAY WAL;\n"
    )
    settings = scoped_settings(prefix, schema={"schema_dir": str(schema)})
    with qdb.conn() as conn:
        report = migrate(conn, settings)
        assert [m.version for m in report.applied] == [*VERSIONS, extra]
        assert conn.execute("SELECT count() FROM tables() WHERE table_name = %s", (f"{prefix}extra",)).fetchone() == (
            1,
        )


TTL_TABLES = ("trades", "exchange_health", "listing_events", "gaps", "shadow_compare", "rollout_events", "candles_1m")


def _ttls(conn: object, prefix: str) -> dict[str, int]:
    """TTL in days per table (QuestDB reports 14 days as 2 WEEK)."""
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT table_name, ttlValue, ttlUnit FROM tables() WHERE table_name LIKE %s", (f"{prefix}%",)
    ).fetchall()
    unit = {"DAY": 1, "WEEK": 7}
    return {
        str(name).removeprefix(prefix): int(value) * unit[str(u)]
        for name, value, u in rows
        if str(name).removeprefix(prefix) in TTL_TABLES
    }


def test_ttl_increase_is_applied_and_a_decrease_needs_consent(qdb: QuestDB) -> None:
    prefix = qdb.new_prefix()
    with qdb.conn() as conn:
        migrate(conn, scoped_settings(prefix))
        report = migrate(conn, scoped_settings(prefix, schema={"ttl_days": 60}))
        assert sorted(c.table for c in report.ttl_changed) == sorted(f"{prefix}{t}" for t in TTL_TABLES)
        assert _ttls(conn, prefix) == dict.fromkeys(TTL_TABLES, 60)
        with pytest.raises(TtlDecreaseError, match=r"schema\.ttl_days.*60 → 14 days"):
            migrate(conn, scoped_settings(prefix, schema={"ttl_days": 14}))
        assert _ttls(conn, prefix) == dict.fromkeys(TTL_TABLES, 60)  # refused: nothing changed
        report = migrate(conn, scoped_settings(prefix, schema={"ttl_days": 14}), allow_ttl_decrease=True)
        assert {c.table for c in report.ttl_changed if c.decrease} == {f"{prefix}{t}" for t in TTL_TABLES}
        assert _ttls(conn, prefix) == dict.fromkeys(TTL_TABLES, 14)


def test_db_migrate_refuses_a_ttl_decrease_listing_what_it_drops(qdb: QuestDB, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = qdb.new_prefix()
    monkeypatch.setenv("PUMPWATCH_SCHEMA_TABLE_PREFIX", prefix)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "migrate", "--ttl-days", "90"]).exit_code == 0
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=45)
    with qdb.conn() as conn:
        for i, ts in enumerate((old, old + dt.timedelta(minutes=1), dt.datetime.now(dt.UTC).replace(tzinfo=None))):
            conn.execute(
                sql.SQL("INSERT INTO {} (ts, exchange, market_type, symbol, price, quantity, side, trade_id) "
                        "VALUES (%s, 'binance', 'spot', 'BTC-USDT', 1.0, 1.0, 'buy', %s)").format(
                    sql.Identifier(f"{prefix}trades")),
                (ts, str(i)),
            )  # fmt: skip
        queries.wait_visible(conn, f"{prefix}trades")
    refused = runner.invoke(main, ["db", "migrate"])  # schema.ttl_days is back at its default, 30
    assert refused.exit_code == 2, refused.output
    day = old.strftime("%Y-%m-%d")
    assert f"{prefix}trades: TTL 90 → 30 days: drops 1 partition(s) {day} … {day} holding 2 row(s)" in refused.output
    assert "--allow-ttl-decrease" in refused.output
    status = runner.invoke(main, ["db", "status"])
    assert f"{prefix}trades: TTL 90 → 30 days" in status.output
    applied = runner.invoke(main, ["db", "migrate", "--allow-ttl-decrease"])
    assert applied.exit_code == 0, applied.output
    assert f"TTL changed: {prefix}trades: TTL 90 → 30 days: drops 1 partition(s)" in applied.output


def test_db_migrate_cli(qdb: QuestDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = qdb.new_prefix()
    monkeypatch.setenv("PUMPWATCH_SCHEMA_TABLE_PREFIX", prefix)
    runner = CliRunner()
    first = runner.invoke(main, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert f"{len(VERSIONS)} applied" in first.output
    second = runner.invoke(main, ["db", "migrate"])
    assert second.exit_code == 0 and f"0 applied, {len(VERSIONS)} already applied" in second.output

    schema = tmp_path / "schema"
    shutil.copytree(resource("schema"), schema)
    (schema / "001_core_tables.sql").write_text((schema / "001_core_tables.sql").read_text() + "\n-- edited\n")
    edited = runner.invoke(main, ["db", "migrate", "--schema-dir", str(schema)])
    assert edited.exit_code == 1
    assert "migration 001 (core_tables) was applied with checksum" in edited.output
    status = runner.invoke(main, ["db", "status", "--schema-dir", str(schema)])
    assert "EDITED after apply" in status.output
