"""Numbered schema migrations (``schema/NNN_name.sql``) applied once, in order, and recorded.

``<prefix>schema_migrations`` keeps version, name and the SHA-256 of the file as written
(before placeholders are filled), so an applied file that is edited later is refused instead
of silently diverging from the database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ..config import Settings
from ..errors import MigrationChecksumError, MigrationError
from ..resources import resource

_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# Tables whose TTL follows schema.ttl_days even after their migration ran.
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
        left = re.findall(r"\{\{[^}]*\}\}", text)
        if left:
            raise MigrationError(f"{self.path.name}: unknown placeholder(s) {sorted(set(left))}")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


@dataclass(frozen=True)
class MigrationReport:
    applied: list[Migration]
    already: list[Migration]
    ttl_changed: list[str]


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


def applied_versions(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> dict[int, tuple[str, str]]:
    table = settings.table("schema_migrations")
    _ensure_ledger(conn, table)
    rows = conn.execute(f"SELECT version, name, checksum FROM {table} ORDER BY version").fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}  # type: ignore[call-overload]


def migrate(
    conn: psycopg.Connection[tuple[object, ...]],
    settings: Settings,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrationReport:
    """Apply pending migrations in order; refuse if an applied one was edited. Idempotent."""
    migrations = discover(schema_dir(settings))
    done = applied_versions(conn, settings)
    for mig in migrations:
        if mig.version in done and done[mig.version][1] != mig.checksum:
            raise MigrationChecksumError(mig.version, mig.name, done[mig.version][1], mig.checksum)
    unknown = sorted(set(done) - {m.version for m in migrations})
    if unknown:
        raise MigrationError(f"database has migrations {unknown} that are not in {schema_dir(settings)}")

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
    ttl_changed = _reconcile_ttl(conn, settings)
    return MigrationReport(applied, [m for m in migrations if m.version in done], ttl_changed)


def _reconcile_ttl(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> list[str]:
    """Bring table TTLs in line with schema.ttl_days (the setting may change after 001 ran)."""
    changed: list[str] = []
    want = settings.schema.ttl_days
    for logical in TTL_TABLES + TTL_VIEWS:
        table = settings.table(logical)
        row = conn.execute("SELECT ttlValue, ttlUnit FROM tables() WHERE table_name = %s", (table,)).fetchone()
        if row is None:
            continue
        value, unit = row
        days = int(value) * {"HOUR": 1 / 24, "DAY": 1, "WEEK": 7, "MONTH": 30, "YEAR": 365}.get(str(unit), 0)  # type: ignore[call-overload]
        if days != want:
            kind = "MATERIALIZED VIEW" if logical in TTL_VIEWS else "TABLE"
            conn.execute(f"ALTER {kind} {table} SET TTL {want} DAYS")
            changed.append(table)
    return changed
