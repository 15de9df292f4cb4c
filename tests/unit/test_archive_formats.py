"""Archive formats without a server: the seed's records decode to the table's columns, bad lines
become rejects with their line numbers, formats are told from names and first records, compressed
files read as the same lines, and a resumed reject log keeps each bad line once."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
import zstandard

from questdb_ingest.archive.formats import (
    Reject,
    decode_binance_trades,
    decode_gaps,
    decode_scalp,
    decode_swing,
    time_to_ns,
)
from questdb_ingest.archive.runner import RejectLog, _merge
from questdb_ingest.archive.sources import detect_format, numbered_lines, open_text
from questdb_ingest.errors import ArchiveFormatError

# Seed 004 §1, verbatim.
SWING = (
    '{"ts": "2026-01-22T09:31:05.200Z", "session": "track_a_session", "dataset": "track_a_swing", "market": '
    '"kr_stocks", "symbol": "005930", "price": {"open": 70000, "high": 72000, "low": 69500, "close": 71500}, '
    '"volume": 1234567, "bid_price": 71450, "ask_price": 71500, "source": "kis"}'
)
SCALP = (
    '{"ts": "2026-01-22T09:31:05.123Z", "event_time": "2026-01-22T09:31:05.120Z", "symbol": "005930", '
    '"bid_price": 71450, "ask_price": 71500, "bid_size": 100, "ask_size": 50, "last_price": 71475, "volume": 10, '
    '"session_id": "track_b_session", "mitigation_level": 0, "quality_flag": "normal"}'
)
GAP = (
    '{"timestamp": "2026-01-22T09:31:05.123Z", "gap_start_ts": "2026-01-22T09:31:00.000Z", "gap_end_ts": '
    '"2026-01-22T09:31:05.000Z", "gap_seconds": 5, "scope": "scalp", "reason": "ws_disconnect", "session_id": '
    '"track_b_session"}'
)
T0 = 1_769_074_265_120_000_000  # 2026-01-22T09:31:05.120Z


def _lines(*texts: str) -> list[tuple[int, bytes]]:
    return [(i, t.encode()) for i, t in enumerate(texts, 1)]


def test_the_seed_records_decode_to_their_columns() -> None:
    swing = decode_swing(_lines(SWING), "/a/swing/x.jsonl")
    row = swing.frame.iloc[0] if swing.frame is not None else None
    assert row is not None and swing.table == "swing_bars_10m" and swing.at == "bar_time"
    assert (row["symbol"], row["session_id"], row["source"], row["dataset"]) == (
        "005930",
        "track_a_session",
        "kis",
        "track_a_swing",
    )
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (70000, 72000, 69500, 71500, 1234567)
    assert (row["bid_price"], row["ask_price"], row["source_file"]) == (71450, 71500, "/a/swing/x.jsonl")
    scalp = decode_scalp(_lines(SCALP), "f")
    assert scalp.min_ns == scalp.max_ns == T0 and scalp.rows == 1
    tick = scalp.frame.iloc[0] if scalp.frame is not None else None
    assert tick is not None and tick["ts"].value == T0 + 3_000_000 and tick["bid_size"] == 100
    gap = decode_gaps(_lines(GAP), "g")
    g = gap.frame.iloc[0] if gap.frame is not None else None
    assert g is not None and g["gap_seconds"] == 5 and g["reason"] == "ws_disconnect" and gap.table == "scalp_gaps"


def test_bad_lines_become_rejects_with_line_numbers_and_reasons() -> None:
    rec = json.loads(SWING)
    bad_price = json.dumps({**rec, "price": {"open": 1, "high": 1, "low": 2, "close": 1}})
    no_session = json.dumps({**rec, "session": ""})
    out = decode_swing(_lines(SWING, "", "[1, 2]", bad_price, no_session, '{"ts": 1}', SWING), "f")
    assert out.rows == 2
    assert [(r.line, r.raw) for r in out.rejects] == [
        (3, b"[1, 2]"),
        (4, bad_price.encode()),
        (5, no_session.encode()),
        (6, b'{"ts": 1}'),
    ]
    assert "high below low" in out.rejects[1].reason and "session" in out.rejects[2].reason
    gap = json.loads(GAP)
    backwards = json.dumps({**gap, "gap_end_ts": "2026-01-22T09:30:00.000Z"})
    out = decode_gaps(_lines(backwards, json.dumps({**gap, "gap_seconds": -1})), "f")
    assert out.rows == 0 and ["before" in out.rejects[0].reason, "gap_seconds" in out.rejects[1].reason] == [True, True]


def test_binance_dump_rows_times_and_sides() -> None:
    assert time_to_ns(1_768_867_200_000) == 1_768_867_200_000 * 10**6
    assert time_to_ns(1_768_867_200_000_123) == 1_768_867_200_000_123_000
    out = decode_binance_trades(
        _lines("id,price,qty,quote_qty,time,is_buyer_maker,is_best_match", "5,1.5,2,3,1768867200000,True,True",
               "6,1.5,2,3,1768867200000", "7,0,2,0,1768867200001,False,True"),
        "/d/spot/SOLUSDT-trades-2026-01-20.csv",
    )  # fmt: skip
    assert out.trades is not None and out.trades.trade_id.tolist() == ["5"] and out.trades.side.tolist() == ["sell"]
    assert out.trades.symbol.tolist() == ["SOL-USDT"] and out.trades.market_type.tolist() == ["spot"]
    assert [(r.line, "columns" in r.reason or "invalid" in r.reason) for r in out.rejects] == [(3, True), (4, True)]
    fut = decode_binance_trades(_lines("1,2,3,6,1768867200000,false"), "/x/futures/um/BTCUSDT-trades-2026-01.csv")
    assert fut.trades is not None and fut.trades.market_type.tolist() == ["futures"]
    with pytest.raises(ArchiveFormatError, match="named"):
        decode_binance_trades(_lines("1,2,3,6,1768867200000,false"), "/x/trades.csv")


def test_formats_are_told_from_names_and_first_records(tmp_path: Path) -> None:
    def put(rel: str, text: str) -> Path:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    assert detect_format(put("swing/20260122_0930.jsonl", SWING)) == "swing"
    assert detect_format(put("scalp/20260122_0930.jsonl", SCALP)) == "scalp"
    assert detect_format(put("system/gap_20260122.jsonl", GAP)) == "gaps"
    assert detect_format(put("BTCUSDT-trades-2026-01-20.csv", "1,2,3,4,5,true,true")) == "binance_trades"
    assert detect_format(put("elsewhere/ticks.jsonl", SCALP)) == "scalp"  # by the record's keys
    assert detect_format(put("rec/okx_spot.jsonl", '{"recv_ns": 1, "text": "{}"}')) == "recording"
    with pytest.raises(ArchiveFormatError, match="cannot tell"):
        detect_format(put("what.jsonl", '{"a": 1}'))


def test_compressed_files_read_as_the_same_numbered_lines(tmp_path: Path) -> None:
    text = b"one\n\nthree\r\nfour"
    gz, zst, zp = tmp_path / "a.jsonl.gz", tmp_path / "a.jsonl.zst", tmp_path / "a.zip"
    gz.write_bytes(gzip.compress(text))
    zst.write_bytes(zstandard.ZstdCompressor().compress(text))
    with zipfile.ZipFile(zp, "w") as zf:
        zf.writestr("a.csv", text)
    want = [(1, b"one"), (2, b""), (3, b"three"), (4, b"four")]
    for path in (gz, zst, zp):
        with open_text(path) as fh:
            assert list(numbered_lines(fh)) == want
        with open_text(path) as fh:
            assert list(numbered_lines(fh, skip=2)) == want[2:]


def test_a_resumed_reject_log_keeps_each_bad_line_once(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    log = RejectLog(path, keep_through=0)
    log.write([Reject(3, "x", b"a"), Reject(9, "y", b"b")])
    log.close()
    resumed = RejectLog(path, keep_through=5)  # lines 6.. are read again: line 9 is logged again
    resumed.write([Reject(9, "y", b"b")])
    resumed.close()
    assert [json.loads(x)["line"] for x in path.read_text().splitlines()] == [3, 9]
    RejectLog(path, keep_through=0).close()  # a fresh ingest without rejects leaves no log
    assert not path.exists()


def test_minute_spans_merge() -> None:
    m = 60 * 10**9
    assert _merge([(5 * m + 1, 6 * m + 2), (6 * m + 30, 7 * m), (20 * m, 20 * m)]) == [(5 * m, 8 * m), (20 * m, 21 * m)]
