from pathlib import Path

import pytest

from questdb_ingest.config import load_settings
from questdb_ingest.errors import MigrationError
from questdb_ingest.resources import resource
from questdb_ingest.store.migrations import discover


def test_project_migrations_are_discovered_in_order() -> None:
    migs = discover(resource("schema"))
    assert [m.version for m in migs] == list(range(1, len(migs) + 1))
    assert migs[0].name == "core_tables"


def test_placeholders_are_filled_and_comments_dropped() -> None:
    settings = load_settings(env={}, overrides={"schema": {"table_prefix": "x_", "ttl_days": 9}})
    stmts = discover(resource("schema"))[0].statements(settings)
    assert len(stmts) == 3
    assert all("{{" not in s and "--" not in s for s in stmts)
    trades = stmts[0]
    assert "CREATE TABLE IF NOT EXISTS x_trades" in trades
    assert "TTL 9 DAYS WAL" in trades
    assert "DEDUP UPSERT KEYS(ts, exchange, market_type, symbol, trade_id)" in trades
    assert "PARTITION BY DAY" in trades


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["001_a.sql", "003_c.sql"], "contiguous"),
        (["1_a.sql"], "NNN_lower_snake"),
        (["001_A.sql"], "NNN_lower_snake"),
    ],
)
def test_bad_migration_sets_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=message):
        discover(tmp_path)


def test_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("CREATE TABLE {{prefix}}t{{nope}} (x INT);")
    with pytest.raises(MigrationError, match="nope"):
        discover(tmp_path)[0].statements(load_settings(env={}))
