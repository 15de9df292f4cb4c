"""Disk-pressure retention: keep the QuestDB data volume from filling up.

Every ``retention.interval`` the manager reads the disk usage of the volume holding
``questdb.data_dir`` (``df``'s figure: used / (used + available)). Above ``warn_percent`` it
enforces the normal retention — partitions older than ``normal_days`` go, whatever a table's TTL
says (a table migrated with a longer TTL, or one QuestDB's TTL has not reached because nothing was
written to it since). Above ``emergency_percent`` it then drops partitions older than
``emergency_days`` from every time-series table, oldest first across tables, re-reading the disk
after each drop, until the usage is no longer above the threshold. "Older than N days" is TTL's
rule: the partition's whole period ended more than N days ago.

Never dropped: the partition of today (UTC) or later, a table's active partition, and any
partition the sender's spool still has rows for (it would replay them into it); a spool that
cannot be read protects every trades table. ``maintenance_events`` is the audit of all this and
is never touched; nor are the archive tables and their ``ingest_state`` ledger (historical
imports are kept for their own ``archive.*_ttl_days``, and re-ingesting them costs a rerun).

Each drop is a log line with the disk before and after, a ``maintenance_events`` row, and part of
one alert per level (warning for normal retention, critical for an emergency, critical again when
the disk is still above the emergency threshold after everything that may go is gone). A dry run
computes the same plan — the disk is assumed to free each partition's size as it goes — and
changes, records and raises nothing.

Dropping partitions of a materialized view's base table invalidates the view in QuestDB (its TTL
does not); the manager starts a full refresh of every view whose base table lost partitions.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from ..config import ARCHIVE_TTL_KEYS, Settings
from ..errors import RetentionError
from ..store.migrations import discover, schema_dir
from ..store.pg import connect
from ..store.queries import wait_applied, wal_sequencer_txn
from ..timefmt import iso
from .alerts import Alert, AlertSink, Severity
from .loop import Periodic
from .maintenance import TABLE as EVENTS_TABLE
from .maintenance import MaintenanceEvent, record_maintenance_event
from .spool_scan import SpoolScanner

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]
Level = Literal["ok", "warn", "emergency", "unknown"]

# Tables of the schema retention never drops from: the audit of what it dropped, the archive
# runner's ledger, and the archive tables (historical imports: their own TTL governs them).
NEVER_DROPPED = frozenset({EVENTS_TABLE, "ingest_state", *ARCHIVE_TTL_KEYS})
# A drop freeing less than this is not waited for: no disk reading would show it.
SETTLE_MIN_BYTES = 1 << 20
_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\{\{prefix\}\}(\w+)", re.IGNORECASE)
_EPOCH = dt.datetime(1970, 1, 1)


# --------------------------------------------------------------------------- disk usage
@dataclass(frozen=True)
class DiskUsage:
    """A filesystem's usage as ``df`` shows it (``percent`` = used / (used + available))."""

    path: str
    total_bytes: int
    used_bytes: int
    free_bytes: int  # available to unprivileged writers (QuestDB)

    @property
    def percent(self) -> float:
        capacity = self.used_bytes + self.free_bytes
        return 100.0 * self.used_bytes / capacity if capacity else 0.0

    def freed(self, size: int) -> DiskUsage:
        """This usage after ``size`` more bytes are free (the dry run's estimate of a drop)."""
        size = max(0, min(size, self.used_bytes))
        return DiskUsage(self.path, self.total_bytes, self.used_bytes - size, self.free_bytes + size)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": round(self.percent, 3)}


UsageReader = Callable[[], DiskUsage | None]
SpoolProtection = Callable[[], Mapping[str, int]]  # table -> oldest spooled trade ts (ns)
Clock = Callable[[], dt.datetime]


def disk_usage_reader(path: str | Path) -> UsageReader:
    """Reads the filesystem holding ``path``; ``None`` when the directory is not on this machine
    (an external QuestDB: its disk is someone else's to watch)."""

    def read() -> DiskUsage | None:
        p = Path(path)
        if not p.exists():
            return None
        usage = shutil.disk_usage(p)
        return DiskUsage(str(p), usage.total, usage.used, usage.free)

    return read


