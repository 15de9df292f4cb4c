"""Agreement over time from ``shadow_compare`` (``pumpwatch compare summary``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ..config import Settings

Conn = psycopg.Connection[tuple[Any, ...]]
_INTERVAL = re.compile(r"^\d+[smhd]$")


@dataclass(frozen=True)
class AgreementBucket:
    ts_ns: int
    compared: int  # venue windows compared
    with_differences: int
    rows_a: int
    rows_b: int
    missing: int
    extra: int
    mismatched: int

    @property
    def agreement(self) -> float:
        """Share of compared venue windows with no difference at all."""
        return 1.0 - self.with_differences / self.compared if self.compared else 1.0


def agreement(conn: Conn, settings: Settings, *, since_ns: int, bucket: str = "1h") -> list[AgreementBucket]:
    """Compares per time bucket since ``since_ns`` (SAMPLE BY cannot be bound, hence the strict check)."""
    if not _INTERVAL.match(bucket):
        raise ValueError(f"bucket: expected a QuestDB interval like 10m or 1h, got {bucket!r}")
    query = sql.SQL(
        "SELECT ts::long, count(), sum(CASE WHEN missing + extra + mismatched > 0 THEN 1 ELSE 0 END), "
        "sum(rows_a), sum(rows_b), sum(missing), sum(extra), sum(mismatched) "
        "FROM {} WHERE ts >= %s::long::timestamp SAMPLE BY {} ALIGN TO CALENDAR"
    ).format(sql.Identifier(settings.table("shadow_compare")), sql.SQL(bucket))
    rows = conn.execute(query, (since_ns // 1000,)).fetchall()
    return [AgreementBucket(int(row[0]) * 1000, *(int(v or 0) for v in row[1:])) for row in rows]
