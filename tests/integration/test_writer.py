"""TradeWriter and its siblings against the real QuestDB: write, then read back with SQL."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from questdb_ingest.connectors import CONNECTORS
from questdb_ingest.errors import FlushRejectedError, FlushTransportError, ValidationError
from questdb_ingest.ingest import HealthWriter, ListingWriter, TradeWriter
from questdb_ingest.models import HealthEvent, ListingEvent, Trade, TradeBatch, now_ns
from questdb_ingest.store import queries
from questdb_ingest.store.migrations import migrate
from tests.conftest import QuestDB, scoped_settings

DAY_NS = 86_400 * 10**9


def exact_batch(rows: int, *, days: int = 1, seed: int = 1, id_prefix: str = "t") -> TradeBatch:
    """Trades whose prices and quantities are multiples of powers of two, so sums are exact in
    any order — the read-back comparison can be ``==``, not approximate."""
    rng = np.random.default_rng(seed)
    conn_idx = rng.integers(0, len(CONNECTORS), size=rows)
    end = (now_ns() // DAY_NS) * DAY_NS + DAY_NS // 2  # noon today, so `days` distinct days
    ts = np.sort(rng.integers(end - (days - 1) * DAY_NS - DAY_NS // 4, end, size=rows)) + np.arange(rows)
    return TradeBatch.from_columns(
        ts_ns=ts,
        exchange=[CONNECTORS[i].exchange for i in conn_idx],
        market_type=[CONNECTORS[i].market_type for i in conn_idx],
        symbol=[f"S{i}-USDT" for i in rng.integers(0, 300, size=rows)],
        price=rng.integers(1, 2**20, size=rows) / 256,
        quantity=rng.integers(1, 2**16, size=rows) / 1024,
        side=np.where(rng.random(rows) < 0.5, "buy", "sell"),
        trade_id=[f"{id_prefix}{i}" for i in range(rows)],
        sequence_number=np.arange(rows),
        recv_ns=ts + 1_000,
    )


def fresh(qdb: QuestDB, **overrides: dict[str, object]):  # type: ignore[no-untyped-def]
    settings = scoped_settings(qdb.new_prefix(), **overrides)
    with qdb.conn() as conn:
        migrate(conn, settings)
    return settings


def visible(qdb: QuestDB, table: str) -> tuple[int, float, float]:
    with qdb.conn() as conn:
        queries.wait_visible(conn, table)
        return queries.table_totals(conn, table)


def test_100k_trades_read_back_exactly(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    batch = exact_batch(100_000, days=3)
    with TradeWriter.from_settings(settings, batch_rows=20_000) as writer:
        writer.write(batch)
    table = settings.table("trades")
    assert visible(qdb, table) == (100_000, float(batch.price.sum()), float(batch.quantity.sum()))
    expected = Counter(zip(batch.exchange.tolist(), batch.market_type.tolist(), strict=True))
    with qdb.conn() as conn:
        per_exchange = {(r.exchange, r.market_type): r.trades for r in queries.trade_counts_by_exchange(conn, table)}
        partitions = queries.table_partitions(conn, table)
    assert per_exchange == dict(expected)
    days = sorted({time.strftime("%Y-%m-%d", time.gmtime(int(t) // 10**9)) for t in batch.ts_ns})
    assert len(days) == 3
    assert [p.name for p in partitions] == days
    assert sum(p.rows for p in partitions) == 100_000


def test_nanosecond_timestamps_survive(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    batch = exact_batch(1_000)
    with TradeWriter.from_settings(settings) as writer:
        writer.write(batch)
    visible(qdb, settings.table("trades"))
    with qdb.conn() as conn:
        rows = conn.execute(
            f"SELECT trade_id, ts::long, recv_ts::long, sequence_number FROM {settings.table('trades')}"
        ).fetchall()
    got = {r[0]: (r[1], r[2], r[3]) for r in rows}
    want = {
        t: (int(ts), int(rv), int(sq))
        for t, ts, rv, sq in zip(batch.trade_id, batch.ts_ns, batch.recv_ns, batch.sequence_number, strict=True)
    }
    assert got == want


def test_same_batch_twice_is_deduplicated(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    batch = exact_batch(10_000, seed=5)
    for _ in range(2):
        with TradeWriter.from_settings(settings, batch_rows=3_000) as writer:
            writer.write(batch)
    assert visible(qdb, settings.table("trades")) == (10_000, float(batch.price.sum()), float(batch.quantity.sum()))


def test_invalid_row_is_rejected_before_sending(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    batch = exact_batch(50)
    batch.price[17] = np.nan
    with TradeWriter.from_settings(settings) as writer:
        with pytest.raises(ValidationError) as err:
            writer.write(batch)
        assert writer.pending_rows == 0
        with pytest.raises(ValidationError) as err2:
            writer.write_trade(batch.take(slice(0, 1)).to_trades()[0].__replace__(side="hold"))  # type: ignore[attr-defined]
    assert (err.value.field, err.value.row) == ("price", 17)
    assert err2.value.field == "side" and err2.value.value == "hold"
    assert visible(qdb, settings.table("trades"))[0] == 0


def test_rejected_flush_keeps_rows_for_retry(qdb: QuestDB) -> None:
    settings = scoped_settings(qdb.new_prefix())  # not migrated yet: the table does not exist
    batch = exact_batch(100)
    writer = TradeWriter.from_settings(settings, batch_rows=10_000, background_flush=False).open()
    try:
        writer.write(batch)
        with pytest.raises(FlushRejectedError) as err:
            writer.flush()
        assert err.value.rows == 100 and writer.pending_rows == 100
        assert "table does not exist" in err.value.server_message
        assert err.value.retryable is False
        with qdb.conn() as conn:
            migrate(conn, settings)
        assert writer.flush() == 100
        assert writer.pending_rows == 0
    finally:
        writer.close()
    assert visible(qdb, settings.table("trades")) == (100, float(batch.price.sum()), float(batch.quantity.sum()))


def test_unreachable_server_is_a_transport_error_and_rows_stay() -> None:
    writer = TradeWriter("http::addr=127.0.0.1:1;retry_timeout=100;", "trades", background_flush=False).open()
    try:
        writer.write(exact_batch(10))
        with pytest.raises(FlushTransportError) as err:
            writer.flush()
        assert err.value.retryable and writer.pending_rows == 10
        assert writer.stats.failed_flushes == 1 and writer.stats.rows_confirmed == 0
    finally:
        writer.close(flush=False)


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.parametrize("background", [False, True], ids=["inline", "flusher-thread"])
def test_flush_by_row_count(qdb: QuestDB, background: bool) -> None:
    settings = fresh(qdb)
    with TradeWriter.from_settings(
        settings, batch_rows=100, flush_interval=3600, background_flush=background
    ) as writer:
        batch = exact_batch(250)
        for start in range(0, 250, 50):
            writer.write(batch.take(slice(start, start + 50)))
        wait_for(lambda: writer.stats.flushes == 2)
        assert writer.stats.rows_confirmed == 200
        assert writer.pending_rows == 50
        assert visible(qdb, settings.table("trades"))[0] == 200
    assert visible(qdb, settings.table("trades"))[0] == 250


def test_flush_by_interval_without_further_writes(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    with TradeWriter.from_settings(settings, batch_rows=1_000_000, flush_interval=0.2) as writer:
        writer.write(exact_batch(10))
        deadline = time.monotonic() + 10
        while writer.stats.rows_confirmed < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.stats.rows_confirmed == 10
        assert writer.pending_rows == 0
        assert visible(qdb, settings.table("trades"))[0] == 10


def test_background_flush_failure_is_raised_on_next_call(qdb: QuestDB) -> None:
    settings = scoped_settings(qdb.new_prefix())  # no tables: the interval flush gets rejected
    writer = TradeWriter.from_settings(settings, batch_rows=1_000_000, flush_interval=0.05).open()
    try:
        writer.write(exact_batch(5))
        deadline = time.monotonic() + 10
        while writer.stats.failed_flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(FlushRejectedError):
            writer.write(exact_batch(5, id_prefix="u"))
        assert writer.pending_rows == 5
    finally:
        writer.close(flush=False)


def test_per_row_api_rides_on_the_columnar_path(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    trades = exact_batch(2_500, seed=9).to_trades()
    with TradeWriter.from_settings(settings, batch_rows=1_000, flush_interval=3600) as writer:
        for t in trades:
            writer.write_trade(t)
        wait_for(lambda: writer.stats.rows_confirmed == 2_000)
        assert writer.pending_rows == 500
    count, price_sum, qty_sum = visible(qdb, settings.table("trades"))
    assert (count, price_sum, qty_sum) == (2_500, sum(t.price for t in trades), sum(t.quantity for t in trades))


def test_health_and_listing_writers_round_trip(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    now = now_ns()
    health = [
        HealthEvent(
            ts_ns=now - 2_000_000,
            exchange="okx",
            market_type="spot",
            status="connected",
            last_trade_ns=now - 5_000_000,
            message_count=42,
        ),
        HealthEvent(
            ts_ns=now - 1_000_000,
            exchange="okx",
            market_type="spot",
            status="error",
            message_count=43,
            error_message="read timeout",
        ),
    ]
    listing = ListingEvent(
        ts_ns=now,
        symbol="NEW-KRW",
        announced_ns=now - 3_000_000_000,
        detected_ns=now - 2_000_000_000,
        trigger_delay_ms=1_000,
        collected_trades=1234,
        exchanges_with_data=9,
    )
    with HealthWriter.from_settings(settings) as hw:
        for event in health:
            hw.write(event)
    with ListingWriter.from_settings(settings) as lw:
        lw.write(listing)
    with qdb.conn() as conn:
        queries.wait_visible(conn, settings.table("exchange_health"))
        queries.wait_visible(conn, settings.table("listing_events"))
        h = conn.execute(
            f"SELECT status, last_trade_time::long, message_count, error_message "
            f"FROM {settings.table('exchange_health')} ORDER BY ts"
        ).fetchall()
        lrow = conn.execute(
            f"SELECT symbol, trigger_delay_ms, collected_trades, exchanges_with_data, "
            f"detected_at::long, announced_at::long FROM {settings.table('listing_events')}"
        ).fetchall()
    assert h == [("connected", now - 5_000_000, 42, ""), ("error", None, 43, "read timeout")]
    assert lrow == [("NEW-KRW", 1000, 1234, 9, (now - 2_000_000_000) // 1000, (now - 3_000_000_000) // 1000)]


def test_trade_struct_round_trip(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    t = Trade(
        ts_ns=now_ns() - 10**9,
        exchange="gate",
        market_type="futures",
        symbol="SOMI-USDT",
        price=1.2345,
        quantity=812.0,
        side="sell",
        trade_id="51234567",
    )
    with TradeWriter.from_settings(settings) as writer:
        writer.write_trade(t)
    visible(qdb, settings.table("trades"))
    with qdb.conn() as conn:
        row = conn.execute(
            f"SELECT ts::long, exchange, market_type, symbol, price, quantity, side, trade_id, sequence_number "
            f"FROM {settings.table('trades')}"
        ).fetchone()
    assert row == (t.ts_ns, "gate", "futures", "SOMI-USDT", 1.2345, 812.0, "sell", "51234567", None)


@pytest.mark.parametrize("background", [False, True], ids=["inline", "flusher-thread"])
def test_failed_threshold_flush_still_buffers_the_whole_batch(qdb: QuestDB, background: bool) -> None:
    settings = scoped_settings(qdb.new_prefix())  # not migrated: every flush is rejected
    batch = exact_batch(250_000)  # three slices, each crossing the threshold
    writer = TradeWriter.from_settings(settings, batch_rows=1_000, background_flush=background, max_in_flight=1).open()
    try:
        # With max_in_flight=1 the second slice waits for the first flush, which fails.
        with pytest.raises(FlushRejectedError):
            writer.write(batch)
        assert writer.pending_rows == 250_000
        with pytest.raises(FlushRejectedError):  # the stopped queue refuses new rows until flush()
            writer.write(exact_batch(1, id_prefix="late"))
        assert writer.pending_rows == 250_000
        assert writer.stats.rows_confirmed == 0
        with qdb.conn() as conn:
            migrate(conn, settings)
        assert writer.flush() == 250_000
    finally:
        writer.close()
    assert visible(qdb, settings.table("trades")) == (250_000, float(batch.price.sum()), float(batch.quantity.sum()))


def test_exception_inside_the_block_keeps_its_identity(qdb: QuestDB) -> None:
    settings = scoped_settings(qdb.new_prefix())  # not migrated: the closing flush fails

    def use_writer() -> None:
        with TradeWriter.from_settings(settings, background_flush=False) as writer:
            writer.write(exact_batch(3))
            raise KeyError("boom")

    with pytest.raises(KeyError) as err:
        use_writer()
    assert any("while closing the writer" in note for note in err.value.__notes__)


def test_pipelined_slices_arrive_complete_and_in_order(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    batch = exact_batch(250_000, days=2, seed=21)
    with TradeWriter.from_settings(settings, batch_rows=50_000, max_in_flight=1) as writer:
        writer.write(batch.take(slice(0, 125_000)))
        writer.write(batch.take(slice(125_000, None)))
    assert writer.stats.flushes >= 3 and writer.stats.rows_confirmed == 250_000
    assert visible(qdb, settings.table("trades")) == (250_000, float(batch.price.sum()), float(batch.quantity.sum()))


def test_per_row_api_is_flushed_by_interval(qdb: QuestDB) -> None:
    settings = fresh(qdb)
    with TradeWriter.from_settings(settings, batch_rows=1_000_000, flush_interval=0.2) as writer:
        for t in exact_batch(10, seed=4).to_trades():
            writer.write_trade(t)
        wait_for(lambda: writer.stats.rows_confirmed == 10)
        assert writer.pending_rows == 0


def test_discard_pending_drops_everything_unconfirmed(qdb: QuestDB) -> None:
    settings = scoped_settings(qdb.new_prefix())  # not migrated: flushes fail, rows pile up
    writer = TradeWriter.from_settings(settings, batch_rows=100, max_in_flight=1).open()
    try:
        writer.write(exact_batch(350))  # one sealed buffer: its failure arrives asynchronously
        wait_for(lambda: writer.last_error is not None)
        assert writer.pending_rows == 350
        assert writer.discard_pending() == 350
        assert writer.pending_rows == 0 and writer.last_error is None
        with qdb.conn() as conn:
            migrate(conn, settings)
        writer.write(exact_batch(5, id_prefix="after"))
        assert writer.flush() == 5
    finally:
        writer.close()
    assert visible(qdb, settings.table("trades"))[0] == 5
