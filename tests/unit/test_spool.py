"""The durable spool: order, bounds, and recovery from torn or corrupt segments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from questdb_ingest.errors import SpoolFullError
from questdb_ingest.sender.spool import HEADER_BYTES, Spool


def _records(spool: Spool) -> list[tuple[bytes, int]]:
    out = []
    while (oldest := spool.oldest()) is not None:
        number, records = oldest
        out += [(r.payload, r.rows) for r in records]
        spool.remove(number)
    return out


def _payload(i: int, size: int = 300) -> bytes:
    return (f"record-{i}-".encode() * size)[:size]


def test_records_come_back_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096, fsync="never")
    for i in range(40):
        spool.append(_payload(i), rows=i + 1)
    assert spool.state.segments > 1
    assert spool.state.rows == sum(range(1, 41))
    spool.close()
    reopened = Spool(tmp_path, segment_bytes=4096)
    assert reopened.state.records == 40
    assert _records(reopened) == [(_payload(i), i + 1) for i in range(40)]
    assert reopened.state.records == reopened.state.rows == reopened.state.bytes == 0
    assert not list(tmp_path.glob("*.seg"))


def test_appends_continue_behind_a_segment_being_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(_payload(1), 1)
    number, records = spool.oldest()  # type: ignore[misc]
    spool.append(_payload(2), 2)  # goes to a new segment: the oldest is sealed
    assert [r.rows for r in records] == [1]
    spool.remove(number)
    assert _records(spool) == [(_payload(2), 2)]


def test_torn_tail_is_quarantined_and_good_records_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(_payload(i), rows=10)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    original = segment.read_bytes()
    record = HEADER_BYTES + 300
    os.truncate(segment, len(original) - record // 2)  # crash in the middle of the last record

    reopened = Spool(tmp_path)
    assert reopened.state.records == 4 and reopened.state.rows == 40
    [bad] = reopened.state.quarantined
    assert bad.offset == 4 * record and "torn record" in bad.reason
    assert Path(bad.path).read_bytes() == original[4 * record : len(original) - record // 2]
    assert _records(reopened) == [(_payload(i), 10) for i in range(4)]


def test_checksum_mismatch_skips_only_that_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(_payload(i), rows=1)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[HEADER_BYTES + 300 + HEADER_BYTES + 10] ^= 0xFF  # flip a byte inside record 1's payload
    segment.write_bytes(bytes(data))

    reopened = Spool(tmp_path)
    [bad] = reopened.state.quarantined
    assert bad.reason == "checksum mismatch"
    assert _records(reopened) == [(_payload(0), 1), (_payload(2), 1)]


def test_a_full_spool_refuses_loudly_and_keeps_what_it_has(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=8192, segment_bytes=4096)
    written = 0
    while spool.state.bytes + HEADER_BYTES + 1000 <= 8192:
        spool.append(_payload(written, 1000), rows=1)
        written += 1
    with pytest.raises(SpoolFullError) as info:
        spool.append(_payload(written, 1000), rows=1)
    assert "is full" in str(info.value) and "spool_max_bytes" in str(info.value)
    assert spool.state.bytes <= 8192
    assert len(_records(spool)) == written


def test_unknown_fsync_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path, fsync="sometimes")
