"""The hybrid ring buffer against a brute-force reference: every window it answers must equal
filtering the appended batches directly, through wrap-around, the memory cap, out-of-order
appends and trade-id widening."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from questdb_ingest.config import HybridSettings
from questdb_ingest.hybrid.ring import RingBuffer, segment_bytes
from questdb_ingest.hybrid.window import sort_by_time, symbol_matches, venue_key
from questdb_ingest.models import NO_SEQUENCE, TradeBatch

NS = 1_000_000_000
T0 = 1_763_700_000 * NS
COMPARED = ("ts_ns", "exchange", "market_type", "symbol", "price", "quantity", "side", "trade_id")
SYMBOLS = ("BTC-USDT", "ETH-USDT", "XYZ-USDT", "XYZ-KRW", "XYZW-USDT")
VENUES = (("binance", "spot"), ("upbit", "spot"), ("bybit", "futures"))


class IdSource:
    """Unique trade ids, so (ts, trade_id) orders rows the same way in every answer."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.next = 0

    def take(self, n: int) -> list[str]:
        ids = [f"{self.prefix}{i}" for i in range(self.next, self.next + n)]
        self.next += n
        return ids


def make_batch(
    rng: np.random.Generator,
    n: int,
    start_ns: int,
    span_ns: int,
    ids: IdSource,
    venues: Sequence[tuple[str, str]] = VENUES[:1],
    symbols: Sequence[str] = SYMBOLS,
    ordered: bool = True,
) -> TradeBatch:
    ts = start_ns + rng.integers(0, span_ns, size=n)
    if ordered:
        ts.sort()
    venue = rng.integers(0, len(venues), size=n)
    return TradeBatch.from_columns(
        ts_ns=ts,
        exchange=[venues[v][0] for v in venue],
        market_type=[venues[v][1] for v in venue],
        symbol=[symbols[s] for s in rng.integers(0, len(symbols), size=n)],
        price=rng.uniform(0.001, 1e5, size=n),
        quantity=rng.exponential(3.0, size=n) + 1e-9,
        side=["buy" if b else "sell" for b in rng.random(n) < 0.5],
        trade_id=ids.take(n),
        sequence_number=rng.integers(0, 1 << 40, size=n),
        recv_ns=ts + 1,
    )


def expected(batches: Sequence[TradeBatch], symbol: str, start_ns: int, end_ns: int) -> dict[str, TradeBatch]:
    """The window by brute force over everything appended (rows the buffer should still hold)."""
    full = TradeBatch.concat(batches)
    keys = np.array([venue_key(e, m) for e, m in zip(full.exchange, full.market_type, strict=True)], dtype=object)
    wanted = np.array([symbol_matches(symbol, s) for s in full.symbol], dtype=bool)
    wanted &= (full.ts_ns >= start_ns) & (full.ts_ns <= end_ns)
    out = {}
    for key in sorted(set(keys[wanted].tolist())):
        out[key] = sort_by_time(full.take(wanted & (keys == key)))
    return out


def assert_same(got: dict[str, TradeBatch], want: dict[str, TradeBatch]) -> None:
    assert sorted(got) == sorted(want)
    for key, batch in want.items():
        mine = got[key]
        assert len(mine) == len(batch), key
        for col in COMPARED:
            assert np.array_equal(getattr(mine, col), getattr(batch, col)), (key, col)
        assert (mine.sequence_number == NO_SEQUENCE).all()
        assert (mine.recv_ns == 0).all()
        assert all(type(v) is str for v in mine.trade_id)


def test_round_trip_equals_reference() -> None:
    rng = np.random.default_rng(1)
    ring = RingBuffer(segment_rows=1024)
    ids = IdSource()
    batches = [make_batch(rng, 700, T0 + i * NS, NS, ids, venues=VENUES) for i in range(10)]
    for b in batches:
        ring.append(b)
    for symbol in (*SYMBOLS, "XYZ", "BTC", "NOPE", "NOPE-USDT"):
        assert_same(ring.window(symbol, T0, T0 + 10 * NS), expected(batches, symbol, T0, T0 + 10 * NS))
    stats = ring.stats()
    assert stats.rows == stats.appended_rows == 7000
    assert stats.venues == 3
    assert stats.oldest_ts_ns == min(int(b.ts_ns.min()) for b in batches)
    assert stats.newest_ts_ns == max(int(b.ts_ns.max()) for b in batches)


