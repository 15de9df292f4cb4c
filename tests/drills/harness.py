"""What the fault drills share: a private QuestDB that can be stopped, started and frozen (SIGSTOP),
small real filesystems (tmpfs) for the spool, ``pumpwatch run`` as a child process with its own
state root, the replay server's counters, and the counts read back from QuestDB."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from questdb_ingest.config import Settings, load_settings
from questdb_ingest.connectors.replay_process import ReplayProcess, free_port
from questdb_ingest.sender.spool import HEADER_BYTES, MAGIC
from questdb_ingest.server import QuestDBProcess
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from tests.integration.sender_helpers import count_distinct

CONNECTORS = "binance_spot,okx_spot,bybit_futures"


@dataclass
class DrillResult:
    """One drill's line in the table: what the replay server delivered, what QuestDB holds."""

    name: str
    generated: int
    stored: int
    distinct: int
    reported_lost: int = 0
    passed: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks[name] = bool(ok)
        if detail:
            self.notes.append(f"{name}: {detail}")
        self.passed = all(self.checks.values())
        return bool(ok)

    def failures(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


class PrivateQuestDB:
    """A QuestDB of the drills' own on free ports, in a temporary directory."""

    def __init__(self, root: Path) -> None:
        ports = {name: free_port() for name in ("http_port", "pg_port", "ilp_tcp_port", "health_port")}
        self.settings = load_settings(
            env={}, overrides={"questdb": {"data_dir": str(root / "qdb"), **ports}, "state": {"dir": str(root)}}
        )
        self.server = QuestDBProcess(self.settings.questdb)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets (connections are accepted) and answers nothing."""
        os.kill(self._pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._pid(), signal.SIGCONT)

    def _pid(self) -> int:
        pid = self.server.pid()
        assert pid is not None, "QuestDB is not running"
        return pid

    def scoped(self, prefix: str, state: Path, migrated: bool = True) -> Settings:
        q = self.settings.questdb
        settings = load_settings(
            env={},
            overrides={
                "questdb": {name: getattr(q, name) for name in ("http_port", "pg_port", "ilp_tcp_port", "health_port")},
                "schema": {"table_prefix": prefix},
                "state": {"dir": str(state)},
            },
        )
        if migrated:
            with connect(settings) as conn:
                migrate(conn, settings)
        return settings

    def env(self, settings: Settings) -> dict[str, str]:
        """The environment a child ``pumpwatch`` needs to use ``settings``' QuestDB, tables and state."""
        q = settings.questdb
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPWATCH_")}
        env.update(
            PUMPWATCH_QUESTDB_HTTP_PORT=str(q.http_port),
            PUMPWATCH_QUESTDB_PG_PORT=str(q.pg_port),
            PUMPWATCH_QUESTDB_ILP_TCP_PORT=str(q.ilp_tcp_port),
            PUMPWATCH_QUESTDB_HEALTH_PORT=str(q.health_port),
            PUMPWATCH_SCHEMA_TABLE_PREFIX=settings.schema.table_prefix,
            PUMPWATCH_SCHEMA_DEMO_PREFIX="",  # the drills read back what they generated in these tables
            PUMPWATCH_STATE_DIR=settings.state.dir,
            PUMPWATCH_SENDER_RETRY_MAX="1.0",
            PUMPWATCH_CONNECTORS_RECONNECT_INITIAL="0.2",
            PUMPWATCH_CONNECTORS_RECONNECT_MAX="1.0",
            PYTHONUNBUFFERED="1",
        )
        return env


def counts(settings: Settings) -> tuple[int, int]:
    """(rows, distinct trades) in ``trades`` once every WAL transaction is applied."""
    return count_distinct(settings)


def gap_totals(settings: Settings) -> tuple[int, int]:
    """(gap rows, trades fetched again over REST) the connectors recorded: what tells a trade
    received twice (a back-fill overlapping what the socket delivered) from a trade lost."""
    with connect(settings) as conn:
        row = conn.execute(f"SELECT count(), sum(backfilled_trades) FROM {settings.table('gaps')}").fetchone()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real, small filesystem at ``path`` (root only: ``mount -t tmpfs``)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def immutable(root: Path, on: bool) -> None:
    """``chattr ±i`` on every file and directory under ``root``: a write through an open descriptor
    then fails with EPERM, as on a disk gone bad (a read-only remount is refused while files are open)."""
    paths = [str(p) for p in sorted(root.rglob("*"))] + [str(root)]
    subprocess.run(["chattr", "+i" if on else "-i", *paths], check=True)


def can_fault_filesystems() -> str:
    """ "" when this machine lets the drills mount a tmpfs and set the immutable flag, else why not."""
    probe = Path(tempfile.mkdtemp(prefix="pumpwatch-mount-"))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True)
        if done.returncode != 0:
            return f"cannot mount a tmpfs (root needed): {done.stderr.decode().strip()}"
        subprocess.run(["umount", str(probe)], check=False)
        flag = subprocess.run(["chattr", "+i", str(probe)], capture_output=True)
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        if flag.returncode != 0:
            return f"cannot set the immutable flag here: {flag.stderr.decode().strip()}"
        return ""
    finally:
        probe.rmdir()


class Run:
    """``pumpwatch <args>`` as a child process in its own process group (so a drill can SIGKILL it
    and its workers together, as a crash of the box would)."""

    def __init__(self, env: dict[str, str], args: list[str], cwd: Path | None = None) -> None:
        self.args = args
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - read at the end
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "questdb_ingest.cli", *args],
            env=env,
            cwd=cwd,
            stdout=self.out,
            stderr=self.err,
            start_new_session=True,
        )

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if it is still running after ``timeout`` (it is then killed)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            return None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def output(self) -> str:
        text = []
        for f in (self.out, self.err):
            f.seek(0)
            text.append(f.read().decode(errors="replace"))
        return "\n".join(text)


def replay(rate: float, max_trades: int | None = None, connectors: str = CONNECTORS, symbols: int = 5) -> ReplayProcess:
    """A replay server at a steady ``rate`` (no bursts) on its own core."""
    args = ["--connectors", connectors, "--symbols", str(symbols), "--rate", str(rate), "--burst-rate", str(rate)]
    return ReplayProcess([*args, *(["--max-trades", str(max_trades)] if max_trades else [])])


def replay_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_replay/stats", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def delivered(stats: dict[str, Any]) -> int:
    return sum(int(c["trades_delivered"]) for c in stats["connectors"].values())


def connections_total(stats: dict[str, Any]) -> int:
    return sum(int(c["connections_total"]) for c in stats["connectors"].values())


def spool_rows(root: Path) -> int:
    """Rows in whole records of every segment under ``root`` (read-only; a record still being
    written is not counted): what is on disk right now."""
    rows = 0
    for segment in root.glob("shard-*/*.seg"):
        try:
            data = segment.read_bytes()
        except FileNotFoundError:  # replayed and removed meanwhile
            continue
        offset = 0
        while offset + HEADER_BYTES <= len(data) and data[offset : offset + 4] == MAGIC:
            size = int.from_bytes(data[offset + 4 : offset + 8], "little")
            if offset + HEADER_BYTES + size > len(data):
                break
            rows += int.from_bytes(data[offset + 8 : offset + 12], "little")
            offset += HEADER_BYTES + size
    return rows


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return data
