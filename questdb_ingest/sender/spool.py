"""Durable spool: append-only segment files of checksummed records, replayed oldest first.

A worker writes here when QuestDB stays unreachable, and acknowledges a batch to the router only
once its record is on disk (per the fsync policy). Layout of one shard's directory::

    00000000000000000001.seg   records: MAGIC | u32 payload bytes | u32 rows | u32 crc32 | payload
    00000000000000000002.seg   (the active segment is always the newest)
    quarantine/                bytes that failed their checks on start-up, kept for inspection

A write that fails (a full filesystem) is cut back off the segment, so the file stays a clean run
of whole records and the caller still holds the batch; ENOSPC/EDQUOT raise ``SpoolDiskFullError``
(a ``SpoolFullError``: the caller keeps the rows and applies backpressure), anything else
``SpoolError``. ``SpoolLock`` makes a spool root one process's alone.

On open every segment is scanned. A record whose header or checksum is wrong is moved to
``quarantine/`` with a log line: a torn tail (crash mid-write) is cut off there, a record with a
bad checksum but a sound header is skipped and the records after it are kept. Replay reads the
oldest sealed segment; the caller deletes it once QuestDB confirmed every row in it, so a crash
in between replays it again (DEDUP keys make that harmless).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import SpoolDiskFullError, SpoolError, SpoolFullError, SpoolLockedError
from ..locks import PidLock

log = logging.getLogger(__name__)

MAGIC = b"PWS1"
_HEADER = struct.Struct("<4sIII")
HEADER_BYTES = _HEADER.size
_SUFFIX = ".seg"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Bytes set aside on start-up: which segment, where, how much, why, and how many rows they held
    (from the record header when it could be read; None when the header itself is damaged)."""

    segment: str
    offset: int
    size: int
    reason: str
    path: str
    rows: int | None = None


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    payload: bytes
    rows: int


@dataclass
class SpoolState:
    """What the spool holds right now (for metrics and the books)."""

    segments: int = 0
    records: int = 0
    rows: int = 0
    bytes: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)


def _segment_name(number: int) -> str:
    return f"{number:020d}{_SUFFIX}"


