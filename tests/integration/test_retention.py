"""Disk-pressure retention against the real QuestDB: real partitions (rows with old timestamps, a
few per day for 40 days in ``trades`` and ``exchange_health``), a fake disk-usage reading, and
assertions on which partitions are left, what ``maintenance_events`` holds and which alerts went.

Each test has a namespace of its own migrated with a 400-day TTL, so QuestDB's own TTL never
races the manager for the 40-day-old partitions; ``retention.normal_days`` is set to 30 (the
"table with a longer TTL" case the manager enforces explicitly). The manager's clock is fixed at
noon UTC today, the rows are written relative to it, so no day boundary moves an expectation.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg import sql

from questdb_ingest.cli import main
from questdb_ingest.config import Settings
from questdb_ingest.models import TradeBatch
from questdb_ingest.ops.alerts import ListSink
from questdb_ingest.ops.retention import DiskUsage, RetentionManager, managed_tables, table_partitions
from questdb_ingest.ops.spool_scan import SpoolScanner
from questdb_ingest.sender.codec import encode_batch
from questdb_ingest.sender.spool import Spool
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import wait_visible
from tests.conftest import QuestDB, scoped_settings

DAYS = 40
PER_DAY = 3
CAPACITY = 10**12
NOW = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
TABLES = ("exchange_health", "trades")

pytestmark = pytest.mark.questdb


def day(k: int) -> str:
    """The DAY partition holding NOW - k days."""
    return (NOW - dt.timedelta(days=k)).strftime("%Y-%m-%d")


def days(ks: range) -> list[str]:
    return sorted(day(k) for k in ks)


def days_back(when: dt.datetime, n: int) -> list[str]:
    return sorted((when - dt.timedelta(days=k)).strftime("%Y-%m-%d") for k in range(n))


@dataclass
class Namespace:
    settings: Settings
    spool_dir: Path

    def table(self, name: str) -> str:
        return self.settings.table(name)

    def partitions(self) -> dict[str, list[str]]:
        with connect(self.settings) as conn:
            return {name: [p.name for p in table_partitions(conn, self.table(name))] for name in TABLES}

    def events(self) -> list[tuple[str, str | None, str | None, float | None, float | None]]:
        table = self.table("maintenance_events")
        with connect(self.settings) as conn:
            wait_visible(conn, table)
            rows = conn.execute(
                sql.SQL(
                    "SELECT kind, table_name, partition_name, disk_before_pct, disk_after_pct FROM {} ORDER BY ts"
                ).format(sql.Identifier(table))
            ).fetchall()
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _fill(settings: Settings, *, when: dt.datetime) -> None:
    """PER_DAY rows a day for DAYS days back from ``when`` (today included) in trades and exchange_health."""
    n = DAYS * PER_DAY
    ts = f"dateadd('s', ((x - 1) %% {PER_DAY})::int, dateadd('d', -((x - 1) / {PER_DAY})::int, %s))"
    with connect(settings) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (ts, exchange, market_type, symbol, price, quantity, side, trade_id) "
                f"SELECT {ts}::timestamp_ns, 'binance', 'spot', 'BTC-USDT', 100.0, 1.0, 'buy', 'id' || x "
                f"FROM long_sequence({n})"
            ).format(sql.Identifier(settings.table("trades"))),
            (when.replace(tzinfo=None),),
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (ts, exchange, market_type, status, message_count) "
                f"SELECT {ts}, 'binance', 'spot', 'connected', x FROM long_sequence({n})"
            ).format(sql.Identifier(settings.table("exchange_health"))),
            (when.replace(tzinfo=None),),
        )
        for name in TABLES:
            wait_visible(conn, settings.table(name))


def _namespace(qdb: QuestDB, tmp_path: Path, when: dt.datetime) -> Namespace:
    spool_dir = tmp_path / "spool"
    settings = scoped_settings(
        qdb.new_prefix(),
        schema={"ttl_days": 400},
        retention={"normal_days": 30, "emergency_days": 25},
        sender={"spool_dir": str(spool_dir)},
    )
    with connect(settings) as conn:
        migrate(conn, settings)
    _fill(settings, when=when)
    return Namespace(settings, spool_dir)


@pytest.fixture
def ns(qdb: QuestDB, tmp_path: Path) -> Namespace:
    return _namespace(qdb, tmp_path, NOW)


def fixed(percent: float) -> Callable[[], DiskUsage]:
    used = round(CAPACITY * percent / 100)
    return lambda: DiskUsage("/fake", CAPACITY, used, CAPACITY - used)


class PartitionCountedDisk:
    """A disk whose usage is ``base`` + ``step`` % per partition left in the namespace's
    time-series tables: it falls as the manager drops, the way a real one would."""

    def __init__(self, settings: Settings, base: float, step: float) -> None:
        self.settings, self.base, self.step = settings, base, step
        self.readings: list[float] = []

    def __call__(self) -> DiskUsage:
        with connect(self.settings) as conn:
            n = sum(len(table_partitions(conn, t)) for t, _, _ in managed_tables(conn, self.settings))
        used = round(CAPACITY * (self.base + self.step * n) / 100)
        self.readings.append(self.base + self.step * n)
        return DiskUsage("/fake", CAPACITY, used, CAPACITY - used)


def manager(ns: Namespace, reader: Callable[[], DiskUsage | None], sink: ListSink) -> RetentionManager:
    return RetentionManager(
        ns.settings,
        sink,
        usage_reader=reader,
        spool_protection=SpoolScanner.from_settings(ns.settings),
        clock=lambda: NOW,
    )


def test_warn_level_enforces_the_normal_retention_on_every_table(ns: Namespace) -> None:
    assert ns.partitions() == {name: days(range(DAYS)) for name in TABLES}
    with connect(ns.settings) as conn:
        managed = [t for t, _, _ in managed_tables(conn, ns.settings)]
    assert ns.table("trades") in managed and ns.table("exchange_health") in managed
    assert ns.table("maintenance_events") not in managed  # the audit is never dropped from
    assert all(t.startswith(ns.settings.schema.table_prefix) for t in managed)

    sink = ListSink()
    below = manager(ns, fixed(69.9), sink).run_once()  # under the warn threshold: nothing is touched
    assert below.level == "ok" and below.actions == [] and sink.alerts == []
    assert ns.partitions() == {name: days(range(DAYS)) for name in TABLES}

    report = manager(ns, fixed(75.0), sink).run_once()

    assert report.level == "warn" and not report.errors
    assert ns.partitions() == {name: days(range(31)) for name in TABLES}  # 30 days back + today
    assert sorted((a.table, a.partition) for a in report.dropped) == sorted(
        (ns.table(name), day(k)) for name in TABLES for k in range(31, DAYS)
    )
    assert {a.level for a in report.actions} == {"normal"}
    count = sql.SQL("SELECT count() FROM {}").format(sql.Identifier(ns.table("trades")))
    with connect(ns.settings) as conn:
        assert conn.execute(count).fetchone() == (31 * PER_DAY,)
    events = ns.events()
    drops = [e for e in events if e[0] == "retention.normal"]
    assert sorted((e[1], e[2]) for e in drops) == sorted((a.table, a.partition) for a in report.dropped)
    assert all(e[3] == e[4] == 75.0 for e in drops)  # before/after figures recorded (a fixed reading here)
    assert [(e[0], e[1]) for e in events if e[0] == "retention.view_refresh"] == [
        ("retention.view_refresh", ns.table("candles_1m"))
    ]
    assert [(a.kind, a.severity) for a in sink.alerts] == [("retention.normal", "warning")]
    assert "dropped 18 partition(s)" in sink.alerts[0].message
    # The drops invalidated candles_1m; the manager's full refresh makes it valid again.
    assert report.refreshed_views == [ns.table("candles_1m")]
    deadline = time.monotonic() + 30
    with connect(ns.settings) as conn:
        while True:
            status = conn.execute(
                "SELECT view_status FROM materialized_views() WHERE view_name = %s", (ns.table("candles_1m"),)
            ).fetchone()
            if status == ("valid",) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert status == ("valid",)


def test_emergency_drops_oldest_first_until_under_the_threshold(ns: Namespace) -> None:
    # 80 partitions: 95.25 %. Normal retention leaves 62 (86.25 %), then each drop is 0.5 % less.
    disk = PartitionCountedDisk(ns.settings, base=55.25, step=0.5)
    sink = ListSink()
    report = manager(ns, disk, sink).run_once()

    assert report.level == "emergency" and not report.errors and not report.still_above_emergency
    emergency = [(a.table, a.partition) for a in report.actions if a.level == "emergency"]
    # Oldest first across tables (ties by table name), stopping as soon as the disk is at 84.75 %.
    health, trades = ns.table("exchange_health"), ns.table("trades")
    assert emergency == [(health, day(30)), (trades, day(30)), (health, day(29))]
    assert ns.partitions() == {"exchange_health": days(range(29)), "trades": days(range(30))}
    assert [a.disk_after_pct for a in report.actions if a.level == "emergency"] == [85.75, 85.25, 84.75]
    assert report.usage_after is not None and report.usage_after.percent == pytest.approx(84.75)
    events = ns.events()
    assert [(e[1], e[2], e[3], e[4]) for e in events if e[0] == "retention.emergency"] == [
        (health, day(30), 86.25, 85.75),
        (trades, day(30), 85.75, 85.25),
        (health, day(29), 85.25, 84.75),
    ]
    assert len([e for e in events if e[0] == "retention.normal"]) == 18
    assert [(a.kind, a.severity) for a in sink.alerts] == [
        ("retention.normal", "warning"),
        ("retention.emergency", "critical"),
    ]
    assert "95.2% → 86.2%" in sink.alerts[0].message and "86.2% → 84.8%" in sink.alerts[1].message


def _spool_trades(ns: Namespace, *ages_days: int) -> None:
    """A real spool record (the sender's codec and spool) holding one trade per age."""
    stamps = [int((NOW - dt.timedelta(days=k)).timestamp() * 1e9) for k in ages_days]
    batch = TradeBatch.from_columns(
        ts_ns=stamps,
        exchange=["binance"] * len(stamps),
        market_type=["spot"] * len(stamps),
        symbol=["BTC-USDT"] * len(stamps),
        price=[100.0] * len(stamps),
        quantity=[1.0] * len(stamps),
        side=["buy"] * len(stamps),
        trade_id=[f"spooled-{k}" for k in ages_days],
    )
    spool = Spool(ns.spool_dir / "shard-0", fsync="never")
    spool.append(encode_batch(batch, ns.table("trades")).to_pybytes(), len(batch))
    spool.close()


def test_the_spool_protects_its_partitions_and_an_exhausted_disk_is_alerted(ns: Namespace) -> None:
    _spool_trades(ns, 5, 27)  # the sender still has to replay trades of 27 days ago
    sink = ListSink()
    report = manager(ns, fixed(95.0), sink).run_once()

    assert report.level == "emergency" and report.still_above_emergency and not report.errors
    assert report.spool_oldest == {ns.table("trades"): (NOW - dt.timedelta(days=27)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    # Everything older than 25 days may go, except trades partitions from the spool's oldest row on.
    assert ns.partitions() == {"exchange_health": days(range(26)), "trades": days(range(28))}
    kept = {(k.table, k.partition) for k in report.kept}
    assert kept == {(ns.table("trades"), day(26)), (ns.table("trades"), day(27))}
    assert all("spool" in k.reason for k in report.kept)
    assert [(a.kind, a.severity) for a in sink.alerts] == [
        ("retention.normal", "warning"),
        ("retention.emergency", "critical"),
        ("retention.exhausted", "critical"),
    ]
    assert "still at 95.0%" in sink.alerts[-1].message
    assert [e[0] for e in ns.events()].count("retention.exhausted") == 1


def test_a_dry_run_plans_but_drops_records_and_alerts_nothing(ns: Namespace) -> None:
    sink = ListSink()
    report = manager(ns, fixed(95.0), sink).run_once(dry_run=True)

    assert report.dry_run and report.dropped == [] and sink.alerts == []
    planned = sorted((a.table, a.partition, a.level) for a in report.actions)
    expected = [(ns.table(n), day(k), "normal") for n in TABLES for k in range(31, DAYS)]
    expected += [(ns.table(n), day(k), "emergency") for n in TABLES for k in range(26, 31)]
    assert planned == sorted(expected)  # the estimate frees a few bytes a partition: all of them go
    assert report.refreshed_views == [ns.table("candles_1m")]  # would be refreshed
    assert ns.partitions() == {name: days(range(DAYS)) for name in TABLES}
    assert ns.events() == []


def test_cli_status_and_apply(qdb: QuestDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands run on the real clock: rows written relative to this hour, expectations from
    the report's own start time (the rule the manager applies)."""
    when = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    ns = _namespace(qdb, tmp_path, when)
    settings = ns.settings
    for name, value in {
        "SCHEMA_TABLE_PREFIX": settings.schema.table_prefix,
        "SCHEMA_TTL_DAYS": "400",
        "RETENTION_NORMAL_DAYS": "30",
        "SENDER_SPOOL_DIR": str(ns.spool_dir),
        "QUESTDB_DATA_DIR": str(tmp_path),  # a directory that exists: its disk is read, then assumed
    }.items():
        monkeypatch.setenv(f"PUMPWATCH_{name}", value)
    runner = CliRunner()

    status = runner.invoke(main, ["retention", "status", "--json", "--assume-usage", "90"])
    assert status.exit_code == 0, status.output
    st = json.loads(status.stdout)
    assert st["level"] == "emergency" and st["usage"]["percent"] == pytest.approx(90, abs=0.01)
    tables = {t["table"]: t for t in st["tables"]}
    assert tables[settings.table("trades")]["partitions"] == DAYS
    assert tables[settings.table("trades")]["oldest"] == (when - dt.timedelta(days=DAYS - 1)).strftime("%Y-%m-%d")
    assert st["plan"]["actions"] and not any(a["dropped"] for a in st["plan"]["actions"])

    dry = runner.invoke(main, ["retention", "apply", "--dry-run", "--json", "--assume-usage", "75"])
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    cutoff = dt.datetime.strptime(plan["started_at"], "%Y-%m-%dT%H:%M:%SZ") - dt.timedelta(days=30)
    names = [settings.table(n) for n in TABLES]
    with connect(settings) as conn:
        old = sorted((t, p.name) for t in names for p in table_partitions(conn, t) if p.end < cutoff)
    assert len(old) >= 2 * 9 and sorted((a["table"], a["partition"]) for a in plan["actions"]) == old
    assert not any(a["dropped"] for a in plan["actions"]) and plan["alerts"] == []
    assert ns.partitions() == {name: days_back(when, DAYS) for name in TABLES}

    applied = runner.invoke(main, ["retention", "apply", "--assume-usage", "75"])
    assert applied.exit_code == 0, applied.output
    assert "alert retention.normal" in applied.output and "recorded" in applied.output
    with connect(settings) as conn:
        left = {(t, p.name) for t in names for p in table_partitions(conn, t)}
    assert left.isdisjoint(old) and len(left) == 2 * DAYS - len(old)
