"""The fault drills as tests: each fails on a sender that loses, hangs or under-reports (see
``drills.py`` for what each does; ``scripts/fault-drills.sh`` runs the same code and prints the table)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from questdb_ingest.errors import QuestDBNotInstalledError
from questdb_ingest.server import find_install

from ..conftest import IN_CI
from .drills import (
    drill_crash_loop,
    drill_dead_sender,
    drill_fewer_workers,
    drill_full_disk,
    drill_hung_questdb,
    drill_late_questdb,
    drill_outage,
)
from .harness import DrillResult, PrivateQuestDB, can_fault_filesystems

SUITE_OUTAGE_S = 30.0

pytestmark = [pytest.mark.questdb, pytest.mark.slow]


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def qdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateQuestDB]:
    try:
        find_install()
    except QuestDBNotInstalledError as exc:
        _unavailable(str(exc))
    server = PrivateQuestDB(tmp_path_factory.mktemp("drills"))
    server.start()
    try:
        yield server
    finally:
        if server.server.pid() is not None:
            server.stop()


def _drill(qdb: PrivateQuestDB, tmp_path: Path, drill: Callable[[PrivateQuestDB, Path], DrillResult]) -> None:
    try:
        result = drill(qdb, tmp_path)
    finally:
        if qdb.server.pid() is None:  # a drill that stopped QuestDB and failed leaves it for the next
            qdb.start()
    assert result.passed, f"{result.name}: failed {result.failures()}\n" + "\n".join(result.notes)


@pytest.fixture
def faults() -> None:
    why = can_fault_filesystems()
    if why:
        _unavailable(f"the drill needs to fault a real filesystem: {why}")


@pytest.mark.usefixtures("faults")
def test_a_dead_sender_stops_intake_at_once_and_counts_every_trade_not_stored(
    qdb: PrivateQuestDB, tmp_path: Path
) -> None:
    _drill(qdb, tmp_path, drill_dead_sender)


@pytest.mark.usefixtures("faults")
def test_a_full_spool_disk_slows_the_feeds_and_loses_nothing(qdb: PrivateQuestDB, tmp_path: Path) -> None:
    _drill(qdb, tmp_path, drill_full_disk)


def test_an_outage_under_run_keeps_memory_within_a_flush_interval_and_survives_sigkill(
    qdb: PrivateQuestDB, tmp_path: Path
) -> None:
    # 30 s here keeps the suite in its budget; ``scripts/fault-drills.sh`` runs the full 180 s.
    _drill(qdb, tmp_path, lambda q, work: drill_outage(q, work, seconds=SUITE_OUTAGE_S))


def test_fewer_workers_replay_every_spool_shard_from_another_directory(qdb: PrivateQuestDB, tmp_path: Path) -> None:
    _drill(qdb, tmp_path, drill_fewer_workers)


def test_crash_loops_end_in_a_typed_error_and_sigterm_within_a_bound(qdb: PrivateQuestDB, tmp_path: Path) -> None:
    _drill(qdb, tmp_path, drill_crash_loop)


def test_a_frozen_questdb_never_stalls_the_event_loop(qdb: PrivateQuestDB, tmp_path: Path) -> None:
    _drill(qdb, tmp_path, drill_hung_questdb)


def test_run_starts_while_questdb_is_down_and_stores_everything_once_it_is_up(
    qdb: PrivateQuestDB, tmp_path: Path
) -> None:
    _drill(qdb, tmp_path, drill_late_questdb)
