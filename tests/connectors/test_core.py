"""The shared connector pieces: instruments, exact conversions, trade columns, dead letters, backoff."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from questdb_ingest.config import ConnectorSettings
from questdb_ingest.connectors.connection import Backoff
from questdb_ingest.connectors.core import (
    Instrument,
    Instruments,
    TradeColumns,
    decimal_ms_to_ns,
    num_text,
    split_concatenated,
)
from questdb_ingest.connectors.deadletter import DeadLetters
from questdb_ingest.connectors.feed import select_instruments
from questdb_ingest.connectors.registry import CONNECTORS, connector, select
from questdb_ingest.errors import ConfigError


def test_contract_sizes_convert_exactly() -> None:
    okx = Instrument.make("BTC-USDT-SWAP", "BTC", "USDT", multiplier="0.01")
    gate = Instrument.make("BTC_USDT", "BTC", "USDT", multiplier="0.0001")
    assert (okx.size_num, okx.size_den) == (1, 100)
    assert okx.to_base(12) == 0.12 and okx.to_base(0.5) == 0.005
    assert gate.to_base(25) == 0.0025 and gate.to_base(3) == 0.0003
    assert gate.to_contracts(0.0025) == pytest.approx(25)
    with pytest.raises(ValueError, match="multiplier"):
        Instrument.make("X", "X", "USDT", multiplier="0")


def test_symbols_normalise_with_aliases_and_fallbacks() -> None:
    assert Instrument.make("XBTUSDTM", "XBT", "USDT").symbol == "BTC-USDT"
    assert split_concatenated("SOMIUSDT") == ("SOMI", "USDT")
    assert split_concatenated("USDT") is None
    known = Instruments([Instrument.make("1000PEPEUSDC", "1000PEPE", "USDC")])
    assert known.symbol_of("1000PEPEUSDC") == "1000PEPE-USDC"
    assert known.symbol_of("ETHFDUSD") == "ETH-FDUSD"  # not listed: quote-suffix fallback
    assert known.symbol_of("eth_btc") == "ETH-BTC"


def test_decimal_ms_is_exact_ns() -> None:
    assert decimal_ms_to_ns("1758067201193.4521") == 1_758_067_201_193_452_100
    assert decimal_ms_to_ns("1758067201345") == 1_758_067_201_345_000_000
    assert decimal_ms_to_ns("1758067201345.1234567") == 1_758_067_201_345_123_456
    for bad in ("", "1.2.3", "-5", "12a", "1e3"):
        with pytest.raises(ValueError):
            decimal_ms_to_ns(bad)


def test_num_text_round_trips_without_exponent() -> None:
    for value in (1.2345, 0.00001234, 115234.56, 1e-8, 3.0):
        text = num_text(value)
        assert "e" not in text.lower() and float(text) == value


def test_trade_columns_drain_builds_a_valid_batch_and_resets() -> None:
    cols = TradeColumns()
    cols.add(1_758_067_201_122_000_000, "SOMI-USDT", 1.2345, 812.0, "buy", "51234567", 5, 77)
    cols.add(1_758_067_201_129_000_000, "SOMI-USDT", 1.2341, 150.5, "sell", "51234568", 6)
    batch = cols.drain("binance", "spot")
    assert len(cols) == 0 and len(batch) == 2
    batch.validate(now=1_758_067_300_000_000_000)
    assert batch.exchange.tolist() == ["binance", "binance"]
    assert batch.sequence_number[0] == 77 and batch.recv_ns.tolist() == [5, 6]


def test_invalid_mask_flags_exactly_the_bad_rows() -> None:
    cols = TradeColumns()
    now = 1_758_067_300_000_000_000
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, 1.0, "buy", "1", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", -1.0, 1.0, "buy", "2", 1)
    cols.add(9_958_067_201_000_000_000, "A-USDT", 1.0, 1.0, "buy", "3", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, float("nan"), "buy", "4", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, 1.0, "hold", "5", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, 1.0, "sell", "", 1)
    batch = cols.drain("x", "spot")
    assert batch.invalid_mask(now).tolist() == [False, True, True, True, True, True]
    batch.take(~batch.invalid_mask(now)).validate(now)


def test_dead_letters_keep_text_and_binary_frames(tmp_path: Path) -> None:
    dl = DeadLetters(tmp_path / "dl")
    dl.write("okx_spot", '{"event":"error"}', "venue error: 60018", 11, scope="okx_spot#0")
    dl.write("upbit_spot", b"\x00\x01", "malformed frame", 12)
    dl.close()
    okx = [json.loads(line) for line in (tmp_path / "dl" / "okx_spot.jsonl").read_text().splitlines()]
    assert okx == [
        {"recv_ns": 11, "connector": "okx_spot", "reason": "venue error: 60018", "scope": "okx_spot#0",
         "text": '{"event":"error"}', "truncated": False}
    ]  # fmt: skip
    upbit = json.loads((tmp_path / "dl" / "upbit_spot.jsonl").read_text())
    assert upbit["b64"] == "AAE=" and dl.counts == {"okx_spot": 1, "upbit_spot": 1}


def test_backoff_grows_with_jitter_caps_and_resets() -> None:
    b = Backoff(0.5, 8.0)
    delays = [b.next_delay() for _ in range(10)]
    assert 0.25 <= delays[0] <= 0.75
    assert all(d <= 8.0 for d in delays) and max(delays) >= 4.0
    b.reset()
    assert b.next_delay() <= 0.75


def test_instrument_selection_by_quote_symbol_and_cap() -> None:
    found = [Instrument.make(f"{b}{q}", b, q) for b in ("BTC", "ETH", "SOL") for q in ("USDT", "BTC")]
    assert [i.symbol for i in select_instruments(found, ConnectorSettings())] == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    assert len(select_instruments(found, ConnectorSettings(quotes=""))) == 6
    only = select_instruments(found, ConnectorSettings(symbols="eth-btc, SOL-USDT"))
    assert [i.symbol for i in only] == ["ETH-BTC", "SOL-USDT"]
    assert len(select_instruments(found, ConnectorSettings(max_symbols=2))) == 2


def test_registry_selection_names_the_bad_key() -> None:
    assert len(select("all")) == len(CONNECTORS) == 14
    assert [c.name for c in select("okx_spot, upbit_spot")] == ["okx_spot", "upbit_spot"]
    with pytest.raises(ConfigError, match=r"connectors\.enabled.*nasdaq"):
        select("binance_spot,nasdaq")
    assert connector("bithumb_spot").protocol().spec.exchange == "bithumb"
    assert np.all([c.protocol().spec.connector == c.name for c in CONNECTORS])