def test_bounds_are_inclusive_and_outside_is_empty() -> None:
    ring = RingBuffer(segment_rows=1024)
    ts = [T0 + 100, T0 + 200, T0 + 300]
    ring.append(
        TradeBatch.from_columns(
            ts_ns=ts,
            exchange=["binance"] * 3,
            market_type=["spot"] * 3,
            symbol=["BTC-USDT"] * 3,
            price=[1.0, 2.0, 3.0],
            quantity=[1.0, 1.0, 1.0],
            side=["buy", "sell", "buy"],
            trade_id=["a", "b", "c"],
        )
    )
    got = ring.window("BTC-USDT", T0 + 100, T0 + 300)["binance_spot"]
    assert got.ts_ns.tolist() == ts
    assert ring.window("BTC-USDT", T0 + 200, T0 + 200)["binance_spot"].trade_id.tolist() == ["b"]
    assert ring.window("BTC-USDT", T0 + 101, T0 + 199) == {}
    assert ring.window("BTC-USDT", T0 + 301, T0 + 10**12) == {}
    assert ring.window("BTC-USDT", T0, T0 + 99) == {}
    assert ring.window("BTC-USDT", T0 + 300, T0 + 100) == {}  # reversed bounds


def test_base_query_returns_every_quote_across_venues() -> None:
    rng = np.random.default_rng(2)
    ring = RingBuffer(segment_rows=1024)
    ids = IdSource()
    batches = [
        make_batch(rng, 300, T0, 10 * NS, ids, venues=[VENUES[0]], symbols=["XYZ-USDT", "XYZW-USDT", "BTC-USDT"]),
        make_batch(rng, 300, T0, 10 * NS, ids, venues=[VENUES[1]], symbols=["XYZ-KRW", "BTC-KRW"]),
    ]
    for b in batches:
        ring.append(b)
    got = ring.window("XYZ", T0, T0 + 10 * NS)
    assert sorted(got) == ["binance_spot", "upbit_spot"]
    assert set(got["binance_spot"].symbol) == {"XYZ-USDT"}  # XYZW is another asset
    assert set(got["upbit_spot"].symbol) == {"XYZ-KRW"}
    assert_same(got, expected(batches, "XYZ", T0, T0 + 10 * NS))
    assert sorted(ring.window("XYZ-KRW", T0, T0 + 10 * NS)) == ["upbit_spot"]
    assert sorted(ring.window("XYZ", T0, T0 + 10 * NS, venues={"upbit_spot"})) == ["upbit_spot"]


def test_new_symbol_after_first_query_is_found() -> None:
    """The per-venue query cache must not hide a symbol that appears later (a listing)."""
    rng = np.random.default_rng(3)
    ring = RingBuffer(segment_rows=1024)
    ids = IdSource()
    ring.append(make_batch(rng, 100, T0, NS, ids, symbols=["BTC-USDT"]))
    assert ring.window("NEW", T0, T0 + 5 * NS) == {}
    later = make_batch(rng, 100, T0 + NS, NS, ids, symbols=["NEW-USDT", "NEW-BTC"])
    ring.append(later)
    assert_same(ring.window("NEW", T0, T0 + 5 * NS), expected([later], "NEW", T0, T0 + 5 * NS))


def test_hot_window_wraps_segments_in_place() -> None:
    rng = np.random.default_rng(4)
    ring = RingBuffer(hot_window_s=10.0, segment_rows=1024)
    ids = IdSource()
    batches = []
    allocated = []
    for second in range(60):
        batch = make_batch(rng, 500, T0 + second * NS, NS, ids, venues=VENUES[:2])
        batches.append(batch)
        ring.append(batch)
        allocated.append(ring.memory_bytes)
    assert allocated[20] == allocated[-1], "steady state must recycle, not allocate"
    stats = ring.stats()
    assert stats.evicted_rows == 0
    assert stats.expired_rows > 0
    assert stats.rows + stats.expired_rows == stats.appended_rows == 30_000
    assert ring.window("BTC", T0, T0 + 30 * NS) == {}  # long gone
    recent = T0 + 49 * NS
    assert_same(ring.window("BTC", recent, T0 + 60 * NS), expected(batches, "BTC", recent, T0 + 60 * NS))
    assert not ring.covers(T0 + 30 * NS)
    assert ring.covers(recent)


