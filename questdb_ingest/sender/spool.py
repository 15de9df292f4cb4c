"""Durable spool: append-only segment files of checksummed records, replayed oldest first.

A worker writes here when QuestDB stays unreachable, and acknowledges a batch to the router only
once its record is on disk (per the fsync policy). Layout of one shard's directory::

    00000000000000000001.seg   records: MAGIC | u32 payload bytes | u32 rows | u32 crc32 | payload
    00000000000000000002.seg   (the active segment is always the newest)
    quarantine/                bytes that failed their checks on start-up, kept for inspection

On open every segment is scanned. A record whose header or checksum is wrong is moved to
``quarantine/`` with a log line: a torn tail (crash mid-write) is cut off there, a record with a
bad checksum but a sound header is skipped and the records after it are kept. Replay reads the
oldest sealed segment; the caller deletes it once QuestDB confirmed every row in it, so a crash
in between replays it again (DEDUP keys make that harmless).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import SpoolError, SpoolFullError

log = logging.getLogger(__name__)

MAGIC = b"PWS1"
_HEADER = struct.Struct("<4sIII")
HEADER_BYTES = _HEADER.size
_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Bytes set aside on start-up: which segment, where, how much and why."""

    segment: str
    offset: int
    size: int
    reason: str
    path: str


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

    def _quarantine(self, number: int, data: bytes, offset: int, size: int, reason: str) -> None:
        qdir = self.directory / "quarantine"
        qdir.mkdir(exist_ok=True)
        target = qdir / f"{_segment_name(number)}.{offset}.bad"
        target.write_bytes(data[offset : offset + size])
        item = Quarantined(_segment_name(number), offset, size, reason, str(target))
        self.state.quarantined.append(item)
        log.error(
            "spool %s: quarantined %d byte(s) at offset %d of %s (%s) -> %s",
            self.directory,
            size,
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
                self._quarantine(number, data, offset, len(data) - offset, reason)
                break
            if zlib.crc32(data[offset + HEADER_BYTES : end]) != crc:
                self._quarantine(number, data, offset, end - offset, "checksum mismatch")
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
        """Write one record (durable per the fsync policy) or raise ``SpoolFullError``."""
        size = HEADER_BYTES + len(payload)
        if self.state.bytes + size > self.max_bytes:
            raise SpoolFullError(str(self.directory), self.state.bytes, self.max_bytes, size)
        if self._active is None or (self._active.tell() + size > self.segment_bytes and self._active.tell() > 0):
            self._rotate()
        assert self._active is not None
        header = _HEADER.pack(MAGIC, len(payload), rows, zlib.crc32(payload))
        try:
            self._active.write(header)
            self._active.write(payload)
            self._active.flush()
            if self.fsync == "always":
                os.fsync(self._active.fileno())
        except OSError as exc:
            raise SpoolError(f"cannot write spool segment in {self.directory}: {exc}") from exc
        records, seg_rows = self._segment_rows.get(self._active_number, (0, 0))
        self._segment_rows[self._active_number] = (records + 1, seg_rows + rows)
        self.state.records += 1
        self.state.rows += rows
        self.state.bytes += size
        self.state.segments = len(self._segment_rows)

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.flush()
            if self.fsync != "never":
                os.fsync(self._active.fileno())
            self._active.close()
            self._active = None

    def _rotate(self) -> None:
        """Seal the active segment and start the next one."""
        self._close_active()
        self._active_number += 1
        self._active = open(self._path(self._active_number), "ab")  # noqa: SIM115 - kept open across calls
        if self.fsync != "never":
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- replay -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.state.records

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
        self._close_active()
