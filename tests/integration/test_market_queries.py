"""store.market and ``pumpwatch query`` against the real QuestDB: write known trades, read them back.

One module-wide namespace holds three groups of rows: a listing window around ``W0`` (edge
trades 1 ns inside/outside the bounds, equal timestamps, look-alike symbols), ten minutes of
candle data (prices and quantities on a 2**-k grid, so every sum is exact in any order), and
whatever both imply for recent/latest. Every expectation is computed from the written batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner

from questdb_ingest.cli.query import query
from questdb_ingest.cli.support import parse_duration_ns, parse_time_ns
from questdb_ingest.config import Settings
from questdb_ingest.errors import QueryError
from questdb_ingest.hybrid.window import sort_by_time, symbol_matches, venue_key
from questdb_ingest.ingest import TradeWriter
from questdb_ingest.models import NO_SEQUENCE, Trade, TradeBatch, now_ns
from questdb_ingest.store import queries
from questdb_ingest.store.market import (
    Candle,
    QueryArgumentError,
    candles,
    latest_prices,
    listing_window,
    recent_trades,
    wait_view_fresh,
)
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.timefmt import iso_ns
from tests.conftest import QuestDB, scoped_settings

S = 10**9
MINUTE = 60 * S
VENUES = [("binance", "spot"), ("binance", "futures"), ("okx", "spot"), ("upbit", "spot")]


@dataclass(frozen=True)
class Market:
    settings: Settings
    batch: TradeBatch
    w0: int  # listing trigger
    start: int  # window bounds, deliberately not round numbers
    end: int
    c0: int  # first candle minute

    def frame(self) -> pd.DataFrame:
        b = self.batch
        return pd.DataFrame(
            {name: getattr(b, name) for name in ("ts_ns", "exchange", "market_type", "symbol", "price", "quantity")}
            | {"trade_id": b.trade_id}
        )


def _trade(
    ts: int,
    venue: tuple[str, str],
    symbol: str,
    trade_id: str,
    *,
    price: float = 1.5,
    side: str = "buy",
    sequence_number: int | None = None,
    recv_ns: int | None = None,
) -> Trade:
    return Trade(
        ts_ns=ts,
        exchange=venue[0],
        market_type=venue[1],
        symbol=symbol,
        price=price,
        quantity=0.25,
        side=side,
        trade_id=trade_id,
        sequence_number=sequence_number,
        recv_ns=recv_ns,
    )


def _conn(market: Market) -> psycopg.Connection[tuple[object, ...]]:
    return connect(market.settings)


def _dataset(w0: int, start: int, end: int, c0: int) -> TradeBatch:
    rng = np.random.default_rng(42)
    binance_spot, binance_fut, okx_spot, upbit_spot = VENUES
    edges = [
        _trade(start - 1, binance_spot, "XYZ-USDT", "edge-before"),
        _trade(start, binance_spot, "XYZ-USDT", "edge-start", sequence_number=2**62 + 1, recv_ns=start + 1),
        _trade(end, binance_spot, "XYZ-USDT", "edge-end", sequence_number=7, recv_ns=end + 999),
        _trade(end + 1, binance_spot, "XYZ-USDT", "edge-after"),
        # equal timestamps, written in reverse id order: reads must come back as tie-a, tie-b
        _trade(start + S, okx_spot, "XYZ-USDT", "tie-b", price=2.0),
        _trade(start + S, okx_spot, "XYZ-USDT", "tie-a", price=3.0),
        _trade(end - 1, okx_spot, "XYZ-USDT", "okx-last", price=4.0),
        _trade(w0, upbit_spot, "XYZ-KRW", "krw-1", price=1300.0, side="sell"),
        _trade(w0 + 5, binance_fut, "XYZ-USDT", "fut-1", price=1.25),
        _trade(w0 + 7, okx_spot, "XY-USDT", "xy-1", price=9.0),  # "XY" only
        _trade(w0 + 9, binance_spot, "XYZA-USDT", "xyza-1"),  # never "XYZ"
        _trade(w0 + 11, binance_spot, "X_Z-USDT", "x_z-1"),  # "X_Z": LIKE's _ must be literal
    ]
    n = 1_500
    venue_idx = rng.integers(0, len(VENUES), size=n)
    ts = np.sort(rng.integers(start + 2 * S, end - 2 * S, size=n)) + np.arange(n)
    window_bulk = TradeBatch.from_columns(
        ts_ns=ts,
        exchange=[VENUES[i][0] for i in venue_idx],
        market_type=[VENUES[i][1] for i in venue_idx],
        symbol=rng.choice(["XYZ-USDT", "XYZ-USDC", "XYZ-KRW", "XYZA-USDT", "XY-USDT"], size=n).tolist(),
        price=rng.integers(1, 2**12, size=n) / 256,
        quantity=rng.integers(1, 2**10, size=n) / 1024,
        side=np.where(rng.random(n) < 0.5, "buy", "sell"),
        trade_id=[f"w{i}" for i in range(n)],
        sequence_number=np.where(rng.random(n) < 0.3, NO_SEQUENCE, np.arange(n) + 2**60),
        recv_ns=ts + rng.integers(1, 10**6, size=n),
    )
    m = 3_000
    venue_idx = rng.integers(0, 3, size=m)
    ts = np.sort(rng.integers(c0, c0 + 10 * MINUTE - m, size=m)) + np.arange(m)  # unique: first/last unambiguous
    candle_bulk = TradeBatch.from_columns(
        ts_ns=ts,
        exchange=[VENUES[i][0] for i in venue_idx],
        market_type=[VENUES[i][1] for i in venue_idx],
        symbol=rng.choice(["CND-USDT", "CND-USDC"], size=m).tolist(),
        price=rng.integers(1, 2**14, size=m) / 256,
        quantity=rng.integers(1, 2**12, size=m) / 1024,
        side=np.where(rng.random(m) < 0.5, "buy", "sell"),
        trade_id=[f"c{i}" for i in range(m)],
        sequence_number=np.arange(m),
        recv_ns=ts + 1,
    )
    return TradeBatch.concat([TradeBatch.from_trades(edges), window_bulk, candle_bulk])


@pytest.fixture(scope="module")
def market(qdb_session: QuestDB) -> Market:
    settings = scoped_settings(qdb_session.new_prefix())
    c0 = (now_ns() // MINUTE - 120) * MINUTE  # two hours ago, on a minute
    w0 = c0 + 30 * MINUTE + 123_456_789
    start, end = w0 - 20 * S + 7, w0 + 20 * S + 3
    data = Market(settings, _dataset(w0, start, end, c0), w0, start, end, c0)
    with qdb_session.conn() as conn:
        migrate(conn, settings)
        with TradeWriter.from_settings(settings) as writer:
            writer.write(data.batch)
        queries.wait_visible(conn, settings.table("trades"))
        wait_view_fresh(conn, settings, timeout=30)
    return data


def _expected_window(data: Market, symbol: str, start: int, end: int) -> dict[str, TradeBatch]:
    b = data.batch
    mask = (b.ts_ns >= start) & (b.ts_ns <= end) & np.array([symbol_matches(symbol, s) for s in b.symbol])
    part = b.take(mask)
    keys = np.array([venue_key(e, m) for e, m in zip(part.exchange, part.market_type, strict=True)])
    return {k: sort_by_time(part.take(keys == k)) for k in sorted(set(keys.tolist()))}


def _assert_batches_equal(got: TradeBatch, want: TradeBatch) -> None:
    for name in TradeBatch.column_names():
        assert np.array_equal(getattr(got, name), getattr(want, name)), name


# --------------------------------------------------------------------------- listing window
def test_window_bounds_are_inclusive_to_the_nanosecond(market: Market) -> None:
    with _conn(market) as conn:
        venues = listing_window(conn, market.settings, "XYZ-USDT", market.start, market.end)
    ids = set(venues["binance_spot"].trade_id.tolist())
    assert {"edge-start", "edge-end"} <= ids
    assert not ids & {"edge-before", "edge-after"}
    spot = venues["binance_spot"]
    assert int(spot.ts_ns[0]) == market.start and int(spot.ts_ns[-1]) == market.end
    # above 2**53 a float64 cannot hold these; the values must come back bit-exact
    assert market.start > 2**53 and float(market.start) != market.start
    first = spot.take(spot.trade_id == "edge-start")
    assert int(first.sequence_number[0]) == 2**62 + 1 and int(first.recv_ns[0]) == market.start + 1
    last = spot.take(spot.trade_id == "edge-end")
    assert int(last.recv_ns[0]) == market.end + 999 and int(last.sequence_number[0]) == 7

    with _conn(market) as conn:  # one ns narrower on each side drops exactly the two edge trades
        narrow = listing_window(conn, market.settings, "XYZ-USDT", market.start + 1, market.end - 1)
    narrow_ids = set(narrow["binance_spot"].trade_id.tolist())
    assert ids - narrow_ids == {"edge-start", "edge-end"}


@pytest.mark.parametrize("symbol", ["XYZ", "XYZ-USDT", "XY", "XYZ-KRW", "X_Z", "XYZA", "NOPE"])
def test_window_matches_symbol_like_the_hybrid_window(market: Market, symbol: str) -> None:
    with _conn(market) as conn:
        got = listing_window(conn, market.settings, symbol, market.start, market.end)
    want = _expected_window(market, symbol, market.start, market.end)
    assert list(got) == list(want)
    for venue, batch in want.items():
        _assert_batches_equal(got[venue], batch)
    symbols = {s for b in got.values() for s in b.symbol.tolist()}
    assert all(symbol_matches(symbol, s) for s in symbols)
    if symbol == "XYZ":
        assert symbols == {"XYZ-USDT", "XYZ-USDC", "XYZ-KRW"}
    if symbol == "XY":
        assert symbols == {"XY-USDT"}  # not XYZ-*
    if symbol == "X_Z":
        assert symbols == {"X_Z-USDT"}  # the underscore is not a wildcard


def test_window_groups_by_venue_in_time_then_id_order(market: Market) -> None:
    with _conn(market) as conn:
        venues = listing_window(conn, market.settings, "XYZ", market.start, market.end)
    assert list(venues) == sorted(venues) == ["binance_futures", "binance_spot", "okx_spot", "upbit_spot"]
    for venue, batch in venues.items():
        assert {venue_key(e, m) for e, m in zip(batch.exchange, batch.market_type, strict=True)} == {venue}
        keys = list(zip(batch.ts_ns.tolist(), batch.trade_id.tolist(), strict=True))
        assert keys == sorted(keys)
    okx = venues["okx_spot"]
    tie = [t for t in okx.trade_id.tolist() if t.startswith("tie-")]
    assert tie == ["tie-a", "tie-b"]
    assert NO_SEQUENCE in set(okx.sequence_number.tolist())  # NULLs came back as the sentinel


def test_window_stays_exact_as_a_prepared_statement(market: Market) -> None:
    """Server-side prepared (psycopg prepares repeated queries): the bound bounds must still be
    re-read on every execution, at full precision."""
    cases = [
        ("XYZ-USDT", market.start, market.end),
        ("XYZ-USDT", market.start + 1, market.end - 1),
        ("XYZ-USDT", market.start - 1, market.end + 1),
        ("XYZ", market.w0, market.w0 + 5),
        ("XY", market.w0 - 10 * S, market.w0 + 10 * S),
        ("XYZ", market.start, market.end),
    ]
    with _conn(market) as conn:
        conn.prepare_threshold = 0  # prepare on first use
        for _ in range(2):
            for symbol, start, end in cases:
                got = listing_window(conn, market.settings, symbol, start, end)
                want = _expected_window(market, symbol, start, end)
                assert {v: b.trade_id.tolist() for v, b in got.items()} == {
                    v: b.trade_id.tolist() for v, b in want.items()
                }, (symbol, start - market.start, end - market.end)


def test_window_rejects_bad_arguments(market: Market) -> None:
    with _conn(market) as conn:
        with pytest.raises(QueryArgumentError) as err:
            listing_window(conn, market.settings, "XYZ", market.end, market.start)
        assert err.value.argument == "end_ns"
        with pytest.raises(QueryArgumentError) as err:
            listing_window(conn, market.settings, " XYZ", market.start, market.end)
        assert err.value.argument == "symbol"
        missing = scoped_settings("tnosuchprefix_")
        with pytest.raises(QueryError) as qerr:
            listing_window(conn, missing, "XYZ", market.start, market.end)
        assert "'tnosuchprefix_trades'" in str(qerr.value) and qerr.value.__cause__ is not None


# --------------------------------------------------------------------------- recent trades
def _newest(frame: pd.DataFrame, limit: int) -> list[str]:
    ordered = frame.sort_values(["ts_ns", "trade_id"], ascending=False)
    return ordered["trade_id"].head(limit).tolist()


def test_recent_trades_newest_first_with_filters(market: Market) -> None:
    df = market.frame()
    with _conn(market) as conn:
        everything = recent_trades(conn, market.settings, limit=7)
        okx = recent_trades(conn, market.settings, exchange="okx", market_type="spot", symbol="XYZ", limit=5)
        exact = recent_trades(conn, market.settings, symbol="XYZ-KRW", limit=3)
        since = recent_trades(conn, market.settings, symbol="XYZ-USDT", since_ns=market.end - 1, limit=100)
        with pytest.raises(QueryArgumentError) as err:
            recent_trades(conn, market.settings, limit=0)
    assert err.value.argument == "limit"
    assert everything.trade_id.tolist() == _newest(df, 7)
    assert len(everything) == 7 and bool(np.all(np.diff(everything.ts_ns) <= 0))
    okx_rows = df[(df.exchange == "okx") & (df.market_type == "spot") & df.symbol.str.startswith("XYZ-")]
    assert okx.trade_id.tolist() == _newest(okx_rows, 5)
    assert exact.trade_id.tolist() == _newest(df[df.symbol == "XYZ-KRW"], 3)
    assert set(since.trade_id.tolist()) == {"okx-last", "edge-end", "edge-after"}


# --------------------------------------------------------------------------- candles
def _expected_candles(market: Market, symbol: str, start: int, end: int, step: int, **eq: str) -> list[Candle]:
    df = market.frame()
    df = df[[symbol_matches(symbol, s) for s in df.symbol]]
    for column, value in eq.items():
        df = df[df[column] == value]
    df = df.assign(bucket=df.ts_ns // step * step).sort_values("ts_ns")
    df = df[(df.bucket >= start // step * step) & (df.bucket <= end // step * step)]
    agg = df.groupby(["bucket", "exchange", "market_type", "symbol"], sort=True).agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("quantity", "sum"),
        trades=("price", "size"),
    )
    return [
        Candle(
            int(r["bucket"]),
            str(r["exchange"]),
            str(r["market_type"]),
            str(r["symbol"]),
            float(r["open"]),
            float(r["high"]),
            float(r["low"]),
            float(r["close"]),
            float(r["volume"]),
            int(r["trades"]),
        )
        for r in agg.reset_index().to_dict("records")
    ]


def test_candles_view_equals_sample_by_equals_numpy(market: Market) -> None:
    start, end = market.c0 + 90 * S + 5, market.c0 + 7 * MINUTE + 30 * S  # partial buckets at both ends
    with _conn(market) as conn:
        view = candles(conn, market.settings, "CND", start, end)
        sampled = candles(conn, market.settings, "CND", start, end, use_view=False)
        as_60s = candles(conn, market.settings, "CND", start, end, interval="60s", use_view=False)
    want = _expected_candles(market, "CND", start, end, MINUTE)
    assert len(want) == 7 * 3 * 2  # buckets 1..7 x 3 venues x 2 symbols
    assert view == sampled == as_60s == want
    assert view[0].ts_ns == market.c0 + MINUTE and view[-1].ts_ns == market.c0 + 7 * MINUTE


@pytest.mark.parametrize(("interval", "step"), [("5m", 5 * MINUTE), ("1h", 3600 * S), ("45s", 45 * S)])
def test_candles_other_intervals_and_filters(market: Market, interval: str, step: int) -> None:
    start, end = market.c0, market.c0 + 10 * MINUTE
    with _conn(market) as conn:
        got = candles(conn, market.settings, "CND-USDT", start, end, interval=interval, exchange="binance")
    assert got == _expected_candles(market, "CND-USDT", start, end, step, exchange="binance")
    assert {c.exchange for c in got} == {"binance"} and {c.symbol for c in got} == {"CND-USDT"}


def test_candles_filtered_view_and_bad_interval(market: Market) -> None:
    start, end = market.c0, market.c0 + 10 * MINUTE
    with _conn(market) as conn:
        spot = candles(conn, market.settings, "CND", start, end, market_type="spot", exchange="okx")
        for bad in ("1 m", "0m", "1y", "5m; DROP TABLE x", ""):
            with pytest.raises(QueryArgumentError) as err:
                candles(conn, market.settings, "CND", start, end, interval=bad)
            assert err.value.argument == "interval"
    assert spot == _expected_candles(market, "CND", start, end, MINUTE, exchange="okx", market_type="spot")


# --------------------------------------------------------------------------- latest prices
def test_latest_prices_is_the_last_trade_per_key(market: Market) -> None:
    df = market.frame()
    last = df.sort_values("ts_ns").groupby(["exchange", "market_type", "symbol"], sort=True).tail(1)
    last = last.sort_values(["exchange", "market_type", "symbol"])
    with _conn(market) as conn:
        every = latest_prices(conn, market.settings)
        xyz = latest_prices(conn, market.settings, ["XYZ"], exchange="okx")
        two = latest_prices(conn, market.settings, ["XY-USDT", "CND-USDC"], market_type="spot")
        assert latest_prices(conn, market.settings, []) == []
    assert [(p.exchange, p.market_type, p.symbol, p.ts_ns, p.price, p.trade_id) for p in every] == [
        (r["exchange"], r["market_type"], r["symbol"], int(r["ts_ns"]), float(r["price"]), r["trade_id"])
        for r in last.to_dict("records")
    ]
    okx_last = [p for p in xyz if p.symbol == "XYZ-USDT"]
    assert [p.trade_id for p in okx_last] == ["okx-last"] and okx_last[0].price == 4.0
    assert {p.symbol for p in xyz} <= {"XYZ-USDT", "XYZ-USDC", "XYZ-KRW"} and {p.exchange for p in xyz} == {"okx"}
    assert {p.symbol for p in two} <= {"XY-USDT", "CND-USDC"} and {p.market_type for p in two} == {"spot"}


# --------------------------------------------------------------------------- CLI
def _run(market: Market, *args: str) -> tuple[int, str]:
    runner = CliRunner(env={"PUMPWATCH_SCHEMA_TABLE_PREFIX": market.settings.schema.table_prefix})
    result = runner.invoke(query, list(args))
    return result.exit_code, result.output


def test_cli_window(market: Market) -> None:
    want = _expected_window(market, "XYZ", market.w0 - 20 * S, market.w0 + 20 * S)
    total = sum(len(b) for b in want.values())
    code, out = _run(market, "window", "XYZ", "--at", iso_ns(market.w0), "--json")
    assert code == 0, out
    payload = json.loads(out)
    assert payload["trigger_ns"] == market.w0 and payload["total_trades"] == total
    assert {v: p["trades"] for v, p in payload["venues"].items()} == {v: len(b) for v, b in want.items()}
    assert [r["trade_id"] for r in payload["venues"]["okx_spot"]["rows"]] == want["okx_spot"].trade_id.tolist()
    code, out = _run(market, "window", "XYZ", "--at-ns", str(market.w0), "--before", "20s", "--after", "20000ms")
    assert code == 0, out
    assert f"{total} trades on {len(want)} venue(s)" in out
    assert f"{len(want['upbit_spot'])}" in out and "upbit_spot" in out


def test_cli_recent_candles_latest(market: Market) -> None:
    code, out = _run(market, "recent", "--exchange", "okx", "--symbol", "XYZ-USDT", "--limit", "2", "--json")
    assert code == 0, out
    df = market.frame()
    assert [r["trade_id"] for r in json.loads(out)] == _newest(
        df[(df.exchange == "okx") & (df.symbol == "XYZ-USDT")], 2
    )
    code, out = _run(market, "recent", "--limit", "3")
    assert code == 0 and "3 most recent trade(s)" in out

    span = ("--from", iso_ns(market.c0 + MINUTE), "--to", str(market.c0 + 2 * MINUTE - 1))
    view = _run(market, "candles", "CND-USDT", *span, "--exchange", "okx", "--json")
    sampled = _run(market, "candles", "CND-USDT", *span, "--exchange", "okx", "--no-view", "--json")
    assert view[0] == sampled[0] == 0 and json.loads(view[1]) == json.loads(sampled[1])
    want = _expected_candles(market, "CND-USDT", market.c0 + MINUTE, market.c0 + MINUTE, MINUTE, exchange="okx")
    assert [(c["open"], c["volume"], c["trades"]) for c in json.loads(view[1])] == [
        (c.open, c.volume, c.trades) for c in want
    ]
    code, out = _run(market, "candles", "CND-USDT", *span, "--exchange", "okx")
    assert code == 0 and repr(want[0].volume) in out and repr(want[0].high) in out

    code, out = _run(market, "latest", "--symbol", "XYZ-USDT", "--exchange", "okx")
    assert code == 0 and "okx-last" not in out and "4.0" in out and "latest prices (1)" in out
    code, out = _run(market, "latest", "--symbol", "XYZ-USDT", "--within", "3h", "--json")
    assert code == 0 and {(p["exchange"], p["trade_id"]) for p in json.loads(out)} >= {("okx", "okx-last")}
    code, out = _run(market, "latest", "--symbol", "XYZ-USDT", "--within", "1s", "--json")
    assert code == 0 and json.loads(out) == []  # the data is two hours old

    code, out = _run(market, "candles", "CND", "--from", "1", "--to", "2", "--interval", "1y")
    assert code == 1 and "interval" in out


def test_cli_times_are_exact_to_the_nanosecond() -> None:
    ns = 1_795_305_903_815_772_595  # > 2**53: a float round trip would change it
    assert iso_ns(ns) == "2026-11-22T00:05:03.815772595Z"
    assert parse_time_ns(iso_ns(ns), "--at") == ns
    assert parse_time_ns("2026-11-22T01:05:03.815772595+01:00", "--at") == ns
    assert parse_time_ns(str(ns), "--at") == ns
    assert parse_duration_ns("20s", "--before") == 20 * S
    assert parse_duration_ns("1500ms", "--before") == 1_500_000_000
    assert parse_duration_ns("7", "--before") == 7 * S
