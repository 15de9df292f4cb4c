"""The hand-off's cheap paths write exactly what the general paths write."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from questdb_ingest.connectors.core import TradeColumns, constant_column
from questdb_ingest.models import NO_SEQUENCE, TRADE_SYMBOL_COLUMNS, TradeBatch
from questdb_ingest.sender import router
from questdb_ingest.sender.codec import ShardRouter, decode, encode_batch, to_batch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer


def _columns(n: int, seq: bool = False) -> TradeColumns:
    out = TradeColumns()
    for i in range(n):
        out.add(
            1_700_000_000_000_000_000 + i,
            f"S{i % 3}-USDT",
            1.5 + i,
            2.0,
            "buy" if i % 2 else "sell",
            str(i),
            7,
            i if seq else NO_SEQUENCE,
        )
    return out


def _ilp(frame_source: TradeBatch) -> bytes:
    buf = Buffer(protocol_version=2)
    buf.dataframe(frame_source.to_frame(), table_name="t", symbols=list(TRADE_SYMBOL_COLUMNS), at="ts")
    return bytes(buf)


def _ilp_decoded(payload: bytes) -> bytes:
    buf = Buffer(protocol_version=2)
    buf.dataframe(decode(payload).frame, table_name="t", symbols=list(TRADE_SYMBOL_COLUMNS), at="ts")
    return bytes(buf)


def test_a_connectors_exchange_and_market_are_one_shared_element_not_a_row_each() -> None:
    batch = _columns(5).drain("binance", "spot")
    assert batch.exchange.strides == (0,) and batch.market_type.strides == (0,)
    assert list(batch.exchange) == ["binance"] * 5 and list(batch.market_type) == ["spot"] * 5
    assert constant_column("okx", 0).shape == (0,)


def test_zero_stride_columns_serialise_and_travel_exactly_as_real_arrays() -> None:
    batch = _columns(50, seq=True).drain("binance", "spot")
    real = TradeBatch.from_trades(batch.to_trades())  # the same rows with per-row object arrays
    assert real.exchange.strides != (0,)
    assert _ilp(batch) == _ilp(real)
    for shards in (1, 3):
        ours = ShardRouter(shards, "t").split(batch)
        theirs = ShardRouter(shards, "t").split(real)
        assert [(p.shard, p.rows, p.exchange_rows) for p in ours] == [
            (p.shard, p.rows, p.exchange_rows) for p in theirs
        ]
        for a, b in zip(ours, theirs, strict=True):
            assert _ilp_decoded(bytes(a.payload)) == _ilp_decoded(bytes(b.payload))
    back = to_batch(decode(encode_batch(batch)))
    assert back.to_trades() == batch.to_trades()


def test_a_batch_without_sequence_numbers_drops_the_column_and_writes_the_same_lines() -> None:
    batch = _columns(20).drain("binance", "spot")
    decoded = decode(encode_batch(batch))
    assert "sequence_number" not in decoded.frame.columns
    assert _ilp_decoded(bytes(encode_batch(batch))) == _ilp(batch)  # NULLs are left out either way
    assert to_batch(decoded).to_trades() == batch.to_trades()
    mixed = _columns(4, seq=True).drain("okx", "spot")
    mixed.sequence_number[1] = NO_SEQUENCE
    kept = decode(encode_batch(mixed))
    assert "sequence_number" in kept.frame.columns
    assert to_batch(kept).sequence_number.tolist() == [0, NO_SEQUENCE, 2, 3]


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8), (None, 1)])
def test_the_default_worker_count_leaves_half_the_cores_to_the_producer_and_questdb(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, workers: int
) -> None:
    monkeypatch.setattr(router.os, "cpu_count", lambda: cores)
    assert router.default_workers() == workers


def test_validation_still_names_a_bad_row_in_a_constant_column_batch() -> None:
    from questdb_ingest.errors import ValidationError

    batch = _columns(3).drain("binance", "futures-ish")
    with pytest.raises(ValidationError, match="market_type"):
        ShardRouter(1).split(batch)
    assert np.asarray(batch.market_type).tolist() == ["futures-ish"] * 3
