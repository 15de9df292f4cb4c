"""Listing window export: Parquet and JSON read back equal to the input (ts_ns exact), atomic writes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from questdb_ingest.hybrid import export
from questdb_ingest.hybrid.export import SCHEMA, export_name, export_window
from questdb_ingest.hybrid.window import ListingData
from questdb_ingest.models import TradeBatch
from questdb_ingest.timefmt import iso_ns

# 2025-11-21T04:40:00Z plus odd nanoseconds: far above 2**53, so a float would round them.
TRIGGER = 1_763_700_000_123_456_789
NS = 1_000_000_000


def batch(exchange: str, market_type: str, rows: list[tuple[int, str, float, float, str, str]]) -> TradeBatch:
    return TradeBatch.from_columns(
        ts_ns=[r[0] for r in rows],
        exchange=[exchange] * len(rows),
        market_type=[market_type] * len(rows),
        symbol=[r[1] for r in rows],
        price=[r[2] for r in rows],
        quantity=[r[3] for r in rows],
        side=[r[4] for r in rows],
        trade_id=[r[5] for r in rows],
    )


def sample() -> ListingData:
    venues = {
        "upbit_spot": batch(
            "upbit",
            "spot",
            [
                (TRIGGER + 3, "NEWCOIN-KRW", 1234.5, 10.0, "buy", "9007199254740993"),
                (TRIGGER - 19 * NS, "NEWCOIN-KRW", 1200.0, 0.1, "sell", "1"),
            ],
        ),
        "binance_futures": batch(
            "binance",
            "futures",
            [
                (TRIGGER + 1, "NEWCOIN-USDT", 0.87654321, 1e-6, "buy", "b2"),
                (TRIGGER + 1, "NEWCOIN-USDT", 0.1 + 0.2, 3.0, "sell", "b1"),  # same ns: trade id decides
            ],
        ),
        "binance_spot": batch("binance", "spot", [(TRIGGER + 1, "NEWCOIN-USDT", 0.8765, 2.5, "buy", "s1")]),
        "okx_spot": TradeBatch.empty(),
    }
    return ListingData(
        symbol="NEWCOIN",
        trigger_ns=TRIGGER,
        start_ns=TRIGGER - 20 * NS,
        end_ns=TRIGGER + 20 * NS,
        source="buffer",
        venues=venues,
        latency_ms=1.25,
        notes=["a note"],
    )


def expected_rows(data: ListingData) -> list[dict[str, Any]]:
    """The input flattened and ordered independently of the exporter: (ts, venue, trade id)."""
    rows = []
    for venue, b in data.venues.items():
        for t in b.to_trades():
            rows.append(
                {
                    "venue": venue,
                    "exchange": t.exchange,
                    "market_type": t.market_type,
                    "symbol": t.symbol,
                    "ts_ns": t.ts_ns,
                    "price": t.price,
                    "quantity": t.quantity,
                    "side": t.side,
                    "trade_id": t.trade_id,
                }
            )
    return sorted(rows, key=lambda r: (r["ts_ns"], r["venue"], r["trade_id"]))


def test_export_round_trips_parquet_and_json_exactly(tmp_path: Path) -> None:
    data = sample()
    paths = export_window(data, tmp_path)

    assert paths.directory == tmp_path / "NEWCOIN_20251121T044000"
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["NEWCOIN_20251121T044000"]  # no temp dir left
    want = expected_rows(data)
    assert len(want) == 5

    table = pq.read_table(paths.parquet)
    assert table.schema.equals(SCHEMA)
    got = table.drop_columns(["ts"]).to_pylist()
    assert got == want  # every column, exact: ints as ints, floats bit for bit
    ts = table.column("ts")
    assert ts.type == pa.timestamp("ns", tz="UTC")
    assert ts.cast(pa.int64()).to_pylist() == [r["ts_ns"] for r in want]
    assert [r["ts_ns"] for r in got][:3] == [TRIGGER - 19 * NS, TRIGGER + 1, TRIGGER + 1]

    raw = paths.trades_json.read_bytes()
    for decoded in (json.loads(raw), msgspec.json.decode(raw)):  # the stdlib reader too: ints stay exact
        records = decoded["trades"]
        assert [{k: v for k, v in r.items() if k != "ts"} for r in records] == want
        assert [r["ts"] for r in records] == [iso_ns(r["ts_ns"]) for r in want]
        assert decoded["trigger_ns"] == TRIGGER
        assert decoded["total"] == 5

    summary = json.loads(paths.summary_json.read_bytes())
    assert summary["symbol"] == "NEWCOIN"
    assert summary["trigger_ns"] == TRIGGER
    assert summary["trigger"] == "2025-11-21T04:40:00.123456789Z"
    assert summary["window"]["start_ns"] == TRIGGER - 20 * NS
    assert summary["window"]["end_ns"] == TRIGGER + 20 * NS
    assert summary["source"] == "buffer"
    assert summary["counts"] == {"binance_futures": 2, "binance_spot": 1, "upbit_spot": 2}
    assert summary["total"] == 5
    assert summary["exchanges_with_data"] == 3
    assert summary["notes"] == ["a note"]
    assert "trades" not in summary


def test_empty_window_exports_empty_table(tmp_path: Path) -> None:
    data = ListingData("GHOST", TRIGGER, TRIGGER - 1, TRIGGER + 1, "questdb", {}, 0.5)
    paths = export_window(data, tmp_path / "nested" / "dir")
    table = pq.read_table(paths.parquet)
    assert table.num_rows == 0
    assert table.schema.equals(SCHEMA)
    assert json.loads(paths.trades_json.read_bytes())["trades"] == []
    assert json.loads(paths.summary_json.read_bytes())["counts"] == {}


def test_reexport_replaces_the_earlier_one(tmp_path: Path) -> None:
    data = sample()
    export_window(data, tmp_path)
    fewer = replace(data, venues={"upbit_spot": data.venues["upbit_spot"]})
    paths = export_window(fewer, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert pq.read_table(paths.parquet).num_rows == 2


def test_failed_export_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(export, "_records", broken)  # fails after trades.parquet was written
    with pytest.raises(OSError, match="disk full"):
        export_window(sample(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_names() -> None:
    assert export_name("NEWCOIN", TRIGGER) == "NEWCOIN_20251121T044000"
    assert export_name("A/B", TRIGGER) == "A_B_20251121T044000"
    assert iso_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_ns(TRIGGER) == "2025-11-21T04:40:00.123456789Z"
