"""The ``maintenance_events`` table: one row for everything the operations parts did (a partition
retention dropped, a backup taken, ...), so an operator can see afterwards what happened and why.

Written over PGWire with bound parameters (the parts that record already hold a connection, and
one row is not worth an ILP sender). ``kind`` is ``<part>.<what>`` — ``retention.emergency``,
``backup.created`` — and the row's ``ts`` is set by the caller, so a retried insert is one row
(DEDUP on ts, kind, table_name, partition_name).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ..config import Settings
from .alerts import Severity

Conn = psycopg.Connection[tuple[Any, ...]]
TABLE = "maintenance_events"
_COLUMNS = (
    "ts",
    "kind",
    "severity",
    "table_name",
    "partition_name",
    "rows",
    "bytes",
    "disk_before_pct",
    "disk_after_pct",
    "disk_used_before",
    "disk_used_after",
    "message",
)


@dataclass(frozen=True)
class MaintenanceEvent:
    """One row of ``maintenance_events``; the figures that do not apply stay ``None``."""

    kind: str  # retention.normal | retention.emergency | retention.exhausted | backup.created | ...
    message: str
    severity: Severity = "info"
    table_name: str | None = None
    partition_name: str | None = None
    rows: int | None = None
    bytes: int | None = None  # size of what was acted on (a partition's diskSize, a backup's size)
    disk_before_pct: float | None = None
    disk_after_pct: float | None = None
    disk_used_before: int | None = None
    disk_used_after: int | None = None
    ts_ns: int = field(default_factory=time.time_ns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utc(ts_ns: int) -> dt.datetime:
    """Naive UTC, as QuestDB's PGWire takes and returns TIMESTAMP (microseconds)."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts_ns // 1000)


def _ns(ts: object) -> int:
    if not isinstance(ts, dt.datetime):
        return 0
    return (ts.replace(tzinfo=None) - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) * 1000


def record_maintenance_event(conn: Conn, settings: Settings, event: MaintenanceEvent) -> None:
    """Insert ``event`` into ``<prefix>maintenance_events`` (migration 005). Raises psycopg's errors:
    callers that must carry on without the audit row (retention under disk pressure) catch them."""
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(settings.table(TABLE)),
        sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
        sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)),
    )
    e = event
    conn.execute(
        query,
        (
            _utc(e.ts_ns), e.kind, e.severity, e.table_name, e.partition_name, e.rows, e.bytes,
            e.disk_before_pct, e.disk_after_pct, e.disk_used_before, e.disk_used_after, e.message,
        ),
    )  # fmt: skip


def recent_maintenance_events(
    conn: Conn, settings: Settings, *, limit: int = 20, kind_prefix: str = ""
) -> list[MaintenanceEvent]:
    """The newest ``limit`` events (of kinds starting with ``kind_prefix``), newest first."""
    query = sql.SQL("SELECT {} FROM {} WHERE kind LIKE %s ORDER BY ts DESC LIMIT %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS), sql.Identifier(settings.table(TABLE))
    )
    out = []
    for row in conn.execute(query, (f"{kind_prefix}%", limit)).fetchall():
        ts, kind, severity, table, part, rows, size, before, after, used_before, used_after, message = row
        out.append(
            MaintenanceEvent(
                kind=str(kind), message=str(message or ""), severity=severity or "info", table_name=table,
                partition_name=part, rows=rows, bytes=size, disk_before_pct=before, disk_after_pct=after,
                disk_used_before=used_before, disk_used_after=used_after,
                ts_ns=_ns(ts),
            )
        )  # fmt: skip
    return out
