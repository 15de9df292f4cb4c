"""Hybrid mode end to end, offline: replay server → connectors → ring buffer + sender → QuestDB,
in compare mode, with new coins listed on the replay server while it runs.

A listing on Upbit's KRW market list must become a listing event, a ``listing_events`` row and a
Parquet + JSON export whose per-venue counts equal an independent SQL count of the window; every
compared window must be identical in both sources; nothing generated may be lost."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from psycopg import sql

from questdb_ingest.bench.hybrid import _venue_counts, _window_sql_counts, drive_hybrid, run_settings_for
from questdb_ingest.connectors.registry import select
from questdb_ingest.connectors.replay.control import ReplayControl
from questdb_ingest.connectors.replay_process import ReplayProcess
from questdb_ingest.hybrid.runtime import HybridRuntime
from questdb_ingest.sender import ShardedSender
from questdb_ingest.store import queries
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB, scoped_settings
from ..integration.sender_helpers import wait_ready

pytestmark = [pytest.mark.questdb, pytest.mark.slow]

NAMES = ["binance_spot", "okx_futures", "bybit_spot", "upbit_spot", "bithumb_spot"]
NS = 1_000_000_000


def test_listing_detected_collected_exported_and_compared_without_loss(qdb: QuestDB, tmp_path: Path) -> None:
    scoped = scoped_settings(qdb.new_prefix())
    with connect(scoped) as conn:
        migrate(conn, scoped)
    args = ["--connectors", ",".join(NAMES), "--symbols", "3", "--rate", "300"]
    args += ["--burst-rate", "1500", "--burst-every", "6", "--burst-seconds", "2"]
    with ReplayProcess(args) as replay:
        settings = run_settings_for(scoped, tmp_path, replay.base_url, before=3.0, after=3.0)
        settings = replace(settings, sender=replace(settings.sender, workers=1))
        sender = ShardedSender(settings).start()
        runtime = HybridRuntime.build(settings, sender, compare=True)
        try:
            wait_ready(sender)

            async def scenario() -> tuple[Any, dict[str, Any], list[tuple[str, int, int]]]:
                async with ReplayControl(replay.base_url) as ctl:
                    return await drive_hybrid(
                        settings, select(NAMES), runtime, ctl, seconds=20, listing_every=6, compare_every=2
                    )

            _, stats, compared = asyncio.run(scenario())
        finally:
            metrics = sender.close()
            runtime.close()
    assert metrics.books.balanced

    # Nothing lost, nothing doubled: QuestDB and the buffer hold exactly what was generated.
    generated = {n: int(stats["connectors"][n]["generated"]["count"]) for n in NAMES}
    landed, distinct = _venue_counts(settings)
    assert all(generated.values())
    assert {n: landed.get(n) for n in NAMES} == generated
    assert {n: distinct.get(n) for n in NAMES} == generated
    assert runtime.ring.stats().appended_rows == sum(generated.values())

    # Every compared window (random ones and the listings') was identical in both sources.
    ms = runtime.manager.stats
    assert len(compared) >= 3 and ms.compares >= len(compared)
    assert (ms.compares_with_diffs, ms.differences, ms.compare_skipped) == (0, 0, 0), ms.last_diff

    # The listings: detected, collected from every venue that lists the coin, exported, recorded.
    assert runtime.detector is not None
    history = runtime.detector.history
    assert len(history) >= 2, [h.status for h in history]
    events_table = settings.table("listing_events")
    with connect(settings) as conn:
        queries.wait_visible(conn, events_table)
        rows = conn.execute(
            sql.SQL("SELECT symbol, ts::long, collected_trades, exchanges_with_data FROM {}").format(
                sql.Identifier(events_table)
            )
        ).fetchall()
    recorded = {str(r[0]): (int(str(r[1])), int(str(r[2])), int(str(r[3]))) for r in rows}
    for listing in history:
        base, trigger = listing.trigger.base, listing.trigger.trigger_ns
        assert listing.status == "collected" and listing.written and listing.source == "buffer"
        assert listing.trigger.market == f"{base}-KRW" and listing.trigger.source == "upbit_spot"
        sql_counts = _window_sql_counts(settings, base, trigger - 3 * NS, trigger + 3 * NS)
        assert listing.counts == sql_counts
        assert {"binance_spot", "okx_futures", "bybit_spot", "bithumb_spot"} <= set(listing.counts)
        total = sum(listing.counts.values())
        assert recorded[base] == (trigger // 1000, total, len(listing.counts))  # TIMESTAMP: microseconds
        assert listing.export is not None
        table = pq.read_table(listing.export.parquet)
        assert table.num_rows == total
        venues = table.column("venue").to_pylist()
        assert {v: venues.count(v) for v in set(venues)} == listing.counts
        summary = json.loads(listing.export.summary_json.read_text())
        assert summary["total"] == total
