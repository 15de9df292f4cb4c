"""Shared fixtures. Tests that need QuestDB use ``qdb``: it fails under CI=true when the server is
unreachable and skips (saying how to start it) otherwise. Each test session writes to tables with
its own prefix and drops them at the end, so runs never see each other's rows."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from questdb_ingest.config import Settings, load_settings
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import QuestDBNotInstalledError
from questdb_ingest.server import QuestDBProcess, find_install
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import drop_prefixed

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """The suite (and every process it starts) keeps its files in a state root of its own, never in
    the user's ``~/.local/share/pumpwatch``."""
    if "PUMPWATCH_STATE_DIR" not in os.environ:
        os.environ["PUMPWATCH_STATE_DIR"] = tempfile.mkdtemp(prefix="pumpwatch-tests-")


def scoped_settings(prefix: str, **overrides: dict[str, object]) -> Settings:
    """Settings from the environment with a table prefix of our own (and any overrides)."""
    schema = {"table_prefix": prefix, **overrides.pop("schema", {})}
    return load_settings(overrides={"schema": schema, **overrides})


def require_questdb(settings: Settings) -> None:
    try:
        with connect(settings, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        msg = (
            f"QuestDB is not reachable on {settings.questdb.host}:{settings.questdb.pg_port} ({exc}). "
            "Start it with: scripts/setup.sh && .venv/bin/pumpwatch questdb start"
        )
        if IN_CI:
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)


@dataclass
class QuestDB:
    """A migrated namespace (table prefix) in the running QuestDB."""

    settings: Settings
    prefix: str

    def conn(self) -> psycopg.Connection[tuple[object, ...]]:
        return connect(self.settings)

    def table(self, name: str) -> str:
        return self.settings.table(name)

    def new_prefix(self) -> str:
        """A fresh prefix (for tests that need their own tables), dropped at session end."""
        prefix = f"{self.prefix}{secrets.token_hex(3)}_"
        _PREFIXES.append(prefix)
        return prefix


_PREFIXES: list[str] = []


@pytest.fixture(scope="session")
def qdb_session() -> Iterator[QuestDB]:
    prefix = f"t{secrets.token_hex(3)}_"
    settings = scoped_settings(prefix)
    require_questdb(settings)
    _PREFIXES.append(prefix)
    with connect(settings) as conn:
        migrate(conn, settings)
    yield QuestDB(settings, prefix)
    with connect(settings) as conn:
        drop_prefixed(conn, _PREFIXES)


@pytest.fixture
def qdb(qdb_session: QuestDB) -> QuestDB:
    return qdb_session


@pytest.fixture(scope="module")
def private_qdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, QuestDBProcess]]:
    """A QuestDB of the test module's own, on free ports, that tests may stop and start."""
    try:
        find_install()
    except QuestDBNotInstalledError as exc:
        if IN_CI:
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    ports = {name: free_port() for name in ("http_port", "pg_port", "ilp_tcp_port", "health_port")}
    data_dir = str(tmp_path_factory.mktemp("private") / "qdb")
    state = str(tmp_path_factory.mktemp("private-state"))
    settings = load_settings(env={}, overrides={"questdb": {"data_dir": data_dir, **ports}, "state": {"dir": state}})
    server = QuestDBProcess(settings.questdb)
    server.start()
    try:
        with connect(settings) as conn:
            migrate(conn, settings)
        yield settings, server
    finally:
        server.stop()