class Spool:
    """One shard's spool directory. Not thread-safe: one worker process owns it."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 8 << 30,
        segment_bytes: int = 64 << 20,
        fsync: str = "always",
    ) -> None:
        if fsync not in ("always", "segment", "never"):
            raise ValueError(f"unknown fsync policy {fsync!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.state = SpoolState()
        self._segment_rows: dict[int, tuple[int, int]] = {}  # number -> (records, rows)
        self._active: BinaryIO | None = None
        self._active_number = 0
        self._open()

    # -- start-up ---------------------------------------------------------------------------
    def _numbers(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob(f"*{_SUFFIX}") if p.stem.isdigit())

    def _path(self, number: int) -> Path:
        return self.directory / _segment_name(number)

    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.directory}: {exc}") from exc
        for number in self._numbers():
            records, rows = self._recover(number)
            if records == 0:
                self._path(number).unlink()
                continue
            self._segment_rows[number] = (records, rows)
            self.state.records += records
            self.state.rows += rows
            self.state.bytes += self._path(number).stat().st_size
        self.state.segments = len(self._segment_rows)
        self._active_number = max(self._segment_rows, default=0)

    def _quarantine(
        self, number: int, data: bytes, offset: int, size: int, reason: str, rows: int | None = None
    ) -> None:
        qdir = self.directory / "quarantine"
        qdir.mkdir(exist_ok=True)
        target = qdir / f"{_segment_name(number)}.{offset}.bad"
        target.write_bytes(data[offset : offset + size])
        item = Quarantined(_segment_name(number), offset, size, reason, str(target), rows)
        self.state.quarantined.append(item)
        log.error(
            "spool %s: quarantined %d byte(s) holding %s row(s) at offset %d of %s (%s) -> %s",
            self.directory,
            size,
            "unknown" if rows is None else f"{rows:,}",
            offset,
            item.segment,
            reason,
            target,
        )

    def _recover(self, number: int) -> tuple[int, int]:
        """Check every record of a segment; rewrite it without the bad ones. Returns (records, rows)."""
        path = self._path(number)
        data = path.read_bytes()
        good: list[tuple[int, int]] = []  # (offset, end) of sound records
        rows = 0
        offset = 0
        while offset < len(data):
            if len(data) - offset < HEADER_BYTES:
                self._quarantine(number, data, offset, len(data) - offset, "torn header at end of segment")
                break
            magic, size, record_rows, crc = _HEADER.unpack_from(data, offset)
            end = offset + HEADER_BYTES + size
            if magic != MAGIC:
                self._quarantine(number, data, offset, len(data) - offset, "bad record header")
                break
            if end > len(data):
                present = len(data) - offset - HEADER_BYTES
                reason = f"torn record: {size} payload bytes announced, {present} present"
                self._quarantine(number, data, offset, len(data) - offset, reason, record_rows)
                break
            if zlib.crc32(data[offset + HEADER_BYTES : end]) != crc:
                self._quarantine(number, data, offset, end - offset, "checksum mismatch", record_rows)
            else:
                good.append((offset, end))
                rows += record_rows
            offset = end
        if sum(e - s for s, e in good) != len(data):
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                for start, end in good:
                    out.write(data[start:end])
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        return len(good), rows

    # -- writing ----------------------------------------------------------------------------
    def append(self, payload: bytes | memoryview, rows: int) -> None:
        """Write one record (durable per the fsync policy) or raise ``SpoolFullError`` (the bound, or
        ``SpoolDiskFullError`` for a full filesystem) / ``SpoolError``; on any failure the segment is
        left as it was, so nothing half-written stays behind the caller's retry."""
        size = HEADER_BYTES + len(payload)
        if self.state.bytes + size > self.max_bytes:
            raise SpoolFullError(str(self.directory), self.state.bytes, self.max_bytes, size)
        try:
            if self._active is None or (self._active.tell() + size > self.segment_bytes and self._active.tell() > 0):
                self._rotate()
        except OSError as exc:
            raise self._write_error(exc, size) from exc
        assert self._active is not None
        header = _HEADER.pack(MAGIC, len(payload), rows, zlib.crc32(payload))
        start = self._active.tell()
        try:
            view = memoryview(header + bytes(payload))
            while view:  # an unbuffered write may be partial; a failure leaves the tail to cut off
                view = view[self._active.write(view) or 0 :]
            if self.fsync == "always":
                os.fsync(self._active.fileno())
        except OSError as exc:
            self._cut_back(start)
            raise self._write_error(exc, size) from exc
        records, seg_rows = self._segment_rows.get(self._active_number, (0, 0))
        self._segment_rows[self._active_number] = (records + 1, seg_rows + rows)
        self.state.records += 1
        self.state.rows += rows
        self.state.bytes += size
        self.state.segments = len(self._segment_rows)

    def _write_error(self, exc: OSError, size: int) -> SpoolError:
        if exc.errno in _NO_SPACE:
            return SpoolDiskFullError(str(self.directory), self.state.bytes, size, os.strerror(exc.errno or 0))
        return SpoolError(f"cannot write spool segment in {self.directory}: {exc}")

    def _cut_back(self, offset: int) -> None:
        """Remove a partly written record so the segment ends with a whole one (ftruncate frees space)."""
        assert self._active is not None
        try:
            os.ftruncate(self._active.fileno(), offset)
            self._active.seek(offset)
        except OSError as exc:  # the file is unusable: start a new segment at the next write
            log.error("spool %s: cannot cut back a failed write: %s; starting a new segment", self.directory, exc)
            self._active.close()
            self._active = None
            if offset == 0 and self._active_number not in self._segment_rows:
                self._path(self._active_number).unlink(missing_ok=True)

    def _close_active(self) -> None:
        if self._active is not None:
            if self.fsync != "never":
                os.fsync(self._active.fileno())
            self._active.close()
            self._active = None

    def _rotate(self) -> None:
        """Seal the active segment and start the next one."""
        self._close_active()
        self._active_number += 1
        # Unbuffered: a write that fails must not leave bytes in a buffer to be flushed later.
        self._active = open(self._path(self._active_number), "ab", buffering=0)  # noqa: SIM115 - kept open
        if self.fsync != "never":
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- replay -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.state.records

    def segment_numbers(self) -> list[int]:
        """The segments on disk, oldest first."""
        return self._numbers()

    def oldest(self) -> tuple[int, Iterator[SpoolRecord]] | None:
        """The oldest segment's number and its records; seals the active segment if it is the only one."""
        if not self._segment_rows:
            return None
        number = min(self._segment_rows)
        if number == self._active_number and self._active is not None:
            self._close_active()
        return number, self._read(number)

    def _read(self, number: int) -> Iterator[SpoolRecord]:
        data = self._path(number).read_bytes()
        offset = 0
        while offset < len(data):
            magic, size, rows, crc = _HEADER.unpack_from(data, offset)
            start, end = offset + HEADER_BYTES, offset + HEADER_BYTES + size
            payload = data[start:end]
            if magic != MAGIC or zlib.crc32(payload) != crc:
                raise SpoolError(f"spool segment {self._path(number)} changed under the reader at offset {offset}")
            yield SpoolRecord(payload, rows)
            offset = end

    def remove(self, number: int) -> None:
        """Delete a segment whose every row QuestDB confirmed."""
        path = self._path(number)
        size = path.stat().st_size
        records, rows = self._segment_rows.pop(number)
        path.unlink()
        self.state.records -= records
        self.state.rows -= rows
        self.state.bytes -= size
        self.state.segments = len(self._segment_rows)

    def close(self) -> None:
        try:
            self._close_active()
        except OSError as exc:  # fsync at close on a broken disk: the records were fsynced per policy
            log.error("spool %s: closing the active segment failed: %s", self.directory, exc)
            self._active = None


class SpoolLock:
    """An exclusive ``flock`` on ``<root>/.lock`` for as long as a sender uses the spool root: two
    processes appending to and replaying the same shard directories would corrupt them."""

    def __init__(self, root: str | Path) -> None:
        self._lock = PidLock(Path(root) / ".lock")
        self.path = self._lock.path

    def acquire(self) -> None:
        try:
            taken = self._lock.acquire()
        except OSError as exc:
            raise SpoolError(f"cannot use spool directory {self.path.parent}: {exc}") from exc
        if not taken:
            raise SpoolLockedError(
                f"spool directory {self.path.parent} is in use by pid {self._lock.holder()}; two senders must not "
                "share a spool (give each its own state directory)"
            )

    def release(self) -> None:
        self._lock.release()


def shard_directories(root: str | Path) -> dict[int, Path]:
    """The ``shard-N`` spool directories under ``root`` (whatever worker count wrote them)."""
    found: dict[int, Path] = {}
    base = Path(root)
    if base.is_dir():
        for path in base.iterdir():
            index = path.name.removeprefix("shard-")
            if path.is_dir() and path.name.startswith("shard-") and index.isdigit():
                found[int(index)] = path
    return found