def test_memory_cap_holds_and_covers_tracks_evictions() -> None:
    rng = np.random.default_rng(5)
    cap = 4 * segment_bytes(1024, 16)
    ring = RingBuffer(hot_window_s=3600.0, memory_cap_bytes=cap, segment_rows=1024)
    ids = IdSource()
    batches = []
    for second in range(40):
        batch = make_batch(rng, 300, T0 + second * NS, NS, ids, venues=VENUES[:2])
        batches.append(batch)
        ring.append(batch)
        assert ring.memory_bytes <= cap
    stats = ring.stats()
    assert stats.allocated_bytes <= stats.memory_cap_bytes == cap
    assert stats.evicted_rows > 0
    assert stats.expired_rows == 0
    assert stats.rows + stats.evicted_rows == stats.appended_rows
    assert ring.covers(T0) is False
    oldest = stats.oldest_ts_ns
    assert oldest is not None
    assert not ring.covers(oldest - 1)
    # Everything from the last two seconds is certainly still held, and covered.
    recent = T0 + 38 * NS
    assert ring.covers(recent)
    assert_same(ring.window("ETH", recent, T0 + 40 * NS), expected(batches, "ETH", recent, T0 + 40 * NS))


def test_single_venue_over_the_cap_wraps_within_its_segments() -> None:
    rng = np.random.default_rng(6)
    cap = 3 * segment_bytes(512, 16)
    ring = RingBuffer(memory_cap_bytes=cap, segment_rows=512)
    ids = IdSource()
    for second in range(30):
        ring.append(make_batch(rng, 200, T0 + second * NS, NS, ids))
        assert ring.memory_bytes <= cap
    assert ring.stats().segments == 3
    assert ring.stats().evicted_rows == 30 * 200 - ring.stats().rows


def test_covers_before_any_data_and_from_the_first_batch() -> None:
    ring = RingBuffer(segment_rows=1024)
    assert not ring.covers(T0)
    ring.append(make_batch(np.random.default_rng(7), 50, T0 + NS, NS, IdSource()))
    first = ring.stats().oldest_ts_ns
    assert first is not None
    assert ring.covers(first)
    assert not ring.covers(first - 1)


def test_out_of_order_appends_match_brute_force() -> None:
    rng = np.random.default_rng(8)
    ring = RingBuffer(segment_rows=256)
    ids = IdSource()
    batches = []
    for i in range(40):
        # Mostly ordered feeds with late stragglers (reconnect backfills), some fully shuffled.
        start = T0 + i * NS // 2 - (int(rng.integers(0, 5)) * NS if i % 7 == 3 else 0)
        batch = make_batch(rng, int(rng.integers(1, 200)), start, NS, ids, venues=VENUES, ordered=i % 5 != 0)
        batches.append(batch)
        ring.append(batch)
    for _ in range(150):
        a, b = sorted(int(x) for x in rng.integers(T0 - 5 * NS, T0 + 25 * NS, size=2))
        symbol = str(rng.choice([*SYMBOLS, "XYZ", "ETH", "BTC"]))
        assert_same(ring.window(symbol, a, b), expected(batches, symbol, a, b))
    for vb in ring._venues.values():  # the fast path relies on an exact flag
        for seg in vb.segments:
            ts = seg.ts[: seg.n]
            assert seg.sorted == bool(np.all(ts[1:] >= ts[:-1]))
            assert (seg.min_ts, seg.max_ts) == (int(ts.min()), int(ts.max()))


def test_equal_timestamps_order_by_trade_id() -> None:
    ring = RingBuffer(segment_rows=1024)
    ids = ["b9", "b10", "a", "ü", "z"]
    ring.append(
        TradeBatch.from_columns(
            ts_ns=[T0 + 5] * 4 + [T0 + 1],
            exchange=["okx"] * 5,
            market_type=["spot"] * 5,
            symbol=["BTC-USDT"] * 5,
            price=[1.0, 2.0, 3.0, 4.0, 5.0],
            quantity=[1.0] * 5,
            side=["buy"] * 5,
            trade_id=ids,
        )
    )
    got = ring.window("BTC-USDT", T0, T0 + 10)["okx_spot"]
    assert got.trade_id.tolist() == ["z", "a", "b10", "b9", "ü"]
    assert got.price.tolist() == [5.0, 3.0, 2.0, 1.0, 4.0]


