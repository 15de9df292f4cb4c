"""What the sender's spool still has to replay, per table: the oldest trade timestamp in it.

Retention must never drop a partition those rows are going back into. The spool belongs to the
running sender, so this reads its segment files without taking the spool lock and without the
``Spool`` class (which repairs segments on open): plain reads of whole records, checksums checked.
A record still being appended (a torn tail) is not read yet; a segment deleted under the reader
(replay confirmed it) simply drops out. Sealed segments never change, so what was read is kept
per file and only the bytes appended since are read on the next call.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..config import Settings
from ..sender.codec import TABLE_KEY
from ..sender.spool import _HEADER, HEADER_BYTES, MAGIC, shard_directories

log = logging.getLogger(__name__)


@dataclass
class _Scanned:
    inode: int
    offset: int  # bytes of whole, sound records read so far
    oldest: dict[str, int] = field(default_factory=dict)  # table ("" = the sender's own) -> ts ns


class SpoolScanner:
    """``oldest_by_table()`` over every ``shard-N`` directory under the spool root; keep one scanner
    to read only new bytes on each call (the retention manager calls it every interval)."""

    def __init__(self, spool_dir: str | Path, default_tables: tuple[str, ...] = ()) -> None:
        self.root = Path(spool_dir)
        # Tables a payload without a table name replays into (the sender's own trades table).
        self.default_tables = default_tables
        self._files: dict[Path, _Scanned] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SpoolScanner:
        """Payloads naming no table replay into the sender's trades table: the production one, or
        the demo one when the sender was a demo's (both are protected; being wrong is only safe)."""
        defaults = (settings.table("trades"), settings.for_demo().table("trades"))
        return cls(settings.sender.spool_dir, tuple(dict.fromkeys(defaults)))

    def __call__(self) -> dict[str, int]:
        return self.oldest_by_table()

    def oldest_by_table(self) -> dict[str, int]:
        """Table name → oldest trade timestamp (ns) still in the spool; tables with nothing spooled
        are absent. Raises ``OSError`` when a segment exists and cannot be read."""
        seen: set[Path] = set()
        for shard in shard_directories(self.root).values():
            for path in sorted(shard.glob("*.seg")):
                try:
                    self._scan(path)
                except FileNotFoundError:  # replayed and deleted while we listed
                    self._files.pop(path, None)
                    continue
                seen.add(path)
        for gone in set(self._files) - seen:
            del self._files[gone]
        merged: dict[str, int] = {}
        for scanned in self._files.values():
            for table, ts in scanned.oldest.items():
                for name in self.default_tables if table == "" else (table,):
                    merged[name] = min(ts, merged.get(name, ts))
        return merged

    def _scan(self, path: Path) -> None:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            done = self._files.get(path)
            if done is None or done.inode != st.st_ino or st.st_size < done.offset:
                done = self._files[path] = _Scanned(st.st_ino, 0)  # new, replaced or cut back: read it all
            if st.st_size == done.offset:
                return
            f.seek(done.offset)
            data = f.read(st.st_size - done.offset)
        offset = 0
        while len(data) - offset >= HEADER_BYTES:
            magic, size, _rows, crc = _HEADER.unpack_from(data, offset)
            start, end = offset + HEADER_BYTES, offset + HEADER_BYTES + size
            if magic != MAGIC or end > len(data):
                break  # a record being written (or damage the sender quarantines on its next start)
            payload = data[start:end]
            if zlib.crc32(payload) != crc:
                log.warning("spool %s: record at offset %d fails its checksum; not counted", path, done.offset + offset)
                break
            table, oldest = _oldest(payload)
            if oldest is not None:
                done.oldest[table] = min(oldest, done.oldest.get(table, oldest))
            offset = end
        done.offset += offset


def _oldest(payload: bytes) -> tuple[str, int | None]:
    """(table, oldest ts ns) of one Arrow IPC payload (``sender.codec``'s format)."""
    reader = pa.ipc.open_stream(pa.py_buffer(payload))
    meta = reader.schema.metadata or {}
    table = reader.read_all()
    oldest = pc.min(table.column("ts").cast(pa.int64())).as_py() if table.num_rows else None
    return meta.get(TABLE_KEY, b"").decode(), None if oldest is None else int(oldest)


def spool_oldest_by_table(settings: Settings) -> Mapping[str, int]:
    """One-off read of the spool (the CLI); a long-lived caller keeps a ``SpoolScanner``."""
    return SpoolScanner.from_settings(settings).oldest_by_table()
