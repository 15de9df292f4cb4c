"""The sharded sender against the running QuestDB: exact delivery, crashes, backpressure, torn spools."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import questdb
from psycopg import sql

from questdb_ingest.config import Settings
from questdb_ingest.connectors import SyntheticMarket
from questdb_ingest.errors import TransportUnsupportedError
from questdb_ingest.models import TradeBatch
from questdb_ingest.sender import ShardedSender
from questdb_ingest.sender.codec import encode_batch
from questdb_ingest.sender.sinks import transport_conf
from questdb_ingest.sender.spool import HEADER_BYTES, Spool
from questdb_ingest.store.pg import connect
from tests.conftest import QuestDB
from tests.integration.sender_helpers import count_distinct, sender_settings, wait_ready, wait_until


def test_a_million_trades_through_four_workers_arrive_exactly_once_in_order(qdb: QuestDB, tmp_path: Path) -> None:
    settings = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "spool", workers=4)
    market = SyntheticMarket(symbols=300, seed=21, run_id="million")
    minute = 60_000_000_000
    start = time.time_ns() - 21 * minute
    batches = [market.batch(50_000, start_ns=start + i * minute, span_ns=minute) for i in range(20)]
    with ShardedSender(settings) as sender:
        for batch in batches:
            sender.submit(batch)
        assert sender.flush(timeout=300)
    metrics = sender.metrics()
    assert metrics.books.balanced, metrics.books
    assert metrics.books.received == metrics.books.confirmed == 1_000_000
    assert {w.shard for w in metrics.per_worker if w.confirmed} == {0, 1, 2, 3}

    assert count_distinct(settings) == (1_000_000, 1_000_000)
    everything = TradeBatch.concat(batches)
    with connect(settings) as conn:
        got = conn.execute(
            sql.SQL(
                "SELECT exchange, market_type, count(), sum(quantity) FROM {} ORDER BY exchange, market_type"
            ).format(sql.Identifier(settings.table("trades")))
        ).fetchall()
        # Per symbol, the stored order (by time) is the order the trades were generated in.
        rows = conn.execute(
            sql.SQL("SELECT exchange, market_type, symbol, sequence_number FROM {} ORDER BY ts").format(
                sql.Identifier(settings.table("trades"))
            )
        ).fetchall()
    for exchange, market_type, count, volume in got:
        mask = (everything.exchange == exchange) & (everything.market_type == market_type)
        assert count == int(mask.sum())
        assert np.isclose(float(str(volume)), float(everything.quantity[mask].sum()), rtol=1e-9)
    last: dict[tuple[object, ...], int] = {}
    for exchange, market_type, symbol, seq in rows:
        key = (exchange, market_type, symbol)
        assert int(str(seq)) > last.get(key, -1), key
        last[key] = int(str(seq))


def test_a_killed_worker_is_restarted_and_nothing_is_lost_or_doubled(qdb: QuestDB, tmp_path: Path) -> None:
    settings = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "spool", workers=2)
    market = SyntheticMarket(symbols=100, seed=22, run_id="kill")
    submitted = 0
    with ShardedSender(settings) as sender:
        wait_ready(sender)
        for i in range(40):
            sender.submit(market.batch(10_000))
            submitted += 10_000
            if i == 15:
                victim = sender.worker_pids()[0]
                os.kill(victim, signal.SIGKILL)
            time.sleep(0.02)
        assert sender.flush(timeout=120)
        restarted = sender.metrics().per_worker[0]
        assert restarted.restarts == 1 and restarted.pid != victim
    metrics = sender.metrics()
    assert metrics.books.balanced and metrics.books.confirmed == submitted
    assert count_distinct(settings) == (submitted, submitted)


def test_producers_faster_than_questdb_are_slowed_never_dropped(qdb: QuestDB, tmp_path: Path) -> None:
    settings = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "spool", workers=2, max_queue_rows=2_000)
    market = SyntheticMarket(symbols=50, seed=23, run_id="bp")
    with ShardedSender(settings) as sender:
        for _ in range(100):
            sender.submit(market.batch(1_000))
            assert all(w.queue_rows <= 2_000 for w in sender.metrics().per_worker)
    metrics = sender.metrics()
    assert metrics.backpressure_waits > 0 and metrics.backpressure_seconds > 0
    assert metrics.books.balanced and metrics.books.confirmed == 100_000
    assert count_distinct(settings) == (100_000, 100_000)


def test_a_torn_spool_segment_replays_its_good_records_and_reports_the_torn_one(qdb: QuestDB, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    settings = sender_settings(qdb.settings, qdb.new_prefix(), spool_dir, workers=1)
    market = SyntheticMarket(symbols=20, seed=24, run_id="torn")
    spool = Spool(spool_dir / "shard-0")
    for _ in range(5):
        spool.append(encode_batch(market.batch(1_000)), rows=1_000)
    spool.close()
    segment = next((spool_dir / "shard-0").glob("*.seg"))
    os.truncate(segment, segment.stat().st_size - 5_000)  # the process died writing record 5

    with ShardedSender(settings) as sender:
        wait_ready(sender)
        assert sender.flush(timeout=60)
        deadline = time.monotonic() + 60
        while sender.metrics().books.spooled_now and time.monotonic() < deadline:
            time.sleep(0.1)
    metrics = sender.metrics()
    [torn] = metrics.per_worker[0].quarantined
    assert "torn record" in torn["reason"] and Path(torn["path"]).exists()
    assert Path(torn["path"]).stat().st_size > HEADER_BYTES
    assert metrics.books.recovered == metrics.books.replayed == 4_000
    assert torn["rows"] == 1_000  # the header said how many rows the torn record held
    # Every good row is accounted for, but the books do not call a quarantined record "balanced".
    assert metrics.books.spooled_now == 0 and metrics.books.accounted
    assert metrics.books.quarantined == 1_000 and not metrics.books.balanced
    assert count_distinct(settings) == (4_000, 4_000)
    assert not list((spool_dir / "shard-0").glob("*.seg"))


def test_spooled_rows_land_in_the_table_they_were_spooled_for(qdb: QuestDB, tmp_path: Path) -> None:
    """One state root, several table prefixes (a benchmark, a renamed environment): a record names
    its table, so replaying it from a sender configured for another prefix does not misplace it.
    A record from before tables were named goes to the replaying sender's own table."""
    spool_dir = tmp_path / "spool"
    other = sender_settings(qdb.settings, qdb.new_prefix(), spool_dir)
    settings = sender_settings(qdb.settings, qdb.new_prefix(), spool_dir, workers=1)
    market = SyntheticMarket(symbols=10, seed=42, run_id="tables")
    spool = Spool(spool_dir / "shard-0")
    spool.append(encode_batch(market.batch(1_500), table=other.table("trades")), rows=1_500)
    spool.append(encode_batch(market.batch(700)), rows=700)  # unnamed: the replaying sender's table
    spool.close()
    with ShardedSender(settings) as sender:
        wait_ready(sender)
        wait_until(lambda: sender.metrics().books.spooled_now == 0, 60, "the spool to drain")
    assert sender.metrics().books.replayed == 2_200
    assert count_distinct(other) == (1_500, 1_500)
    assert count_distinct(settings) == (700, 700)