def test_long_ids_widen_and_keep_older_ids() -> None:
    rng = np.random.default_rng(9)
    ring = RingBuffer(segment_rows=1024)
    short, long = IdSource("s"), IdSource("L" * 38)  # 39-41 chars
    batches = [make_batch(rng, 900, T0 + i * NS, NS, short) for i in range(4)]
    for b in batches:
        ring.append(b)
    before = ring.memory_bytes
    batches.append(make_batch(rng, 900, T0 + 4 * NS, NS, long))
    ring.append(batches[-1])
    assert max(len(i) for i in batches[-1].trade_id) >= 41
    assert ring.memory_bytes > before
    assert_same(ring.window("BTC", T0, T0 + 5 * NS), expected(batches, "BTC", T0, T0 + 5 * NS))


def test_non_ascii_ids_round_trip() -> None:
    ring = RingBuffer(segment_rows=1024)
    ids = ["1", "ид-42", "trade_✓", "🚀" * 5, "naïve-" + "x" * 30]
    ring.append(
        TradeBatch.from_columns(
            ts_ns=[T0 + i for i in range(5)],
            exchange=["upbit"] * 5,
            market_type=["spot"] * 5,
            symbol=["XYZ-KRW"] * 5,
            price=[1.0] * 5,
            quantity=[1.0] * 5,
            side=["sell"] * 5,
            trade_id=ids,
        )
    )
    got = ring.window("XYZ", T0, T0 + 10)["upbit_spot"]
    assert got.trade_id.tolist() == ids
    assert got.side.tolist() == ["sell"] * 5


def test_mixed_venue_batch_is_split_per_venue() -> None:
    rng = np.random.default_rng(10)
    ring = RingBuffer(segment_rows=128)
    ids = IdSource()
    batch = make_batch(rng, 2000, T0, 10 * NS, ids, venues=VENUES)
    ring.append(batch)
    got = ring.window("XYZ", T0, T0 + 10 * NS)
    assert sorted(got) == sorted(venue_key(e, m) for e, m in VENUES)
    assert_same(got, expected([batch], "XYZ", T0, T0 + 10 * NS))
    assert ring.stats().rows == 2000


def test_memory_per_row_is_small() -> None:
    rng = np.random.default_rng(11)
    ring = RingBuffer(segment_rows=16_384)
    venues = [(f"ex{i}", "spot") for i in range(14)]
    symbols = [f"S{i}-USDT" for i in range(300)]
    rows = 1_000_000
    chunk = 50_000
    for k in range(rows // chunk):
        ids = (np.arange(k * chunk, (k + 1) * chunk) + 10**15).astype(str).astype(object)
        ts = T0 + np.sort(rng.integers(0, 60 * NS, size=chunk)) + k * 60 * NS
        ring.append(
            TradeBatch.from_columns(
                ts_ns=ts,
                exchange=np.array([v[0] for v in venues], dtype=object)[np.arange(chunk) % 14],
                market_type=np.full(chunk, "spot", dtype=object),
                symbol=np.array(symbols, dtype=object)[rng.integers(0, 300, size=chunk)],
                price=np.ones(chunk),
                quantity=np.ones(chunk),
                side=np.full(chunk, "buy", dtype=object),
                trade_id=ids,
            )
        )
    per_row = ring.memory_bytes / ring.stats().rows
    assert ring.stats().rows == rows
    assert per_row <= 60, f"{per_row:.1f} bytes/row allocated"


def test_bad_side_is_refused_by_name() -> None:
    ring = RingBuffer(segment_rows=1024)
    batch = make_batch(np.random.default_rng(12), 10, T0, NS, IdSource())
    bad = TradeBatch(**{**{c: getattr(batch, c) for c in TradeBatch.column_names()}, "side": batch.side.copy()})
    bad.side[3] = "Buy"
    with pytest.raises(ValueError, match="'Buy'"):
        ring.append(bad)
    assert ring.stats().rows == 0


def test_empty_batch_is_a_no_op() -> None:
    ring = RingBuffer(segment_rows=1024)
    ring.append(TradeBatch.empty())
    assert ring.stats().rows == 0
    assert ring.memory_bytes == 0
    assert not ring.covers(T0)


def test_cap_below_one_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="smaller than one segment"):
        RingBuffer(memory_cap_bytes=segment_bytes(1024, 16) - 1, segment_rows=1024)