class AssumedUsage:
    """A rehearsal reader: the disk as if it were ``percent`` full at the first reading, falling by
    whatever the real disk frees afterwards (``pumpwatch retention … --assume-usage``)."""

    def __init__(self, base: UsageReader, percent: float) -> None:
        self.base = base
        self.percent = percent
        self._first: DiskUsage | None = None

    def __call__(self) -> DiskUsage | None:
        real = self.base()
        if real is None:
            return None
        if self._first is None:
            self._first = real
        capacity = self._first.used_bytes + self._first.free_bytes
        used = round(capacity * self.percent / 100) - (self._first.used_bytes - real.used_bytes)
        used = max(0, min(capacity, used))
        return DiskUsage(real.path, real.total_bytes, used, capacity - used)


# --------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class RetentionPolicy:
    """The thresholds in force: ``normal_days`` resolved (0 = ``schema.ttl_days``) and
    ``emergency_days`` capped at it (an emergency never keeps more than normal retention does)."""

    warn_percent: float
    emergency_percent: float
    normal_days: int
    emergency_days: int
    interval: float
    enabled: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        r = settings.retention
        normal = r.normal_days or settings.schema.ttl_days
        return cls(r.warn_percent, r.emergency_percent, normal, min(r.emergency_days, normal), r.interval, r.enabled)

    def level(self, usage: DiskUsage | None) -> Level:
        if usage is None:
            return "unknown"
        if usage.percent > self.emergency_percent:
            return "emergency"
        return "warn" if usage.percent > self.warn_percent else "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- tables and partitions
@dataclass(frozen=True)
class Partition:
    """One logical partition of a table (split parts merged), with its period in naive UTC."""

    table: str
    name: str  # as DROP PARTITION LIST takes it
    start: dt.datetime
    end: dt.datetime
    rows: int
    bytes: int
    active: bool


@dataclass(frozen=True)
class TableSummary:
    """What ``retention status`` shows per table."""

    table: str
    partition_by: str
    ttl: str
    partitions: int
    rows: int
    bytes: int
    oldest: str | None
    newest: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def logical_tables(settings: Settings) -> list[str]:
    """The time-series tables the schema creates (read from the migration files, so a table a
    later migration adds is managed without a list to update), the audit table excepted."""
    names: list[str] = []
    for mig in discover(schema_dir(settings)):
        for name in _CREATE_TABLE.findall(mig.path.read_text(encoding="utf-8")):
            if name not in NEVER_DROPPED and name not in names:
                names.append(name)
    return names


def managed_tables(conn: Conn, settings: Settings) -> list[tuple[str, str, str]]:
    """(table, partitionBy, TTL) of the schema's tables in this namespace and its demo namespace
    that exist and are partitioned. Names are matched exactly (prefix + logical name), so the
    tables of another prefix that happens to start with this one are never touched."""
    spaces = [settings, settings.for_demo()] if settings.schema.demo_prefix else [settings]
    wanted = {ns.table(name) for ns in spaces for name in logical_tables(settings)}
    rows = conn.execute("SELECT table_name, partitionBy, ttlValue, ttlUnit, matView FROM tables()").fetchall()
    out = []
    for name, by, ttl_value, ttl_unit, mat_view in rows:
        if str(name) in wanted and str(by) != "NONE" and not mat_view:
            n = int(ttl_value or 0)
            ttl = f"{n} {str(ttl_unit).lower()}{'s' if n != 1 else ''}" if n else "none"
            out.append((str(name), str(by), ttl))
    return sorted(out)


