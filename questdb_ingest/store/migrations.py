"""Numbered schema migrations (``schema/NNN_name.sql``) applied once, in order, and recorded.

``<prefix>schema_migrations`` keeps version, name and the SHA-256 of the file as written
(before placeholders are filled), so an applied file that is edited later is refused instead
of silently diverging from the database.

Only ``pumpwatch db migrate`` changes the schema. ``run`` calls ``check_schema``, which reads and
never writes. A TTL *decrease* drops partitions, so ``migrate`` refuses it (``TtlDecreaseError``,
listing the partitions and rows it would drop) unless ``allow_ttl_decrease`` is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ..config import ARCHIVE_TTL_KEYS, Settings
from ..errors import MigrationChecksumError, MigrationError, SchemaPendingError, TtlDecreaseError
from ..resources import resource

_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# Tables whose TTL follows schema.ttl_days even after their migration ran (the archive tables'
# follow archive.*_ttl_days: ARCHIVE_TTL_KEYS).
TTL_TABLES = ("trades", "exchange_health", "listing_events", "gaps", "shadow_compare", "rollout_events")
# Materialized views with a TTL: ALTER TABLE refuses them, ALTER MATERIALIZED VIEW takes the same clause.
TTL_VIEWS = ("candles_1m",)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    def statements(self, settings: Settings) -> list[str]:
        """The file's statements with placeholders filled, comments dropped."""
        text = self.path.read_text(encoding="utf-8")
        text = text.replace("{{prefix}}", settings.schema.table_prefix)
        text = text.replace("{{ttl_days}}", str(settings.schema.ttl_days))
        for logical, key in ARCHIVE_TTL_KEYS.items():
            text = text.replace("{{" + key + "}}", str(settings.archive.ttl_days(logical)))
        left = re.findall(r"\{\{[^}]*\}\}", text)
        if left:
            raise MigrationError(f"{self.path.name}: unknown placeholder(s) {sorted(set(left))}")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


@dataclass(frozen=True)
class Partition:
    """A partition TTL would drop: its name, rows and time range."""

    name: str
    rows: int
    min_ts: dt.datetime | None
    max_ts: dt.datetime | None


@dataclass(frozen=True)
class TtlChange:
    """A table whose TTL differs from ``schema.ttl_days``, and what lowering it would drop."""

    table: str
    kind: str  # TABLE | MATERIALIZED VIEW
    current_days: float
    wanted_days: int
    drops: list[Partition] = field(default_factory=list)

    @property
    def decrease(self) -> bool:
        return self.wanted_days < self.current_days

    def describe(self) -> str:
        change = f"{self.table}: TTL {self.current_days:g} → {self.wanted_days} days"
        if not self.drops:
            return change + (" (no partition is old enough to be dropped)" if self.decrease else "")
        rows = sum(p.rows for p in self.drops)
        first, last = self.drops[0].name, self.drops[-1].name
        return f"{change}: drops {len(self.drops)} partition(s) {first} … {last} holding {rows:,} row(s)"


@dataclass(frozen=True)
class MigrationReport:
    applied: list[Migration]
    already: list[Migration]
    ttl_changed: list[TtlChange]


@dataclass(frozen=True)
class SchemaStatus:
    """What ``check_schema`` found; ``ok`` when every migration is applied unchanged."""

    applied: list[Migration]
    pending: list[Migration]
    edited: list[Migration]
    unknown: list[int]
    ttl: list[TtlChange]

    @property
    def ok(self) -> bool:
        return not (self.pending or self.edited or self.unknown)

    def problems(self, settings: Settings) -> str:
        parts = []
        if self.pending:
            names = ", ".join(m.path.name for m in self.pending)
            parts.append(f"{len(self.pending)} pending migration(s) ({names}); apply them with `pumpwatch db migrate`")
        if self.edited:
            parts.append(f"applied migration(s) edited since: {', '.join(m.path.name for m in self.edited)}")
        if self.unknown:
            parts.append(f"the database has migrations {self.unknown} that are not in {schema_dir(settings)}")
        return "; ".join(parts)


def schema_dir(settings: Settings) -> Path:
    return Path(settings.schema.schema_dir) if settings.schema.schema_dir else resource("schema")


