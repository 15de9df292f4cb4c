"""QuestDB going away under a steady stream: spool, replay, books — on a private server we can stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from questdb_ingest.config import Settings
from questdb_ingest.connectors import SyntheticMarket
from questdb_ingest.errors import BackpressureTimeoutError
from questdb_ingest.load import run_load
from questdb_ingest.pacing import RateSchedule
from questdb_ingest.sender import ShardedSender
from questdb_ingest.sender.codec import decode, to_batch
from questdb_ingest.sender.spool import HEADER_BYTES, MAGIC
from questdb_ingest.server import QuestDBProcess
from tests.integration.sender_helpers import count_distinct, sender_settings, wait_ready, wait_until


def _spooled_order_ok(shard_dir: Path) -> int:
    """Read a live spool read-only (stopping at a record still being written); check that every
    (venue, symbol) appears in generation order. Returns the rows checked."""
    last: dict[tuple[str, str, str], int] = {}
    rows = 0
    for segment in sorted(shard_dir.glob("*.seg")):
        data = segment.read_bytes()
        offset = 0
        while offset + HEADER_BYTES <= len(data) and data[offset : offset + 4] == MAGIC:
            size = int.from_bytes(data[offset + 4 : offset + 8], "little")
            if offset + HEADER_BYTES + size > len(data):
                break
            batch = to_batch(decode(data[offset + HEADER_BYTES : offset + HEADER_BYTES + size]))
            for ex, mt, sym, seq in zip(
                batch.exchange, batch.market_type, batch.symbol, batch.sequence_number, strict=True
            ):
                key = (str(ex), str(mt), str(sym))
                assert int(seq) > last.get(key, -1), key
                last[key] = int(seq)
            rows += len(batch)
            offset += HEADER_BYTES + size
    return rows


def test_questdb_down_for_20s_mid_stream_loses_nothing(
    private_qdb: tuple[Settings, QuestDBProcess], tmp_path: Path
) -> None:
    base, server = private_qdb
    settings = sender_settings(
        base, "outage_", tmp_path / "spool", workers=2, spool_after=1.0, retry_initial=0.05, retry_max=1.0
    )
    stats_box: list[object] = []
    with ShardedSender(settings) as sender:
        wait_ready(sender)
        producer = threading.Thread(
            target=lambda: stats_box.append(
                run_load(sender, RateSchedule.steady(2000), duration=36, symbols=100, run_id="outage")
            )
        )
        producer.start()
        time.sleep(6)
        server.stop()
        outage_started = time.monotonic()
        samples = []
        spool_rows_checked = 0
        while time.monotonic() - outage_started < 20:
            m = sender.metrics()
            samples.append(m)
            assert m.books.balanced, m.books
            if time.monotonic() - outage_started > 15 and not spool_rows_checked:
                spool_rows_checked = sum(_spooled_order_ok(tmp_path / "spool" / f"shard-{i}") for i in range(2))
            time.sleep(0.5)
        during = sender.metrics()
        server.start()
        producer.join(timeout=60)
        assert sender.flush(timeout=120)
        wait_until(lambda: sender.metrics().books.spooled_now == 0, 120, "the spool to drain")
    submitted = stats_box[0].submitted  # type: ignore[attr-defined]
    after = sender.metrics()

    # The outage is visible in the metrics while it lasts...
    assert during.books.spooled_now > 0 and spool_rows_checked > 0
    assert sum(w.failed_flushes for w in during.per_worker) > 0
    assert any(w.state == "spooling" for w in during.per_worker)
    # ...and afterwards: everything spooled was replayed, trades waited out the outage.
    assert after.books.balanced and after.books.in_flight == 0 and after.books.spooled_now == 0
    assert after.books.received == submitted
    assert after.books.replayed == sum(e.spooled for e in after.exchanges.values()) > 0
    assert after.delay_ms["max_ms"] > 15_000
    assert not list((tmp_path / "spool").rglob("*.seg"))
    assert count_distinct(settings) == (submitted, submitted)


def _submit_until_refused(sender: ShardedSender, market: SyntheticMarket) -> tuple[int, BackpressureTimeoutError]:
    accepted = 0
    for _ in range(1000):
        try:
            sender.submit(market.batch(500), timeout=3)
        except BackpressureTimeoutError as exc:
            return accepted, exc
        accepted += 500
    raise AssertionError("the sender never pushed back")


def test_a_full_spool_raises_a_clear_error_and_drops_nothing(
    private_qdb: tuple[Settings, QuestDBProcess], tmp_path: Path
) -> None:
    base, server = private_qdb
    settings = sender_settings(
        base,
        "spoolfull_",
        tmp_path / "spool",
        workers=1,
        spool_after=0.2,
        retry_initial=0.05,
        retry_max=0.5,
        max_queue_rows=5_000,
        spool_segment_bytes=64 * 1024,
        spool_max_bytes=256 * 1024,
    )
    market = SyntheticMarket(symbols=10, seed=31, run_id="spoolfull")
    accepted = 0
    server.stop()
    try:
        with ShardedSender(settings) as sender:
            wait_ready(sender)
            accepted, refused = _submit_until_refused(sender, market)
            assert "is full" in str(refused) and "spool_max_bytes" in str(refused)
            assert refused.accepted_rows == 0  # a refused batch is refused whole: the caller still has it
            alarmed = sender.metrics().per_worker[0]
            assert alarmed.alarm and alarmed.spool_bytes <= 256 * 1024
            server.start()
            assert sender.flush(timeout=120)
            wait_until(lambda: sender.metrics().books.spooled_now == 0, 120, "the spool to drain")
    finally:
        server.start()
    assert accepted > 0
    assert sender.metrics().books.balanced
    assert count_distinct(settings) == (accepted, accepted)