def _period(name: str, by: str) -> tuple[dt.datetime, dt.datetime, str] | None:
    """(start, end, name to drop by) of a partition from its name; None if it cannot be read."""
    try:
        if by == "DAY":
            start = dt.datetime.strptime(name[:10], "%Y-%m-%d")
            return start, start + dt.timedelta(days=1), start.strftime("%Y-%m-%d")
        if by == "HOUR":
            start = dt.datetime.strptime(name[:13], "%Y-%m-%dT%H")
            return start, start + dt.timedelta(hours=1), start.strftime("%Y-%m-%dT%H")
        if by == "MONTH":
            start = dt.datetime.strptime(name[:7], "%Y-%m")
            days = calendar.monthrange(start.year, start.month)[1]
            return start, start + dt.timedelta(days=days), start.strftime("%Y-%m")
        if by == "YEAR":
            start = dt.datetime.strptime(name[:4], "%Y")
            return start, start.replace(year=start.year + 1), start.strftime("%Y")
        if by == "WEEK":
            m = re.match(r"(\d{4})-W(\d{2})", name)
            if m is None:
                return None
            start = dt.datetime.fromisocalendar(int(m[1]), int(m[2]), 1)
            return start, start + dt.timedelta(days=7), f"{m[1]}-W{m[2]}"
    except ValueError:
        return None
    return None


def table_partitions(conn: Conn, table: str) -> list[Partition]:
    """The table's attached partitions, oldest first (QuestDB's ``table_partitions()``)."""
    columns = "name, partitionBy, numRows, diskSize, active, attached"
    # table_partitions() takes a constant only: the name goes in as a quoted literal.
    query = sql.SQL("SELECT {} FROM table_partitions({})").format(sql.SQL(columns), sql.Literal(table))
    merged: dict[str, Partition] = {}
    for name, by, rows, size, active, attached in conn.execute(query).fetchall():
        period = _period(str(name), str(by))
        if period is None or not attached:
            if period is None:
                log.warning("retention: %s partition %r: cannot read its period; never dropped", table, name)
            continue
        start, end, canonical = period
        seen = merged.get(canonical)
        merged[canonical] = Partition(
            table, canonical, start, end,
            int(rows or 0) + (seen.rows if seen else 0),
            int(size or 0) + (seen.bytes if seen else 0),
            bool(active) or (seen.active if seen else False),
        )  # fmt: skip
    return sorted(merged.values(), key=lambda p: p.start)


def _iso(moment: dt.datetime) -> str:
    """A naive UTC datetime in the one time format, to the second."""
    return iso((calendar.timegm(moment.utctimetuple()) * 10**6 + moment.microsecond) * 1000, 0)


