"""Retention's parts that need no QuestDB: its settings, the policy's levels, partition periods,
disk readings (real and rehearsed), the spool scan over real spool files, and the thread loop."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from questdb_ingest.config import load_settings
from questdb_ingest.errors import ConfigError
from questdb_ingest.models import TradeBatch
from questdb_ingest.ops.alerts import ListSink
from questdb_ingest.ops.retention import (
    AssumedUsage,
    DiskUsage,
    RetentionManager,
    RetentionPolicy,
    _period,
    disk_usage_reader,
    logical_tables,
)
from questdb_ingest.ops.spool_scan import SpoolScanner
from questdb_ingest.sender.codec import encode_batch
from questdb_ingest.sender.spool import Spool

DAY_NS = 86_400 * 10**9
T0 = 1_790_000_000 * 10**9  # 2026-09-21


# --------------------------------------------------------------------------- settings
def test_retention_defaults() -> None:
    r = load_settings(env={}).retention
    assert (r.enabled, r.interval, r.warn_percent, r.emergency_percent) == (True, 300.0, 70.0, 85.0)
    assert (r.normal_days, r.emergency_days) == (0, 25)
    policy = RetentionPolicy.from_settings(load_settings(env={}))
    assert (policy.normal_days, policy.emergency_days) == (30, 25)  # normal = schema.ttl_days


def test_retention_settings_from_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[retention]\nenabled = false\nwarn_percent = 60\nnormal_days = 14\nemergency_days = 7\n")
    s = load_settings(cfg, env={"PUMPWATCH_RETENTION_INTERVAL": "60", "PUMPWATCH_RETENTION_EMERGENCY_PERCENT": "90"})
    r = s.retention
    assert (r.enabled, r.warn_percent, r.emergency_percent, r.interval) == (False, 60.0, 90.0, 60.0)
    assert (r.normal_days, r.emergency_days) == (14, 7)
    assert load_settings(env={"PUMPWATCH_RETENTION_ENABLED": "off"}).retention.enabled is False
    assert load_settings(env={"PUMPWATCH_RETENTION_ENABLED": "True"}).retention.enabled is True


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("interval = 0", "retention.interval"),
        ("warn_percent = 0", "retention.warn_percent"),
        ("warn_percent = 90", "retention.emergency_percent"),  # not below emergency
        ("emergency_percent = 70", "retention.emergency_percent"),  # equal to warn
        ("emergency_percent = 101", "retention.emergency_percent"),
        ("emergency_days = 0", "retention.emergency_days"),
        ("normal_days = -1", "retention.normal_days"),
        ("normal_days = 10", "retention.emergency_days"),  # 25 > 10: an emergency would keep more
        ("enabled = 'maybe'", "retention.enabled"),
        ("enabled = 1", "retention.enabled"),
        ("warn_percent = 'high'", "retention.warn_percent"),
        ("retain = 3", "retention.retain"),
    ],
)
def test_invalid_retention_settings_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"[retention]\n{text}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert err.value.key == key


def test_emergency_days_are_capped_at_a_shorter_ttl() -> None:
    """With normal_days following schema.ttl_days, a TTL under 25 days is no config error: an
    emergency simply never keeps more than the normal retention."""
    policy = RetentionPolicy.from_settings(load_settings(env={}, overrides={"schema": {"ttl_days": 9}}))
    assert (policy.normal_days, policy.emergency_days) == (9, 9)


def _usage(percent: float) -> DiskUsage:
    used = round(10_000 * percent)
    return DiskUsage("/d", 1_000_000, used, 1_000_000 - used)


@pytest.mark.parametrize(
    ("percent", "level"),
    [(69.99, "ok"), (70.0, "ok"), (70.01, "warn"), (85.0, "warn"), (85.01, "emergency"), (100.0, "emergency")],
)
def test_levels_start_above_their_thresholds(percent: float, level: str) -> None:
    assert RetentionPolicy.from_settings(load_settings(env={})).level(_usage(percent)) == level


def test_an_unknown_disk_is_its_own_level() -> None:
    assert RetentionPolicy.from_settings(load_settings(env={})).level(None) == "unknown"


# --------------------------------------------------------------------------- partitions
@pytest.mark.parametrize(
    ("name", "by", "period"),
    [
        ("2026-11-01", "DAY", ("2026-11-01T00", "2026-11-02T00", "2026-11-01")),
        ("2026-11-01T120000-000001", "DAY", ("2026-11-01T00", "2026-11-02T00", "2026-11-01")),  # a split part
        ("2026-11-01T13", "HOUR", ("2026-11-01T13", "2026-11-01T14", "2026-11-01T13")),
        ("2026-12", "MONTH", ("2026-12-01T00", "2027-01-01T00", "2026-12")),
        ("2024-02", "MONTH", ("2024-02-01T00", "2024-03-01T00", "2024-02")),
        ("2026", "YEAR", ("2026-01-01T00", "2027-01-01T00", "2026")),
        ("2026-W45", "WEEK", ("2026-11-02T00", "2026-11-09T00", "2026-W45")),
    ],
)
def test_partition_periods(name: str, by: str, period: tuple[str, str, str]) -> None:
    found = _period(name, by)
    assert found is not None
    start, end, canonical = found
    assert (start.strftime("%Y-%m-%dT%H"), end.strftime("%Y-%m-%dT%H"), canonical) == period


@pytest.mark.parametrize(("name", "by"), [("default", "DAY"), ("2026-13-01", "DAY"), ("2026-11-01", "NONE")])
def test_a_partition_whose_period_cannot_be_read_is_none(name: str, by: str) -> None:
    assert _period(name, by) is None


def test_managed_tables_come_from_the_schema_files() -> None:
    names = logical_tables(load_settings(env={}))
    assert {"trades", "exchange_health", "listing_events", "gaps", "shadow_compare", "rollout_events"} <= set(names)
    assert "maintenance_events" not in names and "candles_1m" not in names and "schema_migrations" not in names


# --------------------------------------------------------------------------- disk readings
def test_disk_usage_is_dfs_figure_and_a_missing_directory_is_unknown(tmp_path: Path) -> None:
    usage = DiskUsage("/d", total_bytes=1000, used_bytes=600, free_bytes=300)  # 100 reserved for root
    assert usage.percent == pytest.approx(66.667, abs=0.001)
    assert usage.freed(150).percent == pytest.approx(50.0)
    real = disk_usage_reader(tmp_path)()
    assert real is not None and 0 < real.percent < 100
    assert disk_usage_reader(tmp_path / "missing")() is None


def test_an_assumed_usage_falls_by_what_the_real_disk_frees() -> None:
    readings = [DiskUsage("/d", 1000, 300, 700), DiskUsage("/d", 1000, 250, 750)]
    assumed = AssumedUsage(lambda: readings.pop(0), 90.0)
    first, second = assumed(), assumed()
    assert first is not None and second is not None
    assert (first.used_bytes, first.percent) == (900, 90.0)
    assert (second.used_bytes, second.percent) == (850, 85.0)


# --------------------------------------------------------------------------- the spool scan
def _batch(stamps: list[int]) -> TradeBatch:
    n = len(stamps)
    return TradeBatch.from_columns(
        ts_ns=stamps, exchange=["binance"] * n, market_type=["spot"] * n, symbol=["BTC-USDT"] * n,
        price=[1.0] * n, quantity=[1.0] * n, side=["buy"] * n, trade_id=[f"t{i}" for i in range(n)],
    )  # fmt: skip


def _append(spool: Spool, stamps: list[int], table: str) -> None:
    spool.append(encode_batch(_batch(stamps), table).to_pybytes(), len(stamps))


def test_the_spool_scan_finds_the_oldest_trade_per_table(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    a = Spool(root / "shard-0", fsync="never", segment_bytes=4096)
    b = Spool(root / "shard-3", fsync="never")
    _append(a, [T0 - 2 * DAY_NS, T0], "x_trades")
    _append(b, [T0 - 5 * DAY_NS], "x_trades")
    _append(b, [T0 - 9 * DAY_NS], "x_demo_trades")
    _append(a, [T0 - 20 * DAY_NS], "")  # no table named: the sender's own
    (root / "dead-letter" / "shard-0").mkdir(parents=True)  # refused batches are not replayed
    scanner = SpoolScanner(root, default_tables=("x_trades",))
    assert scanner() == {"x_trades": T0 - 20 * DAY_NS, "x_demo_trades": T0 - 9 * DAY_NS}

    _append(b, [T0 - 30 * DAY_NS], "x_demo_trades")  # appended since: read incrementally
    assert scanner()["x_demo_trades"] == T0 - 30 * DAY_NS

    while (oldest := a.oldest()) is not None:  # shard-0 replayed: its segments deleted
        a.remove(oldest[0])
    assert scanner() == {"x_trades": T0 - 5 * DAY_NS, "x_demo_trades": T0 - 30 * DAY_NS}
    a.close()
    b.close()


def test_the_spool_scan_skips_a_record_being_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "shard-0", fsync="never")
    _append(spool, [T0 - DAY_NS], "x_trades")
    spool.close()
    segment = next((tmp_path / "shard-0").glob("*.seg"))
    payload = encode_batch(_batch([T0 - 7 * DAY_NS]), "x_trades").to_pybytes()
    with open(segment, "ab") as f:  # a header and half a payload: the writer is mid-record
        f.write(b"PWS1" + len(payload).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(4))
        f.write(payload[: len(payload) // 2])
    scanner = SpoolScanner(tmp_path)
    assert scanner() == {"x_trades": T0 - DAY_NS}
    assert not (tmp_path / "shard-0" / "quarantine").exists()  # read only: nothing repaired or moved


def test_an_empty_or_missing_spool_protects_nothing(tmp_path: Path) -> None:
    assert SpoolScanner(tmp_path / "none")() == {}
    (tmp_path / "spool" / "shard-0").mkdir(parents=True)
    assert SpoolScanner(tmp_path / "spool")() == {}


# --------------------------------------------------------------------------- the manager without QuestDB
def test_an_unreadable_disk_drops_nothing_and_alerts(tmp_path: Path) -> None:
    sink = ListSink()
    manager = RetentionManager(load_settings(env={}), sink, usage_reader=lambda: None, spool_protection=dict)
    report = manager.run_once()
    assert report.level == "unknown" and report.actions == [] and report.errors
    assert [(a.kind, a.severity) for a in sink.alerts] == [("retention.usage_unknown", "warning")]
    assert manager.run_once(dry_run=True).level == "unknown" and len(sink.alerts) == 1  # a dry run raises nothing


def test_the_loop_checks_at_once_and_stops_promptly() -> None:
    settings = load_settings(env={}, overrides={"retention": {"interval": 3600}})
    calls: list[float] = []

    def reader() -> DiskUsage:
        calls.append(time.monotonic())
        return _usage(10.0)

    manager = RetentionManager(settings, ListSink(), usage_reader=reader, spool_protection=dict)
    manager.start()
    deadline = time.monotonic() + 10
    while manager.last_report is None and time.monotonic() < deadline:
        time.sleep(0.01)
    manager.stop(timeout=10)
    assert manager.last_report is not None and manager.last_report.level == "ok"
    assert len(calls) == 1 and manager._thread is None  # stopped in its hour-long wait


def test_a_disabled_manager_does_not_start() -> None:
    settings = load_settings(env={}, overrides={"retention": {"enabled": False}})
    manager = RetentionManager(settings, ListSink(), usage_reader=lambda: _usage(99.0), spool_protection=dict)
    manager.start()
    assert manager._thread is None and manager.last_report is None


def test_report_is_json_ready() -> None:
    settings = load_settings(env={})
    report = RetentionManager(settings, ListSink(), usage_reader=lambda: _usage(12.5), spool_protection=dict).run_once()
    data = report.to_dict()
    assert data["level"] == "ok" and data["usage_before"]["percent"] == 12.5 and data["actions"] == []
    assert data["policy"]["normal_days"] == 30
    assert dt.datetime.strptime(data["started_at"], "%Y-%m-%dT%H:%M:%SZ")


def test_after_a_drop_the_disk_is_read_again_until_the_space_shows_as_freed() -> None:
    """QuestDB deletes a dropped partition's files once no reader holds them: a reading taken at
    once would still count them, and the emergency loop would drop one partition too many."""
    size = 64 << 20
    before = DiskUsage("/d", 1 << 40, 800 << 30, 224 << 30)
    readings = [before, before, before.freed(size)]
    manager = RetentionManager(
        load_settings(env={}), ListSink(), usage_reader=lambda: readings.pop(0), spool_protection=dict
    )
    assert manager._settle(before, size) == before.freed(size) and readings == []
    manager.settle_timeout = 0.3  # space never freed (a long query holds the files): bounded
    manager.usage_reader = lambda: before
    assert manager._settle(before, size) == before
    assert manager._settle(before, 4096) == before  # too small to show: not waited for