def test_sigterm_stops_intake_drains_and_exits_zero(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    settings = sender_settings(qdb.settings, prefix, tmp_path / "spool")
    report = tmp_path / "load.json"
    env = dict(os.environ)
    env.update(
        PUMPWATCH_SCHEMA_TABLE_PREFIX=prefix,
        PUMPWATCH_SCHEMA_DEMO_PREFIX="",
        PUMPWATCH_SENDER_SPOOL_DIR=str(tmp_path / "spool"),
        PUMPWATCH_QUESTDB_PG_PORT=str(settings.questdb.pg_port),
        PUMPWATCH_QUESTDB_HTTP_PORT=str(settings.questdb.http_port),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "questdb_ingest.cli",
            "load",
            "--duration",
            "120",
            "--base-rate",
            "3000",
            "--json",
            str(report),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err + out
    result = json.loads(report.read_text())
    assert result["stopped_by_signal"] is True and result["elapsed_s"] < 60
    submitted = result["submitted"]
    assert submitted > 0
    books = result["metrics"]["books"]
    assert books["balanced"] and books["in_flight"] == 0
    assert books["confirmed"] + books["spooled_now"] == submitted
    assert count_distinct(settings) == (submitted, submitted)


def _server_has_websocket(settings: Settings) -> bool:
    """Ask the server directly (HTTP upgrade to QWP), independent of the sender's own check."""
    try:
        with questdb.connect(transport_conf(settings, "ws")):
            return True
    except questdb.QuestDBError:
        return False


def test_websocket_transport_delivers_exactly_or_is_refused_up_front(qdb: QuestDB, tmp_path: Path) -> None:
    """QWP/WebSocket needs a server that has it (QuestDB >= 10.0); the pinned one may not. Either the
    sender delivers over it exactly, or it refuses at start-up, before taking a single row."""
    settings = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "spool", workers=2)
    sender = ShardedSender(settings, transport="ws")
    if not _server_has_websocket(settings):
        with pytest.raises(TransportUnsupportedError, match=r"QWP/WebSocket.*10\.0"):
            sender.start()
        assert sender.metrics().books.received == 0 and sender.worker_pids() == [0, 0]
        return
    sender.start()
    market = SyntheticMarket(symbols=50, seed=25, run_id="ws")
    with sender:
        for _ in range(10):
            sender.submit(market.batch(10_000))
    assert sender.metrics().books.confirmed == 100_000
    assert count_distinct(settings) == (100_000, 100_000)


def test_min_linger_turns_a_fast_stream_into_fewer_bigger_requests(qdb: QuestDB, tmp_path: Path) -> None:
    """Past ``batch_rows`` a request waits ``min_linger`` for more rows: same rows, fewer requests.

    Counted, not timed (``flush_interval`` is an hour, so only ``batch_rows`` and ``min_linger``
    send anything): with a linger longer than the stream, the 40 submits go as one request (under
    the 300,000-row cap). Without it a batch goes at once: the first one, submitted before the
    stream, is confirmed alone with nothing asking for a flush, and the stream needs at least one
    more request."""
    market = SyntheticMarket(symbols=50, seed=3)
    flushes = {}
    for linger in (0.0, 3.0):
        ingest = replace(qdb.settings.ingest, batch_rows=1000, min_linger=linger, flush_interval=3600.0)
        settings = sender_settings(replace(qdb.settings, ingest=ingest), qdb.new_prefix(), tmp_path / f"spool{linger}")
        with ShardedSender(settings, workers=1) as sender:
            wait_ready(sender)
            first = 0
            if linger == 0.0:
                sender.submit(market.batch(5000))
                assert sender.wait_through(sender.watermark(), timeout=60, hurry=False)  # sent on its own
                first = 1
            started = time.monotonic()
            for i in range(40 - first):  # 5,000 rows every 25 ms: 200,000 rows/s for one second
                sender.submit(market.batch(5000))
                time.sleep(max(0.0, started + (i + 1) * 0.025 - time.monotonic()))
            assert sender.wait_through(sender.watermark(), timeout=60, hurry=False)
            metrics = sender.metrics()
        assert metrics.books.confirmed == 200_000
        assert count_distinct(settings) == (200_000, 200_000)
        flushes[linger] = metrics.per_worker[0].flushes
    assert flushes[3.0] == 1, flushes  # 200,000 rows, under the 300,000-row request cap
    assert flushes[0.0] >= 2, flushes


def test_every_flush_reaches_the_latency_histogram_though_acknowledgements_leave_it_out(
    qdb: QuestDB, tmp_path: Path
) -> None:
    """An acknowledgement carries the worker's counters and, at most once per stats interval, its
    histograms; the router keeps the last histograms it got and the worker's goodbye brings the
    final ones, so after close every flush is in ``flush_ms`` (and never more before it)."""
    ingest = replace(qdb.settings.ingest, batch_rows=1000, min_linger=0.0)
    settings = sender_settings(replace(qdb.settings, ingest=ingest), qdb.new_prefix(), tmp_path / "spool")
    market = SyntheticMarket(symbols=20, seed=5)
    sender = ShardedSender(settings, workers=1)
    seen, after_seen, batches = 0, 0, 0
    with sender:
        wait_ready(sender)
        while after_seen < 10 and batches < 500:  # until ten flushes after the first histogram arrived
            sender.submit(market.batch(2000))
            batches += 1
            assert sender.flush(timeout=60)
            during = sender.metrics().per_worker[0]
            assert seen <= during.flush_ms["count"] <= during.flushes  # kept between full snapshots
            seen = int(during.flush_ms["count"])
            after_seen += seen > 0
    after = sender.metrics().per_worker[0]
    assert after_seen == 10
    assert after.flush_ms["count"] == after.flushes >= batches
    assert count_distinct(settings) == (2000 * batches, 2000 * batches)