def _naive(ts_ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ts_ns // 1000)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def human_bytes(n: float) -> str:
    """``1536`` → ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# --------------------------------------------------------------------------- report
@dataclass(frozen=True)
class PartitionAction:
    """A partition retention dropped (``dropped``) or, in a dry run, would drop."""

    level: Literal["normal", "emergency"]
    table: str
    partition: str
    start: str
    end: str
    rows: int
    bytes: int
    disk_before_pct: float
    disk_after_pct: float
    disk_used_before: int
    disk_used_after: int
    dropped: bool
    ts_ns: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeptPartition:
    """A partition old enough to go that was kept, and why (today, active, spool)."""

    table: str
    partition: str
    rows: int
    bytes: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetentionReport:
    """What one run found and did (or, ``dry_run``, would do)."""

    started_at: str
    dry_run: bool
    policy: RetentionPolicy
    level: Level
    usage_before: DiskUsage | None
    usage_after: DiskUsage | None = None
    actions: list[PartitionAction] = field(default_factory=list)
    kept: list[KeptPartition] = field(default_factory=list)
    still_above_emergency: bool = False
    refreshed_views: list[str] = field(default_factory=list)
    spool_oldest: dict[str, str] = field(default_factory=dict)  # table -> oldest spooled trade (ISO UTC)
    events_recorded: int = 0
    errors: list[str] = field(default_factory=list)
    finished_at: str = ""

    @property
    def dropped(self) -> list[PartitionAction]:
        return [a for a in self.actions if a.dropped]

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "dry_run": self.dry_run,
            "policy": self.policy.to_dict(),
            "level": self.level,
            "usage_before": self.usage_before.to_dict() if self.usage_before else None,
            "usage_after": self.usage_after.to_dict() if self.usage_after else None,
            "actions": [a.to_dict() for a in self.actions],
            "kept": [k.to_dict() for k in self.kept],
            "still_above_emergency": self.still_above_emergency,
            "refreshed_views": self.refreshed_views,
            "spool_oldest": self.spool_oldest,
            "events_recorded": self.events_recorded,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class RetentionStatus:
    """``retention status``: the disk, the policy, the tables, the spool and what a run would do."""

    usage: DiskUsage | None
    policy: RetentionPolicy
    tables: list[TableSummary]
    plan: RetentionReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "usage": self.usage.to_dict() if self.usage else None,
            "level": self.plan.level,
            "policy": self.policy.to_dict(),
            "tables": [t.to_dict() for t in self.tables],
            "plan": self.plan.to_dict(),
        }


# --------------------------------------------------------------------------- the manager
@dataclass
class _Run:
    report: RetentionReport
    usage: DiskUsage
    dropped: set[tuple[str, str]] = field(default_factory=set)
    failed_tables: set[str] = field(default_factory=set)
    events: list[MaintenanceEvent] = field(default_factory=list)
    interruptible: bool = False  # the loop's runs end early on stop(); a manual run goes to the end


class RetentionManager(Periodic):
    """The policy above over one namespace's tables. ``run_once`` is one check (the CLI's
    ``apply``); ``start``/``stop`` run it every ``retention.interval`` in a thread of its own
    (independent of any event loop: a drop may wait seconds for QuestDB).

    ``usage_reader`` (default: the disk of ``questdb.data_dir``) and ``spool_protection`` (default:
    a ``SpoolScanner`` of ``sender.spool_dir``) are what tests and rehearsals replace."""

    def __init__(
        self,
        settings: Settings,
        alerts: AlertSink,
        *,
        spool_protection: SpoolProtection | None = None,
        usage_reader: UsageReader | None = None,
        clock: Clock = _utcnow,
        settle_timeout: float = 5.0,
        apply_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.alerts = alerts
        self.policy = RetentionPolicy.from_settings(settings)
        self.spool_protection: SpoolProtection = spool_protection or SpoolScanner.from_settings(settings)
        self.usage_reader: UsageReader = usage_reader or disk_usage_reader(settings.questdb.data_dir)
        self.clock = clock
        self.settle_timeout = settle_timeout
        self.apply_timeout = apply_timeout
        self.last_report: RetentionReport | None = None
        self._run_lock = threading.Lock()
        super().__init__()
        spaces = [settings, settings.for_demo()] if settings.schema.demo_prefix else [settings]
        self._spooled_tables = tuple(dict.fromkeys(ns.table("trades") for ns in spaces))

    # -- the loop ----------------------------------------------------------------------------
    def start(self) -> None:
        """Check now, then every ``retention.interval`` until ``stop`` (no-op when disabled)."""
        if not self.policy.enabled or self._thread is not None:
            return
        self.start_loop("retention")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._locked_run(dry_run=False, interruptible=True)
            except Exception:  # the loop must outlive any one failure; run_once reports its own
                log.exception("retention: check failed")
            self._stop.wait(self.policy.interval)

    # -- one check ---------------------------------------------------------------------------
    def run_once(self, *, dry_run: bool = False) -> RetentionReport:
        """Read the disk, and drop what the policy says (``dry_run``: only say what)."""
        return self._locked_run(dry_run=dry_run, interruptible=False)

    def _locked_run(self, *, dry_run: bool, interruptible: bool) -> RetentionReport:
        with self._run_lock:  # the loop and a manual apply (API, CLI in the same process) never overlap
            report = self._run(dry_run, interruptible)
        if not dry_run:
            self.last_report = report
        return report

    def status(self) -> RetentionStatus:
        """The disk, the tables and what ``run_once`` would do now (nothing is changed)."""
        plan = self.run_once(dry_run=True)
        with connect(self.settings) as conn:
            tables = []
            for table, by, ttl in managed_tables(conn, self.settings):
                parts = table_partitions(conn, table)
                tables.append(
                    TableSummary(
                        table, by, ttl, len(parts), sum(p.rows for p in parts), sum(p.bytes for p in parts),
                        parts[0].name if parts else None, parts[-1].name if parts else None,
                    )
                )  # fmt: skip
        return RetentionStatus(plan.usage_before, self.policy, tables, plan)

    def _run(self, dry_run: bool, interruptible: bool) -> RetentionReport:
        now = self.clock().astimezone(dt.UTC).replace(tzinfo=None)
        usage: DiskUsage | None
        try:
            usage = self.usage_reader()
        except OSError as exc:
            usage = None
            log.error("retention: cannot read the disk usage: %s", exc)
        report = RetentionReport(_iso(now), dry_run, self.policy, self.policy.level(usage), usage)
        if usage is None:
            report.errors.append(f"cannot read the disk usage of {self.settings.questdb.data_dir}")
            if not dry_run:
                self._alert(
                    "retention.usage_unknown", "warning",
                    f"retention: cannot read the disk usage of {self.settings.questdb.data_dir} "
                    "(not on this machine?); nothing is dropped",
                )  # fmt: skip
            return self._finish(report)
        if report.level == "ok":
            report.usage_after = usage
            return self._finish(report)
        run = _Run(report, usage, interruptible=interruptible)
        try:
            with connect(self.settings) as conn:
                try:
                    self._enforce(conn, now, run)
                finally:  # what was dropped before a failure is still recorded and alerted
                    self._conclude(conn, run)
        except psycopg.Error as exc:
            report.errors.append(f"QuestDB: {exc}".strip())
            log.error("retention: QuestDB failed: %s", exc)
        if report.errors and not dry_run:
            self._alert(
                "retention.failed", "critical",
                f"retention at {usage.percent:.1f}% disk could not do everything: {'; '.join(report.errors)}",
                {"errors": report.errors},
            )  # fmt: skip
        return self._finish(report)

    def _finish(self, report: RetentionReport) -> RetentionReport:
        report.finished_at = _iso(self.clock().astimezone(dt.UTC).replace(tzinfo=None))
        return report

    def _enforce(self, conn: Conn, now: dt.datetime, run: _Run) -> None:
        report, policy = run.report, self.policy
        partitions = [p for table, _, _ in managed_tables(conn, self.settings) for p in table_partitions(conn, table)]
        partitions.sort(key=lambda p: (p.start, p.table))
        bounds = self._spool_bounds(report)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)

        normal_cutoff = now - dt.timedelta(days=policy.normal_days)
        for p in partitions:
            if self._halted(run):
                break
            if p.end < normal_cutoff and p.table not in run.failed_tables and self._may_drop(p, today, bounds, report):
                self._drop(conn, p, "normal", run)

        if run.usage.percent > policy.emergency_percent and not self._halted(run):
            emergency_cutoff = now - dt.timedelta(days=policy.emergency_days)
            for p in partitions:
                if self._halted(run) or run.usage.percent <= policy.emergency_percent:
                    break
                if (p.table, p.name) in run.dropped or p.table in run.failed_tables or p.end >= emergency_cutoff:
                    continue
                if self._may_drop(p, today, bounds, report, already_kept=p.end < normal_cutoff):
                    self._drop(conn, p, "emergency", run)
            report.still_above_emergency = run.usage.percent > policy.emergency_percent
        report.usage_after = run.usage

        if not report.dry_run:
            report.refreshed_views = self._refresh_views(conn, {t for t, _ in run.dropped}, run)
        else:
            report.refreshed_views = self._dependent_views(conn, {a.table for a in report.actions})

    def _halted(self, run: _Run) -> bool:
        return run.interruptible and self._stop.is_set()

    def _spool_bounds(self, report: RetentionReport) -> dict[str, dt.datetime] | None:
        """Table → oldest spooled trade; None when the spool could not be read (protect all trades)."""
        try:
            oldest = dict(self.spool_protection())
        except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors
            report.errors.append(f"cannot read the spool ({exc}); every trades partition is kept")
            log.error("retention: cannot read the spool: %s; every trades partition is kept", exc)
            return None
        bounds = {table: _naive(ts) for table, ts in oldest.items()}
        report.spool_oldest = {table: _iso(b) for table, b in sorted(bounds.items())}
        return bounds

    def _may_drop(
        self,
        p: Partition,
        today: dt.datetime,
        bounds: dict[str, dt.datetime] | None,
        report: RetentionReport,
        *,
        already_kept: bool = False,
    ) -> bool:
        """Whether ``p`` may go; a partition kept is listed once with the reason."""
        reason = ""
        if p.end > today:
            reason = "today's partition (UTC)"
        elif p.active:
            reason = "the table's active partition"
        elif bounds is None and p.table in self._spooled_tables:
            reason = "the spool could not be read"
        elif bounds is not None and p.table in bounds and p.end > bounds[p.table]:
            reason = f"the spool still has to replay rows from {_iso(bounds[p.table])} into it"
        if reason and not already_kept:
            report.kept.append(KeptPartition(p.table, p.name, p.rows, p.bytes, reason))
        return not reason

    def _drop(self, conn: Conn, p: Partition, level: Literal["normal", "emergency"], run: _Run) -> None:
        before = run.usage
        stamp = time.time_ns()
        if run.report.dry_run:
            after: DiskUsage | None = before.freed(p.bytes)
        else:
            try:
                self._drop_partition(conn, p)
            except RetentionError as exc:
                run.report.errors.append(str(exc))
                run.failed_tables.add(p.table)
                log.error("retention: %s", exc)
                return
            after = self._settle(before, p.bytes)
            if after is None:
                run.report.errors.append("the disk usage could not be read after a drop")
                after = before.freed(p.bytes)
        assert after is not None
        run.usage = after
        run.dropped.add((p.table, p.name))
        action = PartitionAction(
            level, p.table, p.name, _iso(p.start), _iso(p.end), p.rows, p.bytes,
            round(before.percent, 3), round(after.percent, 3), before.used_bytes, after.used_bytes,
            not run.report.dry_run, stamp,
        )  # fmt: skip
        run.report.actions.append(action)
        verb = "would drop" if run.report.dry_run else "dropped"
        message = (
            f"retention {level}: {verb} {p.table} partition {p.name} ({p.rows:,} row(s), {human_bytes(p.bytes)}): "
            f"disk {before.percent:.1f}% → {after.percent:.1f}% "
            f"(used {human_bytes(before.used_bytes)} → {human_bytes(after.used_bytes)})"
        )
        (log.debug if run.report.dry_run else log.warning)("%s", message)
        if not run.report.dry_run:
            run.events.append(
                MaintenanceEvent(
                    kind=f"retention.{level}", message=message,
                    severity="warning" if level == "normal" else "critical",
                    table_name=p.table, partition_name=p.name, rows=p.rows, bytes=p.bytes,
                    disk_before_pct=action.disk_before_pct, disk_after_pct=action.disk_after_pct,
                    disk_used_before=before.used_bytes, disk_used_after=after.used_bytes, ts_ns=stamp,
                )
            )  # fmt: skip

    def _drop_partition(self, conn: Conn, p: Partition) -> None:
        """``ALTER TABLE … DROP PARTITION LIST``, then wait until the WAL applied it."""
        try:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP PARTITION LIST {}").format(sql.Identifier(p.table), sql.Literal(p.name))
            )
            txn = wal_sequencer_txn(conn, p.table)
            applied = wait_applied(conn, p.table, txn, self.apply_timeout)
        except LookupError:  # not a WAL table: the drop is done when the statement returns
            return
        except (psycopg.Error, RuntimeError) as exc:
            raise RetentionError(f"dropping {p.table} partition {p.name} failed: {exc}".strip()) from exc
        if not applied:
            raise RetentionError(f"dropping {p.table} partition {p.name}: not applied after {self.apply_timeout:.0f}s")

    def _settle(self, before: DiskUsage, size: int) -> DiskUsage | None:
        """The disk after a drop. QuestDB removes a dropped partition's files once no reader holds
        them, so wait (bounded) until about half its size shows as freed; reading at once would
        see the space still used and drop more than needed."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            try:
                now = self.usage_reader()
            except OSError:
                return None
            if now is None:
                return None
            freed = before.used_bytes - now.used_bytes
            if size < SETTLE_MIN_BYTES or freed >= size // 2 or time.monotonic() >= deadline or self._stop.is_set():
                return now
            time.sleep(0.2)

    def _dependent_views(self, conn: Conn, tables: set[str]) -> list[str]:
        rows = conn.execute("SELECT view_name, base_table_name FROM materialized_views()").fetchall()
        return sorted(str(view) for view, base in rows if str(base) in tables)

    def _refresh_views(self, conn: Conn, tables: set[str], run: _Run) -> list[str]:
        """A manual partition drop invalidates the views over the table: rebuild them from what is left."""
        if not tables:
            return []
        refreshed = []
        for view in self._dependent_views(conn, tables):
            try:
                conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {} FULL").format(sql.Identifier(view)))
            except psycopg.Error as exc:
                run.report.errors.append(f"refreshing materialized view {view} failed: {exc}".strip())
                continue
            refreshed.append(view)
            message = f"retention: full refresh of materialized view {view} started (its base table lost partitions)"
            log.info("%s", message)
            run.events.append(MaintenanceEvent(kind="retention.view_refresh", message=message, table_name=view))
        return refreshed

    def _conclude(self, conn: Conn, run: _Run) -> None:
        """The audit rows and the alerts of a real run (a dry run records and raises nothing)."""
        report = run.report
        if report.dry_run:
            return
        first = report.usage_before
        assert first is not None
        exhausted = ""
        if report.still_above_emergency:
            exhausted = (
                f"retention: disk still at {run.usage.percent:.1f}% (> {self.policy.emergency_percent:g}%) after "
                f"dropping everything older than {self.policy.emergency_days} days that may go; {len(report.kept)} "
                "old partition(s) kept (today, active or still to be replayed from the spool) — free space or grow "
                "the volume"
            )
            log.error("%s", exhausted)
            run.events.append(
                MaintenanceEvent(
                    kind="retention.exhausted", message=exhausted, severity="critical",
                    disk_before_pct=round(first.percent, 3), disk_after_pct=round(run.usage.percent, 3),
                    disk_used_before=first.used_bytes, disk_used_after=run.usage.used_bytes,
                )
            )  # fmt: skip
        for event in run.events:
            try:
                record_maintenance_event(conn, self.settings, event)
                report.events_recorded += 1
            except psycopg.Error as exc:
                report.errors.append(f"recording in {self.settings.table(EVENTS_TABLE)} failed: {exc}".strip())
                log.error("retention: recording %s failed: %s", event.kind, exc)
                break
        levels: tuple[tuple[str, Severity], ...] = (("normal", "warning"), ("emergency", "critical"))
        for level, severity in levels:
            done = [a for a in report.dropped if a.level == level]
            if done:
                rows = sum(a.rows for a in done)
                self._alert(
                    f"retention.{level}", severity,
                    f"retention {level}: dropped {len(done)} partition(s) ({rows:,} row(s), "
                    f"{human_bytes(sum(a.bytes for a in done))}) from {len({a.table for a in done})} table(s): disk "
                    f"{done[0].disk_before_pct:.1f}% → {done[-1].disk_after_pct:.1f}%",
                    {"partitions": [f"{a.table}/{a.partition}" for a in done],
                     "disk_before_pct": done[0].disk_before_pct, "disk_after_pct": done[-1].disk_after_pct},
                )  # fmt: skip
        if exhausted:
            self._alert(
                "retention.exhausted", "critical", exhausted,
                {"disk_pct": round(run.usage.percent, 3), "kept": [k.to_dict() for k in report.kept]},
            )  # fmt: skip

    def _alert(self, kind: str, severity: Severity, message: str, details: dict[str, Any] | None = None) -> None:
        self.alerts.emit(Alert(kind, severity, message, key=self.settings.schema.table_prefix, details=details or {}))