def test_from_settings() -> None:
    ring = RingBuffer.from_settings(HybridSettings(hot_window=60.0, memory_cap_mb=8, segment_rows=4096))
    assert ring.hot_window_ns == 60 * NS
    assert ring.memory_cap_bytes == 8 << 20
    assert ring.segment_rows == 4096


def test_queries_while_appending_from_another_thread() -> None:
    rng = np.random.default_rng(13)
    ring = RingBuffer(hot_window_s=5.0, segment_rows=256)
    batches = [make_batch(rng, 200, T0 + i * NS // 10, NS // 10, IdSource(f"{i}-")) for i in range(300)]
    errors: list[BaseException] = []

    def query() -> None:
        try:
            for i in range(300):
                for batch in ring.window("BTC", T0, T0 + 60 * NS).values():
                    assert np.all(np.diff(batch.ts_ns) >= 0), i
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    reader = threading.Thread(target=query)
    reader.start()
    for batch in batches:
        ring.append(batch)
    reader.join()
    assert not errors


def test_covered_windows_are_complete_under_cap_expiry_and_disorder() -> None:
    """The manager's contract: when ``covers(start)`` is True the buffer's answer is the whole truth."""
    rng = np.random.default_rng(14)
    cap = 8 * segment_bytes(256, 24)
    ring = RingBuffer(hot_window_s=4.0, memory_cap_bytes=cap, segment_rows=256)
    sources = [IdSource("a"), IdSource("long-id-" * 2)]
    batches: list[TradeBatch] = []
    checked = 0
    for i in range(80):
        start = T0 + i * NS // 4 - (2 * NS if i % 9 == 4 else 0)
        batch = make_batch(
            rng, int(rng.integers(20, 150)), start, NS // 2, sources[i % 2], venues=VENUES, ordered=i % 6 != 0
        )
        batches.append(batch)
        ring.append(batch)
        assert ring.memory_bytes <= cap
        for _ in range(3):
            a = int(rng.integers(T0, T0 + (i + 2) * NS // 4))
            b = a + int(rng.integers(0, 5 * NS))
            symbol = str(rng.choice(["XYZ", "BTC-USDT", "ETH"]))
            got, want = ring.window(symbol, a, b), expected(batches, symbol, a, b)
            if ring.covers(a):
                assert_same(got, want)
                checked += 1
            else:  # whatever is returned is still true, just possibly incomplete
                for key, part in got.items():
                    assert set(part.trade_id.tolist()) <= set(want[key].trade_id.tolist())
    stats = ring.stats()
    assert stats.evicted_rows > 0
    assert stats.expired_rows > 0
    assert checked > 20


def test_a_trade_stamped_a_day_ahead_does_not_expire_the_hour() -> None:
    """A venue clock far ahead (validation allows up to a day) must not age out everybody's trades."""
    now = time.time_ns()
    ring = RingBuffer(hot_window_s=3600, memory_cap_bytes=64 << 20, segment_rows=1024)
    held = TradeBatch.from_columns(
        ts_ns=[now - 1800 * 10**9 + i for i in range(3000)],
        exchange=["binance"] * 3000,
        market_type=["spot"] * 3000,
        symbol=["XYZ-USDT"] * 3000,
        price=[1.0] * 3000,
        quantity=[1.0] * 3000,
        side=["buy"] * 3000,
        trade_id=[str(i) for i in range(3000)],
    )
    ring.append(held)
    ahead = TradeBatch.from_columns(
        ts_ns=[now + 86_000 * 10**9 + i for i in range(3000)],
        exchange=["okx"] * 3000,
        market_type=["spot"] * 3000,
        symbol=["XYZ-USDT"] * 3000,
        price=[1.0] * 3000,
        quantity=[1.0] * 3000,
        side=["sell"] * 3000,
        trade_id=[f"f{i}" for i in range(3000)],
    )
    ring.append(ahead)
    got = ring.window("XYZ-USDT", now - 3600 * 10**9, now)
    assert len(got["binance_spot"]) == 3000
    assert ring.stats().expired_rows == 0
