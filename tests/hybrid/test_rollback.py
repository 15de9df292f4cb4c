"""Rollback manager: fires when a threshold is crossed (QuestDB stopped, slow queries, a full
disk, a growing spool) and not otherwise; the phase it leaves survives a restart."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from psycopg import sql

from questdb_ingest.config import Settings
from questdb_ingest.errors import QueryError
from questdb_ingest.hybrid.reader import QuestDBReader
from questdb_ingest.hybrid.rollback import RollbackManager, disk_usage
from questdb_ingest.hybrid.rollout import Rollout, RolloutConfig
from questdb_ingest.ingest import RolloutEventWriter
from questdb_ingest.ingest.backlog import BackloggedWriter
from questdb_ingest.models import TradeBatch
from questdb_ingest.server import QuestDBProcess
from questdb_ingest.store import queries
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB
from .helpers import fresh_settings

pytestmark = pytest.mark.questdb

CONFIG = {
    "migration": {
        "phase_1": {"duration": "1d", "questdb_percentage": 10},
        "phase_2": {"duration": "1d", "questdb_percentage": 50},
        "phase_3": {"duration": "1d", "questdb_percentage": 100},
    },
    "rollback": {"interval": "1s", "min_queries": 3, "max_mean_latency_ms": 200, "max_spool_growth_mb": 1},
}


class SlowReader(QuestDBReader):
    """A reader whose window queries take ``delay`` seconds longer (injected slowness)."""

    delay = 0.3

    def _query(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, TradeBatch]:
        time.sleep(self.delay)
        return super()._query(symbol, start_ns, end_ns)


def rollout_at(settings: Settings, phase: int, **rollback: object) -> Rollout:
    data = {**CONFIG, "rollback": {**CONFIG["rollback"], **rollback}}
    config = RolloutConfig.parse(data, "test")
    rollout = Rollout(config, Rollout.from_settings(settings).store)
    rollout.set_phase(phase, "test set-up")
    return rollout


def manager(settings: Settings, rollout: Rollout, **kw: object) -> RollbackManager:
    writer = BackloggedWriter(RolloutEventWriter.from_settings(settings).open(), flush_each=True)
    defaults: dict[str, object] = {
        "reader": QuestDBReader(settings),
        "disk_probe": lambda: 0.5,
        "spool_probe": lambda: 0,
        "record": writer.write,
    }
    return RollbackManager(rollout, **{**defaults, **kw})  # type: ignore[arg-type]


def rollout_rows(settings: Settings) -> list[tuple[object, ...]]:
    table = settings.table("rollout_events")
    with connect(settings) as conn:
        queries.wait_visible(conn, table)
        return conn.execute(
            sql.SQL("SELECT action, from_phase, to_phase, reason, mean_latency_ms, disk_usage FROM {}").format(
                sql.Identifier(table)
            )
        ).fetchall()


def test_healthy_questdb_changes_nothing(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    rollout = rollout_at(settings, 3)
    mgr = manager(settings, rollout)
    for _ in range(5):
        mgr.reader.window("XYZ", 0, 10)
    verdict = mgr.check()
    assert verdict.breaches == [] and verdict.change is None
    assert verdict.reading.queries == 6 and verdict.reading.errors == 0  # 5 windows + the probe
    assert rollout.current().number == 3
    assert disk_usage(tmp_path) is not None and disk_usage(tmp_path / "absent") is None


def test_slow_queries_roll_back_one_phase_and_are_recorded(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    rollout = rollout_at(settings, 3)
    mgr = manager(settings, rollout, reader=SlowReader(settings))
    for _ in range(3):
        mgr.reader.window("XYZ", 0, 10)
    verdict = mgr.check()
    assert verdict.change is not None and (verdict.change.from_phase, verdict.change.to_phase) == (3, 2)
    assert any("mean query latency" in b for b in verdict.breaches)
    assert verdict.reading.mean_latency_ms > 200
    # Too few queries in the next interval to judge latency: no further rollback.
    assert mgr.check().change is None and rollout.current().number == 2
    [(action, src, dst, reason, latency, disk)] = rollout_rows(settings)
    assert (action, src, dst, disk) == ("rollback", 3, 2, 0.5)
    assert "mean query latency" in str(reason) and float(str(latency)) > 200
    # The phase survives a restart.
    assert Rollout.from_settings(settings, rollout_config=None).store.load().phase == 2


def test_a_full_disk_rolls_back_to_the_buffer_when_configured(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    rollout = rollout_at(settings, 3, target="buffer")
    verdict = manager(settings, rollout, disk_probe=lambda: 0.97).check()
    assert verdict.change is not None and verdict.change.to_phase == 0
    assert verdict.breaches == ["disk usage 97.0% > 95.0%"]
    assert rollout.current().number == 0


def test_spool_growth_rolls_back(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    rollout = rollout_at(settings, 2)
    sizes = iter([10 << 20, 10 << 20, 13 << 20])
    mgr = manager(settings, rollout, spool_probe=lambda: next(sizes))
    assert mgr.check().change is None  # first reading: no growth yet
    assert mgr.check().change is None  # unchanged
    verdict = mgr.check()  # +3 MiB > 1 MiB
    assert verdict.change is not None and verdict.reading.spool_growth_bytes == 3 << 20
    assert rollout.current().number == 1


def test_failed_queries_over_the_error_rate_roll_back(qdb: QuestDB, tmp_path: Path) -> None:
    settings = fresh_settings(qdb, tmp_path)
    rollout = rollout_at(settings, 2)
    reader = QuestDBReader(settings)
    mgr = manager(settings, rollout, reader=reader)
    for _ in range(4):
        reader.window("XYZ", 0, 10)
    reader.stats.record(False, 1.0, "injected")  # 1 of 6 reads failed: 16.7 % > 5 %
    verdict = mgr.check()
    assert verdict.change is not None and any("error rate" in b for b in verdict.breaches)


def test_questdb_stopped_rolls_back_and_started_again_is_healthy(
    private_qdb: tuple[Settings, QuestDBProcess], tmp_path: Path
) -> None:
    base, server = private_qdb
    settings = replace(base, hybrid=replace(base.hybrid, rollout_state=str(tmp_path / "rollout.json")))
    rollout = rollout_at(settings, 3)
    mgr = manager(settings, rollout, reader=QuestDBReader(settings, connect_timeout=2))
    assert mgr.check().change is None
    server.stop()
    try:
        with pytest.raises(QueryError):
            mgr.reader.window("XYZ", 0, 10)
        verdict = mgr.check()
        assert verdict.change is not None and (verdict.change.from_phase, verdict.change.to_phase) == (3, 2)
        assert any("does not answer" in b for b in verdict.breaches)
        assert mgr.check().change is not None and rollout.current().number == 1  # still down: further back
    finally:
        server.start()
        with connect(settings) as conn:
            migrate(conn, settings)
    assert mgr.check().change is None and rollout.current().number == 1
    # The rollbacks made while QuestDB was down reach rollout_events once it is back.
    assert mgr.record is not None
    writer = mgr.record.__self__  # type: ignore[attr-defined]
    assert writer.retry()
    assert sorted((r[1], r[2]) for r in rollout_rows(settings)) == [(2, 1), (3, 2)]
