"""End to end, offline: the replay server (a child process speaking every venue's protocol on
loopback) → the real connector code over real sockets → the sharded sender → QuestDB, read back
with SQL and compared with what the replay server says it generated."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from questdb_ingest.config import Settings
from questdb_ingest.connectors.pipeline import Pipeline, SenderSink, WriterEvents
from questdb_ingest.connectors.registry import CONNECTORS, select
from questdb_ingest.connectors.replay.control import ReplayControl
from questdb_ingest.connectors.replay_process import ReplayProcess
from questdb_ingest.connectors.run import run_feeds
from questdb_ingest.sender import ShardedSender
from questdb_ingest.store import queries
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB
from ..integration.sender_helpers import sender_settings, wait_ready

pytestmark = [pytest.mark.questdb, pytest.mark.slow]


def e2e_settings(qdb: QuestDB, tmp_path: Path, base_url: str, **connectors: Any) -> Settings:
    settings = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "spool")
    return replace(
        settings,
        ingest=replace(settings.ingest, flush_interval=0.2),
        connectors=replace(
            settings.connectors,
            base_url=base_url,
            dead_letter_dir=str(tmp_path / "dead"),
            reconnect_initial=0.2,
            reconnect_max=1.0,
            **connectors,
        ),
    )


def db_totals(settings: Settings) -> dict[str, tuple[int, int, float, float]]:
    """Per connector: rows, distinct trade ids, sum(price), sum(quantity)."""
    table = settings.table("trades")
    with connect(settings) as conn:
        queries.wait_visible(conn, table, timeout=120)
        rows = conn.execute(
            sql.SQL(
                "SELECT exchange, market_type, count(), count_distinct(concat(symbol, '|', trade_id)), sum(price), "
                "sum(quantity) "
                "FROM {} GROUP BY exchange, market_type"
            ).format(sql.Identifier(table))
        ).fetchall()
    by_key = {(str(r[0]), str(r[1])): r for r in rows}
    out = {}
    for c in CONNECTORS:
        r = by_key.get((c.exchange, c.market_type))
        if r is not None:
            out[c.name] = (int(str(r[2])), int(str(r[3])), float(str(r[4])), float(str(r[5])))
    return out


def assert_matches_generated(settings: Settings, stats: dict[str, Any], names: list[str]) -> None:
    totals = db_totals(settings)
    for name in names:
        gen = stats["connectors"][name]["generated"]
        assert gen["count"] > 0, f"{name}: nothing generated"
        count, distinct, price_sum, qty_sum = totals.get(name, (0, 0, 0.0, 0.0))
        assert (name, count, distinct) == (name, gen["count"], gen["count"]), f"{name}: rows/distinct ids"
        assert price_sum == pytest.approx(gen["price_sum"], rel=1e-9), name
        assert qty_sum == pytest.approx(gen["quantity_sum"], rel=1e-9), name


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


def _delivered(pipeline: Pipeline, stats: dict[str, Any]) -> bool:
    return all(f.stats.trades >= stats["connectors"][f.name]["generated"]["count"] for f in pipeline.feeds)


def test_all_fourteen_connectors_land_exactly_what_was_replayed(qdb: QuestDB, tmp_path: Path) -> None:
    total = 14 * 400
    args = ["--symbols", "3", "--rate", "3000", "--burst-rate", "6000", "--burst-every", "2", "--burst-seconds", "1"]
    with ReplayProcess([*args, "--max-trades", str(total)]) as replay:
        settings = e2e_settings(qdb, tmp_path, replay.base_url)
        names = [c.name for c in CONNECTORS]
        with ShardedSender(settings, workers=2) as sender:
            wait_ready(sender)
            events = WriterEvents(settings)
            stop = asyncio.Event()
            final: dict[str, Any] = {}

            async def scenario() -> Pipeline:
                task = asyncio.create_task(
                    run_feeds(settings, select("all"), sink=SenderSink(sender), events=events, duration=None, stop=stop)
                )
                async with ReplayControl(replay.base_url) as ctl:

                    async def done() -> bool:
                        final.update(await ctl.stats())
                        return final["generated_total"] >= total

                    await _until(done, 60, "the replay server to generate every trade")
                    await asyncio.sleep(0.5)
                    final.update(await ctl.stats())
                stop.set()
                return await task

            pipeline = asyncio.run(scenario())
            sender.flush(timeout=60)
        events.close()
    assert final["generated_total"] == total
    assert all(f.stats.dead_letters == 0 for f in pipeline.feeds), [
        (f.name, f.stats.dead_letters) for f in pipeline.feeds
    ]
    assert all(final["connectors"][n]["trades_lost"] == 0 for n in names)
    assert_matches_generated(settings, final, names)
    # Health rows: every connector reported connected, with its message count.
    with connect(settings) as conn:
        queries.wait_visible(conn, settings.table("exchange_health"), timeout=60)
        rows = conn.execute(
            sql.SQL("SELECT exchange, market_type, max(message_count) FROM {} WHERE status = 'connected' "
                    "GROUP BY exchange, market_type").format(sql.Identifier(settings.table("exchange_health")))
        ).fetchall()  # fmt: skip
    assert {(str(r[0]), str(r[1])) for r in rows} == {(c.exchange, c.market_type) for c in CONNECTORS}


def test_faults_reconnect_backfill_dead_letter_rotate_and_new_listing(qdb: QuestDB, tmp_path: Path) -> None:
    names = ["binance_spot", "okx_spot", "bybit_futures", "gate_spot", "binance_futures"]
    args = ["--connectors", ",".join(names), "--symbols", "3", "--rate", "400", "--burst-seconds", "0"]
    with ReplayProcess(args) as replay:
        settings = e2e_settings(
            qdb,
            tmp_path,
            replay.base_url,
            refresh_interval=1.0,
            ping_interval=0.5,
            watchdog_timeout=2.0,
            backfill_window=60.0,
            rotate_after=4.0,
        )
        with ShardedSender(settings, workers=2) as sender:
            wait_ready(sender)
            events = WriterEvents(settings)
            final: dict[str, Any] = {}

            async def scenario() -> Pipeline:
                pipeline = Pipeline(settings, select(names), sink=SenderSink(sender), events=events)
                pipeline.start()
                async with ReplayControl(replay.base_url) as ctl:

                    async def flowing() -> bool:
                        stats = await ctl.stats()
                        return all(stats["connectors"][n]["trades_delivered"] > 20 for n in names)

                    await _until(flowing, 30, "trades on every connector")
                    await ctl.fault("binance_spot", "drop")  # TCP reset, no close frame
                    await ctl.fault("okx_spot", "stall", seconds=4.0)  # silence: the watchdog must notice
                    await ctl.fault("gate_spot", "malformed")
                    assert await ctl.list_instrument("binance_futures", "NEWCOIN", "USDT")
                    await asyncio.sleep(8.0)  # reconnects, back-fills, rotations, the new listing's trades
                    await ctl.pause()
                    await asyncio.sleep(0.5)
                    final.update(await ctl.stats())

                    async def settled() -> bool:
                        gaps = {g.scope.split("#")[0] for g in events.memory.gap_rows}
                        return _delivered(pipeline, final) and {"binance_spot", "okx_spot"} <= gaps

                    await _until(settled, 30, "every generated trade and both gap events")
                await pipeline.stop()
                return pipeline

            pipeline = asyncio.run(scenario())
            sender.flush(timeout=60)
        events.close()
    feeds = {f.name: f for f in pipeline.feeds}
    # Drop and stall: reconnected, resubscribed, each recorded as a gap and back-filled.
    gaps = {g.scope.split("#")[0]: g for g in events.memory.gap_rows}
    assert gaps["binance_spot"].filled and gaps["okx_spot"].filled, events.memory.gap_rows
    assert gaps["binance_spot"].backfilled_trades > 0 and gaps["okx_spot"].backfilled_trades > 0
    assert "watchdog" in gaps["okx_spot"].reason
    assert feeds["binance_spot"].stats.backfilled > 0
    # Planned rotation: fresh sockets replaced the old ones with an overlap; no gap recorded for it.
    assert feeds["bybit_futures"].connections[0].rotations >= 1
    assert "bybit_futures" not in gaps
    with connect(settings) as conn:
        queries.wait_visible(conn, settings.table("gaps"), timeout=60)
        rows = conn.execute(
            sql.SQL("SELECT exchange, market_type, filled, gap_ms FROM {}").format(
                sql.Identifier(settings.table("gaps"))
            )
        ).fetchall()
    assert {("binance", "spot"), ("okx", "spot")} <= {(str(r[0]), str(r[1])) for r in rows if r[2]}
    # Health reflects the disconnects.
    downs = {(e.exchange, e.market_type) for e in events.memory.health_rows if e.status == "disconnected"}
    assert {("binance", "spot"), ("okx", "spot")} <= downs
    # Malformed frame: dead-lettered with a reason, the connector carried on.
    dead = [json.loads(line) for line in (tmp_path / "dead" / "gate_spot.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["reason"] and dead[0]["connector"] == "gate_spot"
    assert final["connectors"]["gate_spot"]["malformed_sent"] == 1
    # New listing: subscribed without a restart, its trades are in QuestDB.
    assert "NEWCOIN-USDT" in {i.symbol for i in feeds["binance_futures"].instruments.values()}
    with connect(settings) as conn:
        n_new = conn.execute(
            sql.SQL("SELECT count() FROM {} WHERE symbol = 'NEWCOIN-USDT'").format(
                sql.Identifier(settings.table("trades"))
            )
        ).fetchone()
    assert n_new is not None and int(str(n_new[0])) > 0
    # Nothing missing, nothing doubled: despite the drop, the stall and the rotation overlaps.
    assert_matches_generated(settings, final, names)


def test_a_stall_shorter_than_the_watchdog_is_found_from_the_trade_ids_and_back_filled(
    qdb: QuestDB, tmp_path: Path
) -> None:
    """The venue withholds trades for 3 s on a live socket (seen: an 8 s okx stall, 568 trades, no
    gap row): no disconnect, no watchdog — the jump in Binance's per-symbol trade ids shows each
    hole, which is recorded in ``gaps`` and fetched back over REST, so QuestDB still has every trade."""
    names = ["binance_spot", "binance_futures"]
    args = ["--connectors", ",".join(names), "--symbols", "2", "--rate", "400", "--burst-seconds", "0"]
    with ReplayProcess(args) as replay:
        settings = e2e_settings(qdb, tmp_path, replay.base_url, backfill_window=60.0)
        with ShardedSender(settings, workers=1) as sender:
            wait_ready(sender)
            events = WriterEvents(settings)
            final: dict[str, Any] = {}

            async def scenario() -> Pipeline:
                pipeline = Pipeline(settings, select(",".join(names)), sink=SenderSink(sender), events=events)
                pipeline.start()
                async with ReplayControl(replay.base_url) as ctl:

                    async def flowing() -> bool:
                        stats = await ctl.stats()
                        return all(stats["connectors"][n]["trades_delivered"] > 50 for n in names)

                    await _until(flowing, 30, "trades on both connectors")
                    for name in names:
                        await ctl.fault(name, "stall", seconds=3.0)
                    await asyncio.sleep(5.0)
                    await ctl.pause()
                    await asyncio.sleep(0.5)
                    final.update(await ctl.stats())

                    async def settled() -> bool:
                        return _delivered(pipeline, final) and {
                            g.scope.split("#")[0] for g in events.memory.gap_rows
                        } >= set(names)

                    await _until(settled, 30, "every generated trade and a gap per connector")
                await pipeline.stop()
                return pipeline

            pipeline = asyncio.run(scenario())
            sender.flush(timeout=60)
        events.close()
    for name in names:
        assert final["connectors"][name]["trades_lost"] > 0, f"{name}: the stall withheld nothing"
        assert final["connectors"][name]["connections_total"] == 1, f"{name}: reconnected"
    holes = [g for g in events.memory.gap_rows if "trade ids jumped" in g.reason]
    assert {g.scope.split("#")[0] for g in holes} == set(names), events.memory.gap_rows
    assert all(g.filled and g.backfilled_trades > 0 and g.symbols == 1 and "/" in g.scope for g in holes)
    assert all(f.stats.gaps == len([g for g in holes if g.scope.startswith(f.name)]) for f in pipeline.feeds)
    with connect(settings) as conn:
        queries.wait_visible(conn, settings.table("gaps"), timeout=60)
        rows = conn.execute(
            sql.SQL("SELECT scope, reason, filled FROM {} WHERE reason LIKE 'trade ids jumped%'").format(
                sql.Identifier(settings.table("gaps"))
            )
        ).fetchall()
    assert len(rows) == len(holes) and all(r[2] for r in rows)
    assert_matches_generated(settings, final, names)  # nothing missing, nothing doubled
