"""``ingest_state``: the archive runner's ledger, one row per state change of a source file.

The latest row per path (``LATEST ON ts PARTITION BY path``) is the file's state. ``watermark``
is the number of lines (rows, for Parquet) whose rows QuestDB has confirmed, so a run killed
mid-file resumes there; rows between the watermark and the kill are sent again and the tables'
DEDUP keys make that harmless. The table is not WAL: a state written is what the next read sees.
All writes go through one connection under a lock (the runner's threads share it).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ..config import Settings
from ..errors import ArchiveError
from ..locks import PidLock

TABLE = "ingest_state"
STATUSES = ("running", "complete", "failed", "rolled_back")
_COLUMNS = (
    "path, format, size, sha256, status, rows_read, rows_written, rows_rejected, watermark, "
    "started_at, finished_at, seconds, run_id, options, error"
)


@dataclass(frozen=True)
class FileState:
    path: str
    format: str
    size: int
    sha256: str
    status: str
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    watermark: int = 0
    started_at_us: int = 0
    finished_at_us: int | None = None
    seconds: float = 0.0
    run_id: str = ""
    error: str = ""
    ts_us: int = 0
    options: str = ""  # the format options as JSON (a trades rollback reads the file again with them)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> FileState:
        return dataclasses.replace(self, **changes)


class StateStore:
    """Reads and appends ``ingest_state`` rows (thread-safe; one connection)."""

    def __init__(self, conn: psycopg.Connection[Any], settings: Settings) -> None:
        self.conn = conn
        self.table = settings.table(TABLE)
        self._lock = threading.Lock()
        self._last_us = 0

    def _now_us(self) -> int:
        """Strictly increasing: two states of one file never share a timestamp (LATEST ON picks one)."""
        self._last_us = max(self._last_us + 1, time.time_ns() // 1000)
        return self._last_us

    def put(self, state: FileState) -> FileState:
        with self._lock:
            ts = self._now_us()
            self.conn.execute(
                sql.SQL(
                    "INSERT INTO {} (ts, " + _COLUMNS + ") VALUES "
                    "(%s::long::timestamp, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::long::timestamp, "
                    "%s::long::timestamp, %s, %s, %s, %s)"
                ).format(sql.Identifier(self.table)),
                (
                    ts,
                    state.path,
                    state.format,
                    state.size,
                    state.sha256,
                    state.status,
                    state.rows_read,
                    state.rows_written,
                    state.rows_rejected,
                    state.watermark,
                    state.started_at_us,
                    state.finished_at_us,
                    state.seconds,
                    state.run_id,
                    state.options,
                    state.error,
                ),
            )
            return state.replace(ts_us=ts)

    def latest(self, path: str | None = None) -> dict[str, FileState]:
        """The current state of every file (or of ``path``), by path."""
        where = sql.SQL(" WHERE path = %s") if path is not None else sql.SQL("")
        query = sql.SQL(
            "SELECT ts::long, "
            + _COLUMNS.replace("started_at", "started_at::long").replace("finished_at", "finished_at::long")
            + " FROM {}{} LATEST ON ts PARTITION BY path"
        ).format(sql.Identifier(self.table), where)
        with self._lock:
            rows = self.conn.execute(query, (path,) if path is not None else ()).fetchall()
        out: dict[str, FileState] = {}
        for r in rows:
            st = FileState(
                path=str(r[1]),
                format=str(r[2]),
                size=int(r[3] or 0),
                sha256=str(r[4] or ""),
                status=str(r[5]),
                rows_read=int(r[6] or 0),
                rows_written=int(r[7] or 0),
                rows_rejected=int(r[8] or 0),
                watermark=int(r[9] or 0),
                started_at_us=int(r[10] or 0),
                finished_at_us=int(r[11]) if r[11] is not None else None,
                seconds=float(r[12] or 0.0),
                run_id=str(r[13] or ""),
                options=str(r[14] or ""),
                error=str(r[15] or ""),
                ts_us=int(r[0]),
            )
            out[st.path] = st
        return out


@contextmanager
def exclusive(settings: Settings) -> Iterator[None]:
    """One archive ingest or rollback at a time per namespace (state root + table prefix): a
    rollback rewriting a partition while an ingest writes into it would lose the ingest's rows."""
    lock = PidLock(Path(settings.state.dir) / "archive" / f".lock-{settings.schema.table_prefix or 'default'}")
    if not lock.acquire():
        raise ArchiveError(
            f"another archive ingest or rollback (pid {lock.holder()}) is using these tables; they must not run "
            f"at once ({lock.path})"
        )
    try:
        yield
    finally:
        lock.release()
