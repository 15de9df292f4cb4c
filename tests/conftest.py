"""Shared fixtures. Tests that need QuestDB use ``qdb``: it fails under CI=true when the server is
unreachable and skips (saying how to start it) otherwise. Each test session writes to tables with
its own prefix and drops them at the end, so runs never see each other's rows. Tests of PGWire
logins use ``postgres``: a throw-away PostgreSQL (same wire protocol, real password checks) that
fails under CI=true when its binaries are missing and skips otherwise."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from questdb_ingest.config import Settings, load_settings
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import QuestDBAuthError, QuestDBNotInstalledError
from questdb_ingest.server import QuestDBProcess, find_install
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import drop_prefixed

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """The suite (and every process it starts) keeps its files in a state root of its own, never in
    the user's ``~/.local/share/pumpwatch``, and its APIs on free ports."""
    if "PUMPWATCH_STATE_DIR" not in os.environ:
        os.environ["PUMPWATCH_STATE_DIR"] = tempfile.mkdtemp(prefix="pumpwatch-tests-")
    # Every `pumpwatch run` the suite starts serves its API on a free port: never on an operator's
    # 8780, never on another test's.
    os.environ.setdefault("PUMPWATCH_API_PORT", "0")


def scoped_settings(prefix: str, **overrides: dict[str, object]) -> Settings:
    """Settings from the environment with a table prefix of our own (and any overrides)."""
    schema = {"table_prefix": prefix, **overrides.pop("schema", {})}
    return load_settings(overrides={"schema": schema, **overrides})


def require_questdb(settings: Settings) -> None:
    try:
        with connect(settings, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except QuestDBAuthError as exc:
        pytest.fail(f"{exc}", pytrace=False)  # up but refusing the suite's login: a setup error, never a skip
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
        """A fresh prefix (for tests that need their own tables), dropped when the test module ends."""
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


@pytest.fixture(scope="module", autouse=True)
def _drop_module_namespaces() -> Iterator[None]:
    """The namespaces a test module made with ``new_prefix()`` go when the module ends, not when
    the session does: each is some fifteen tables, QuestDB keeps files open for every table it
    holds, and a whole suite's worth at once ran the server out of file descriptors."""
    first = len(_PREFIXES)
    yield
    made = [p for p in _PREFIXES[first:] if p.count("_") > 1]  # new_prefix(), never the session's own
    if not made:
        return
    try:
        with connect(scoped_settings(made[0]), connect_timeout=3) as conn:
            drop_prefixed(conn, made)
    except (psycopg.Error, QuestDBAuthError):
        return  # unreachable now: the session's end drops them
    for prefix in made:
        _PREFIXES.remove(prefix)


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


# --------------------------------------------------------------------------- throw-away PostgreSQL
PG_PASSWORD = "s3cr et=x host=evil 'q\\"  # a space, '=', an option-looking tail, a quote, a backslash


@dataclass
class Postgres:
    """A running throw-away PostgreSQL: ``user`` logs in with ``password`` (SCRAM) on 127.0.0.1:``port``."""

    port: int
    user: str
    password: str
    database: str = "postgres"

    def settings(self, password: str | None = None) -> Settings:
        """Settings whose PGWire side points at this server (``password`` overrides the right one)."""
        questdb = {
            "host": "127.0.0.1",
            "pg_port": self.port,
            "user": self.user,
            "password": self.password if password is None else password,
            "database": self.database,
        }
        return load_settings(overrides={"questdb": questdb})


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout, then PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "postgres").exists() else None


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root (CI runs the suite as root): drop to ``nobody`` then."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg_bin = _postgres_bin()
    if pg_bin is None:
        msg = "PostgreSQL binaries (initdb, postgres) not found; install postgresql (e.g. apt-get install postgresql)"
        if IN_CI:
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)
    # Not pytest's tmp_path: its parents are private to the user running the tests, and the server
    # may run as nobody.
    root = Path(tempfile.mkdtemp(prefix="pumpwatch-pg-"))
    pwfile = root / "pwfile"
    pwfile.write_text(PG_PASSWORD, encoding="utf-8")
    if os.geteuid() == 0:
        for path in (root, pwfile):
            shutil.chown(path, "nobody", "nogroup")
    server = Postgres(port=free_port(), user="pumpwatch", password=PG_PASSWORD)
    log = root / "postgres.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        init = subprocess.run(
            [*_as_server_user(), str(pg_bin / "initdb"), "-D", str(root / "data"), "-U", server.user,
             f"--pwfile={pwfile}", "--auth=scram-sha-256", "--no-sync", "--no-instructions", "-E", "UTF8"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*_as_server_user(), str(pg_bin / "postgres"), "-D", str(root / "data"), "-p", str(server.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}", "-c", "fsync=off"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:  # listening is not ready ("the database system is starting up"): log in once
            assert proc.poll() is None, f"postgres exited:\n{log.read_text(errors='replace')}"
            try:
                psycopg.connect(
                    host="127.0.0.1", port=server.port, user=server.user, password=server.password,
                    dbname=server.database, connect_timeout=2,
                ).close()  # fmt: skip
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    pytest.fail(f"postgres not ready in 60 s ({exc}):\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield server
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: its children are the server's own
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
