"""The durable spool: order, bounds, and recovery from torn or corrupt segments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from questdb_ingest.errors import SpoolDiskFullError, SpoolFullError
from questdb_ingest.sender.spool import HEADER_BYTES, Spool, SpoolLock, shard_directories
from tests.conftest import IN_CI
from tests.drills.harness import can_fault_filesystems


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


def test_a_full_filesystem_leaves_whole_records_and_keeps_the_batch_with_the_caller(tmp_path: Path) -> None:
    """A real, tiny filesystem: the write that does not fit is cut back off the segment, raised as
    ``SpoolDiskFullError`` (a ``SpoolFullError``: the caller keeps the rows), and once space is freed
    appends go on behind the whole records, which all replay."""
    why = can_fault_filesystems()
    if why:
        (pytest.fail if IN_CI else pytest.skip)(why)
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        spool = Spool(mount / "shard-0", segment_bytes=1 << 20, max_bytes=1 << 30)
        written = 0
        error: SpoolDiskFullError | None = None
        while error is None and written < 1000:
            try:
                spool.append(_payload(written, 10_000), rows=1)
                written += 1
            except SpoolDiskFullError as exc:
                error = exc
        assert error is not None and "filesystem holding spool" in str(error) and "is full" in str(error)
        assert written > 5
        segment = next((mount / "shard-0").glob("*.seg"))
        assert segment.stat().st_size == written * (HEADER_BYTES + 10_000)  # no partial record left
        assert spool.state.records == written
        with pytest.raises(SpoolFullError):  # nothing freed yet: the same record still does not fit
            spool.append(_payload(written, 10_000), rows=1)
        number, records = spool.oldest()  # type: ignore[misc]
        assert [r.payload for r in records] == [_payload(i, 10_000) for i in range(written)]
        spool.remove(number)  # replayed: the space is free again
        spool.append(_payload(written, 10_000), rows=1)
        spool.close()
        assert _records(Spool(mount / "shard-0")) == [(_payload(written, 10_000), 1)]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_spool_root_belongs_to_one_process(tmp_path: Path) -> None:
    first = SpoolLock(tmp_path)
    first.acquire()
    try:
        code = f"import sys; from questdb_ingest.sender.spool import SpoolLock\nSpoolLock({str(tmp_path)!r}).acquire()"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0
        assert f"is in use by pid {os.getpid()}" in other.stderr and "SpoolLockedError" in other.stderr
    finally:
        first.release()
    again = SpoolLock(tmp_path)
    again.acquire()  # released: free for the next process
    again.release()


def test_quarantined_records_report_the_rows_their_header_announced(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(_payload(i), rows=7)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[HEADER_BYTES + 5] ^= 0xFF  # corrupt the first record's payload
    segment.write_bytes(bytes(data[: len(data) - 10]))  # and tear the last one
    reopened = Spool(tmp_path)
    assert [(q.reason.split(":")[0], q.rows) for q in reopened.state.quarantined] == [
        ("checksum mismatch", 7),
        ("torn record", 7),
    ]
    assert reopened.state.rows == 7


def test_shard_directories_lists_every_shard_whatever_the_worker_count(tmp_path: Path) -> None:
    for name in ("shard-0", "shard-3", "shard-12", "dead-letter", "shard-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "shard-5").write_text("not a directory")
    assert sorted(shard_directories(tmp_path)) == [0, 3, 12]
    assert shard_directories(tmp_path / "missing") == {}
