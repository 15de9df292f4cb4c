"""Sharding and the Arrow payloads that cross the process boundary."""

from __future__ import annotations

import numpy as np
import pytest

from questdb_ingest.connectors import SyntheticMarket
from questdb_ingest.errors import ValidationError
from questdb_ingest.models import NO_SEQUENCE, TradeBatch
from questdb_ingest.sender.codec import ShardRouter, combine, decode, encode_batch, shard_of, to_batch


def _batch(rows: int = 5000) -> TradeBatch:
    return SyntheticMarket(symbols=50, seed=3, run_id="codec").batch(rows)


def _assert_same(a: TradeBatch, b: TradeBatch) -> None:
    for name in TradeBatch.column_names():
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_round_trip_keeps_every_column_exactly() -> None:
    batch = _batch()
    batch.sequence_number[::7] = NO_SEQUENCE  # NULLs survive as NULLs
    _assert_same(to_batch(decode(encode_batch(batch))), batch)


def test_each_shard_gets_its_rows_in_submission_order() -> None:
    batch = _batch()
    parts = ShardRouter(4).split(batch)
    assert sum(p.rows for p in parts) == len(batch)
    expected_shard = np.array([shard_of(e, s, 4) for e, s in zip(batch.exchange, batch.symbol, strict=True)])
    for part in parts:
        want = batch.take(np.flatnonzero(expected_shard == part.shard))
        _assert_same(to_batch(decode(part.payload)), want)
        counts = {ex: int((want.exchange == ex).sum()) for ex in set(want.exchange.tolist())}
        assert part.exchange_rows == counts


def test_a_symbol_of_a_venue_always_lands_on_the_same_shard() -> None:
    router = ShardRouter(3)
    first = {(p.shard, ex) for p in router.split(_batch()) for ex in p.exchange_rows}
    again = {(p.shard, ex) for p in ShardRouter(3).split(_batch()) for ex in p.exchange_rows}
    assert first == again
    # Stable across processes: a fixed value, not Python's salted hash().
    assert shard_of("binance", "BTC-USDT", 4) == shard_of("binance", "BTC-USDT", 4)
    assert {shard_of("binance", f"S{i}-USDT", 4) for i in range(100)} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("side", "hold", "side"),
        ("market_type", "options", "market_type"),
        ("symbol", "", "symbol"),
        ("exchange", None, "exchange"),
        ("trade_id", "", "trade_id"),
        ("trade_id", 17, "trade_id"),
        ("price", -1.0, "price"),
        ("ts_ns", 5, "ts_ns"),
    ],
)
def test_bad_rows_are_rejected_with_field_and_row(column: str, value: object, field: str) -> None:
    batch = _batch(100)
    getattr(batch, column)[42] = value
    with pytest.raises(ValidationError) as info:
        ShardRouter(2).split(batch)
    assert info.value.field == field
    assert info.value.row == 42


def test_empty_batch_has_no_parts() -> None:
    assert ShardRouter(2).split(TradeBatch.empty()) == []


def test_a_payload_names_its_table_and_combining_keeps_it() -> None:
    named = [encode_batch(_batch(), table="x_trades").to_pybytes() for _ in range(2)]
    assert decode(named[0]).table == "x_trades"
    merged = decode(combine(named))
    assert merged.table == "x_trades" and merged.rows == 2 * len(_batch())
    assert decode(encode_batch(_batch()).to_pybytes()).table == ""
    with pytest.raises(ValueError, match="different tables"):
        combine([named[0], encode_batch(_batch()).to_pybytes()])