def discover(directory: Path) -> list[Migration]:
    """All migrations in ``directory``, sorted, with contiguous versions from 1."""
    if not directory.is_dir():
        raise MigrationError(f"schema directory {directory} does not exist")
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files must be named NNN_lower_snake.sql")
        found.append(Migration(int(match[1]), match[2], path, hashlib.sha256(path.read_bytes()).hexdigest()))
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise MigrationError(f"{mig.path.name}: expected version {expected:03d} (versions must be contiguous)")
    return found


def _ensure_ledger(conn: psycopg.Connection[tuple[object, ...]], table: str) -> None:
    # Not WAL: a recorded version must be visible to the very next read.
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (version INT, name VARCHAR, checksum VARCHAR, "
        "applied_at TIMESTAMP) TIMESTAMP(applied_at) PARTITION BY YEAR BYPASS WAL"
    )


def applied_versions(
    conn: psycopg.Connection[tuple[object, ...]], settings: Settings, *, create: bool = True
) -> dict[int, tuple[str, str]]:
    """Applied migrations by version; ``create=False`` reads only (no ledger table: nothing applied)."""
    table = settings.table("schema_migrations")
    if create:
        _ensure_ledger(conn, table)
    elif conn.execute("SELECT 1 FROM tables() WHERE table_name = %s", (table,)).fetchone() is None:
        return {}
    rows = conn.execute(f"SELECT version, name, checksum FROM {table} ORDER BY version").fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}  # type: ignore[call-overload]


