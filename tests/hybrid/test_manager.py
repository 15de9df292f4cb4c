"""HybridDataManager against a real QuestDB: compare mode, routed reads, fallback and coverage."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from psycopg import sql

from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import QueryError
from questdb_ingest.hybrid.reader import QuestDBReader
from questdb_ingest.hybrid.rollout import route_bucket
from questdb_ingest.models import TradeBatch, now_ns
from questdb_ingest.store import queries
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB
from .helpers import NS, fresh_settings, manager_for, venue_trades, write_visible

pytestmark = pytest.mark.questdb


def _altered(batch: TradeBatch, trade_id: str, price: float) -> TradeBatch:
    prices = batch.price.copy()
    prices[list(batch.trade_id).index(trade_id)] = price
    return replace(batch, price=prices)


def test_compare_flags_a_trade_missing_in_questdb_and_a_price_altered_in_the_buffer(
    qdb: QuestDB, tmp_path: Path
) -> None:
    settings = fresh_settings(qdb, tmp_path)
    start = now_ns() - 60 * NS
    binance = venue_trades("binance", "spot", 30, start_ns=start)
    okx = venue_trades("okx", "futures", 20, start_ns=start)
    other = venue_trades("gate", "spot", 10, base="ABC", start_ns=start)
    everything = TradeBatch.concat([binance, okx, other])
    # QuestDB lacks binance-3 ("deleted"); the buffer has okx-7 at another price.
    keep = [tid != "binance-3" for tid in everything.trade_id]
    write_visible(settings, everything.take(keep))
    manager = manager_for(settings, compare=True)
    manager.ring.append(TradeBatch.concat([binance, _altered(okx, "okx-7", 99.0), other]))
    # The window [start, start + 30 s] holds every XYZ trade; the buffer has held trades since start.
    data = asyncio.run(manager.get_listing_data("XYZ", start + 123 + 15 * NS, before=15, after=15))
    manager.close()

    assert data.source == "buffer" and data.diff is not None
    venues = data.diff.venues
    assert set(venues) == {"binance_spot", "okx_futures"}  # ABC is another asset
    assert (venues["binance_spot"].missing, venues["binance_spot"].extra) == (("binance-3",), ())
    assert venues["binance_spot"].mismatched == ()
    assert venues["okx_futures"].mismatched == ("okx-7",)
    assert not venues["okx_futures"].missing and not venues["okx_futures"].extra
    assert manager.stats.compares_with_diffs == 1 and manager.stats.differences == 2
    assert "binance-3" in manager.stats.last_diff
    # The safe source answered: the buffer's rows, with its price.
    assert data.counts() == {"binance_spot": 30, "okx_futures": 20}

    table = settings.table("shadow_compare")
    with connect(settings) as conn:
        queries.wait_visible(conn, table)
        rows = conn.execute(
            sql.SQL(
                "SELECT exchange_market, rows_a, rows_b, missing, extra, mismatched, sample_ids FROM {} ORDER BY 1"
            ).format(sql.Identifier(table))
        ).fetchall()
    assert rows == [
        ("binance_spot", 30, 29, 1, 0, 0, "missing:binance-3"),
        ("okx_futures", 20, 20, 0, 0, 1, "mismatched:okx-7"),
    ]


def test_compare_is_clean_when_both_sources_hold_the_same_trades(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    start = now_ns() - 60 * NS
    batch = TradeBatch.concat(
        [
            venue_trades("bybit", "spot", 15, start_ns=start),
            venue_trades("upbit", "spot", 5, quote="KRW", start_ns=start),
        ]
    )
    write_visible(settings, batch)
    manager = manager_for(settings, compare=True, write_compares=False)
    manager.ring.append(batch)
    data = asyncio.run(manager.get_listing_data("XYZ", start + 123 + 15 * NS, before=15, after=15))
    manager.close()
    assert data.diff is not None and data.diff.clean
    assert data.counts() == {"bybit_spot": 15, "upbit_spot": 5}


def test_reads_follow_the_rollout_phase_and_the_symbol_hash(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    batch = venue_trades("okx", "spot", 10)
    write_visible(settings, batch)
    trigger = int(batch.ts_ns[0]) + 5 * NS
    sources = {}
    for phase in (0, 1, 2, 3):
        manager = manager_for(settings, compare=False, phase=phase, write_compares=False)
        manager.ring.append(batch)
        data = asyncio.run(manager.get_listing_data("XYZ-USDT", trigger, before=5, after=5))
        manager.close()
        assert data.counts() == {"okx_spot": 10}
        sources[phase] = (data.source, manager.rollout.current().questdb_percentage)
    assert sources[0] == ("buffer", 0)
    assert sources[3] == ("questdb", 100)
    for phase in (1, 2):
        source, pct = sources[phase]
        assert source == ("questdb" if route_bucket("XYZ-USDT") < pct else "buffer")


def test_failed_questdb_read_falls_back_to_the_buffer_and_counts_as_an_error(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    dead = replace(settings, questdb=replace(settings.questdb, pg_port=free_port()))
    batch = venue_trades("binance", "futures", 8)
    manager = manager_for(settings, compare=False, phase=3, reader=QuestDBReader(dead), write_compares=False)
    manager.ring.append(batch)
    trigger = int(batch.ts_ns[0]) + 4 * NS
    data = asyncio.run(manager.get_listing_data("XYZ", trigger, before=4, after=4))
    assert data.source == "buffer" and data.fell_back and data.counts() == {"binance_futures": 8}
    assert manager.reader.stats.errors == 1 and manager.stats.fallbacks == 1
    # Phase 4 turns the fallback off: the failure reaches the caller.
    manager.rollout.set_phase(4, "full cutover")
    with pytest.raises(QueryError):
        asyncio.run(manager.get_listing_data("XYZ", trigger, before=4, after=4))
    assert manager.reader.stats.errors == 2
    manager.close()


def test_questdb_answers_a_window_the_buffer_does_not_hold(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    old = venue_trades("gate", "futures", 5, start_ns=now_ns() - 7200 * NS)
    recent = venue_trades("gate", "futures", 5)
    write_visible(settings, TradeBatch.concat([old, replace(recent, trade_id=recent.trade_id + "r")]))
    manager = manager_for(settings, compare=False, phase=0, write_compares=False)
    manager.ring.append(replace(recent, trade_id=recent.trade_id + "r"))  # the buffer started an hour later
    data = asyncio.run(manager.get_listing_data("XYZ", int(old.ts_ns[2]), before=10, after=10))
    manager.close()
    assert data.source == "questdb" and data.counts() == {"gate_futures": 5}


def test_compare_summary_reports_agreement_over_time(qdb: QuestDB, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from questdb_ingest.cli import main
    from questdb_ingest.store.compare import agreement

    settings = fresh_settings(qdb, tmp_path)
    start = now_ns() - 60 * NS
    clean = venue_trades("okx", "spot", 10, start_ns=start)
    write_visible(settings, clean)
    manager = manager_for(settings, compare=True)
    manager.ring.append(TradeBatch.concat([clean, venue_trades("bybit", "spot", 4, start_ns=start)]))
    asyncio.run(manager.get_listing_data("XYZ", start + 123 + 5 * NS, before=5, after=5))
    manager.close()
    with connect(settings) as conn:
        queries.wait_visible(conn, settings.table("shadow_compare"))
        [bucket] = agreement(conn, settings, since_ns=start - 3600 * NS, bucket="1d")
    # Two venue windows compared; bybit's trades never reached QuestDB.
    assert (bucket.compared, bucket.with_differences, bucket.missing, bucket.rows_a, bucket.rows_b) == (2, 1, 4, 14, 10)
    assert bucket.agreement == 0.5
    env = {"PUMPWATCH_SCHEMA_TABLE_PREFIX": settings.schema.table_prefix}
    result = CliRunner().invoke(main, ["compare", "summary", "--since", "2h", "--bucket", "1d", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"with_differences": 1' in result.output and '"agreement": 0.5' in result.output
    bad = CliRunner().invoke(main, ["compare", "summary", "--bucket", "1 hour"], env=env)
    assert bad.exit_code == 2 and "--bucket" in bad.output
