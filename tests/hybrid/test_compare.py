"""Shadow compare by trade id: what counts as missing, extra and mismatched."""

from __future__ import annotations

import numpy as np

from questdb_ingest.hybrid.compare import compare_records, diff_venue, diff_windows
from questdb_ingest.models import TradeBatch

T0 = 1_763_000_000_000_000_000


def trades(ids: list[str], *, price: float = 1.5, symbol: str = "XYZ-USDT", venue: str = "binance") -> TradeBatch:
    n = len(ids)
    return TradeBatch.from_columns(
        ts_ns=[T0 + int(i) for i in ids],
        exchange=[venue] * n,
        market_type=["spot"] * n,
        symbol=[symbol] * n,
        price=[price] * n,
        quantity=[2.0] * n,
        side=["buy"] * n,
        trade_id=ids,
    )


def with_price(batch: TradeBatch, row: int, price: float) -> TradeBatch:
    prices = batch.price.copy()
    prices[row] = price
    return TradeBatch(**{**{n: getattr(batch, n) for n in batch.column_names()}, "price": prices})


def test_identical_answers_are_clean() -> None:
    a = trades(["1", "2", "3"])
    d = diff_venue("binance_spot", a, trades(["1", "2", "3"]))
    assert d.clean and (d.rows_a, d.rows_b) == (3, 3)


def test_missing_extra_and_mismatched_name_the_trade_ids() -> None:
    a = trades(["1", "2", "3"])
    b = with_price(trades(["1", "3", "4"]), 0, 9.0)
    d = diff_venue("binance_spot", a, b)
    assert (d.missing, d.extra, d.mismatched) == (("2",), ("4",), ("1",))
    assert not d.clean


def test_trade_arriving_between_the_reads_is_not_a_difference() -> None:
    first = trades(["1", "2"])
    questdb = trades(["1", "2", "3"])  # "3" reached QuestDB after the first buffer read
    second = trades(["1", "2", "3"])
    assert diff_venue("v", first, questdb, second).clean
    # ... but a trade only QuestDB ever had is extra.
    assert diff_venue("v", first, trades(["1", "2", "7"]), second).extra == ("7",)


def test_same_id_on_two_symbols_are_different_trades() -> None:
    a = TradeBatch.concat([trades(["1"], symbol="XYZ-USDT"), trades(["1"], symbol="XYZ-KRW")])
    d = diff_venue("v", a, trades(["1"], symbol="XYZ-USDT"))
    assert d.missing == ("1",) and not d.extra


def test_nan_free_float_equality_is_exact() -> None:
    a = trades(["1"], price=0.1 + 0.2)
    assert not diff_venue("v", a, trades(["1"], price=0.3)).clean


def test_windows_cover_every_venue_of_either_side_and_make_rows() -> None:
    diff = diff_windows(
        {"binance_spot": trades(["1"])},
        {"okx_spot": trades(["5"], venue="okx")},
        latency_a_ms=0.1,
        latency_b_ms=3.0,
    )
    assert set(diff.venues) == {"binance_spot", "okx_spot"}
    assert diff.venues["binance_spot"].missing == ("1",) and diff.venues["okx_spot"].extra == ("5",)
    assert diff.differences == 2 and not diff.clean
    rows = compare_records(diff, symbol="XYZ", start_ns=T0, end_ns=T0 + 10, at_ns=T0 + 20)
    by_venue = {r.exchange_market: r for r in rows}
    assert by_venue["binance_spot"].missing == 1 and by_venue["binance_spot"].sample_ids == "missing:1"
    assert by_venue["okx_spot"].extra == 1 and by_venue["okx_spot"].sample_ids == "extra:5"
    assert all(r.latency_b_ms == 3.0 for r in rows)


def test_empty_sides() -> None:
    empty = TradeBatch.empty()
    assert diff_venue("v", empty, empty).clean
    assert diff_venue("v", None, trades(["1"])).extra == ("1",)
    assert np.array_equal(trades(["1"]).price, [1.5])