def check_schema(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> SchemaStatus:
    """Compare the database with the migration files, and table TTLs with ``schema.ttl_days``;
    changes nothing (``run`` uses it: only ``db migrate`` changes the schema)."""
    migrations = discover(schema_dir(settings))
    done = applied_versions(conn, settings, create=False)
    return SchemaStatus(
        applied=[m for m in migrations if m.version in done and done[m.version][1] == m.checksum],
        pending=[m for m in migrations if m.version not in done],
        edited=[m for m in migrations if m.version in done and done[m.version][1] != m.checksum],
        unknown=sorted(set(done) - {m.version for m in migrations}),
        ttl=ttl_changes(conn, settings),
    )


def require_schema(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> SchemaStatus:
    """``check_schema``, raising ``SchemaPendingError`` (pending) or ``MigrationError`` (edited, unknown)."""
    status = check_schema(conn, settings)
    if status.pending and not (status.edited or status.unknown):
        message = f"schema is not up to date: {status.problems(settings)}"
        raise SchemaPendingError(message, [m.name for m in status.pending])
    if not status.ok:
        raise MigrationError(f"schema does not match this version: {status.problems(settings)}")
    return status


def migrate(
    conn: psycopg.Connection[tuple[object, ...]],
    settings: Settings,
    on_apply: Callable[[Migration], None] | None = None,
    *,
    allow_ttl_decrease: bool = False,
    reconcile_ttl: bool = True,
) -> MigrationReport:
    """Apply pending migrations in order; refuse if an applied one was edited. Idempotent.

    With ``reconcile_ttl`` the tables' TTLs are then brought to ``schema.ttl_days``; a decrease
    (which drops partitions) raises ``TtlDecreaseError`` before anything is changed, unless
    ``allow_ttl_decrease``."""
    migrations = discover(schema_dir(settings))
    done = applied_versions(conn, settings)
    for mig in migrations:
        if mig.version in done and done[mig.version][1] != mig.checksum:
            raise MigrationChecksumError(mig.version, mig.name, done[mig.version][1], mig.checksum)
    unknown = sorted(set(done) - {m.version for m in migrations})
    if unknown:
        raise MigrationError(f"database has migrations {unknown} that are not in {schema_dir(settings)}")
    if reconcile_ttl and not allow_ttl_decrease:
        decreases = [c for c in ttl_changes(conn, settings) if c.decrease]
        if decreases:
            raise TtlDecreaseError(
                "lowering the TTL drops partitions: "
                + "; ".join(c.describe() for c in decreases)
                + " — nothing was changed; rerun `pumpwatch db migrate --allow-ttl-decrease` to apply it, or set "
                "schema.ttl_days to the current TTL",
                [c.describe() for c in decreases],
            )

    applied: list[Migration] = []
    for mig in migrations:
        if mig.version in done:
            continue
        if on_apply:
            on_apply(mig)
        for stmt in mig.statements(settings):
            try:
                conn.execute(stmt)  # DDL from our own files
            except psycopg.Error as exc:
                raise MigrationError(f"{mig.path.name}: {exc.__class__.__name__}: {exc}\nstatement: {stmt}") from exc
        conn.execute(
            f"INSERT INTO {settings.table('schema_migrations')} VALUES (%s, %s, %s, now())",
            (mig.version, mig.name, mig.checksum),
        )
        applied.append(mig)
    ttl_changed = _reconcile_ttl(conn, settings) if reconcile_ttl else []
    return MigrationReport(applied, [m for m in migrations if m.version in done], ttl_changed)


_UNIT_DAYS = {"HOUR": 1 / 24, "DAY": 1, "WEEK": 7, "MONTH": 30, "YEAR": 365}


def ttl_changes(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> list[TtlChange]:
    """Tables (and views) whose TTL differs from ``schema.ttl_days``, with what a decrease drops."""
    changes: list[TtlChange] = []
    for logical in TTL_TABLES + TTL_VIEWS + tuple(ARCHIVE_TTL_KEYS):
        want = wanted_ttl_days(settings, logical)
        table = settings.table(logical)
        row = conn.execute("SELECT ttlValue, ttlUnit FROM tables() WHERE table_name = %s", (table,)).fetchone()
        if row is None:
            continue
        value, unit = row
        days = int(value) * _UNIT_DAYS.get(str(unit), 0)  # type: ignore[call-overload]
        if days == want:
            continue
        kind = "MATERIALIZED VIEW" if logical in TTL_VIEWS else "TABLE"
        drops = _partitions_dropped(conn, table, want) if days == 0 or want < days else []
        changes.append(TtlChange(table, kind, days, want, drops))
    return changes


def wanted_ttl_days(settings: Settings, logical: str) -> int:
    """The TTL a table should have: archive.*_ttl_days for the archive tables, else schema.ttl_days."""
    if logical in ARCHIVE_TTL_KEYS:
        return settings.archive.ttl_days(logical)
    return settings.schema.ttl_days


def _partitions_dropped(conn: psycopg.Connection[tuple[object, ...]], table: str, ttl_days: int) -> list[Partition]:
    """Partitions QuestDB would drop at ``ttl_days``: those whose whole period ends before
    min(wall clock, newest row) - TTL (QuestDB's rule for its reference time)."""
    # table_partitions() takes only a constant: the name is quoted as a literal by psycopg.
    query = sql.SQL(
        "SELECT name, numRows, minTimestamp, maxTimestamp, partitionBy FROM table_partitions({}) ORDER BY name"
    ).format(sql.Literal(table))
    rows = conn.execute(query).fetchall()
    newest = max((r[3] for r in rows if isinstance(r[3], dt.datetime)), default=None)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    reference = min(now, newest) if newest is not None else now
    cutoff = reference - dt.timedelta(days=ttl_days)
    out: list[Partition] = []
    for name, n, lo, hi, by in rows:
        try:
            start = dt.datetime.strptime(str(name)[:10], "%Y-%m-%d")
            end = start + dt.timedelta(days=1) if str(by) == "DAY" else (hi if isinstance(hi, dt.datetime) else None)
        except ValueError:
            end = hi if isinstance(hi, dt.datetime) else None
        if end is not None and end < cutoff:
            out.append(Partition(str(name), int(str(n)), lo if isinstance(lo, dt.datetime) else None,
                                 hi if isinstance(hi, dt.datetime) else None))  # fmt: skip
    return out


def _reconcile_ttl(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> list[TtlChange]:
    """Bring table TTLs in line with schema.ttl_days (the setting may change after 001 ran)."""
    changed = ttl_changes(conn, settings)
    for change in changed:
        conn.execute(f"ALTER {change.kind} {change.table} SET TTL {change.wanted_days} DAYS")
    # A WAL table applies the ALTER asynchronously: wait, so the next check reads the new TTL.
    deadline = time.monotonic() + 30
    while any(c.table == left.table for c in changed for left in ttl_changes(conn, settings)):
        if time.monotonic() > deadline:
            raise MigrationError(f"TTL change not applied after 30s: {[c.table for c in ttl_changes(conn, settings)]}")
        time.sleep(0.05)
    return changed
