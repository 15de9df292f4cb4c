"""`pumpwatch questdb start|status|stop` on a second server with its own ports and data dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import QuestDBNotInstalledError
from questdb_ingest.server import find_install
from tests.conftest import IN_CI


@pytest.fixture
def server_args(tmp_path: Path) -> list[str]:
    try:
        find_install()
    except QuestDBNotInstalledError as exc:
        if IN_CI:
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    return [
        "--data-dir",
        str(tmp_path / "qdb"),
        "--http-port",
        str(free_port()),
        "--pg-port",
        str(free_port()),
        "--ilp-tcp-port",
        str(free_port()),
        "--health-port",
        str(free_port()),
    ]


def pumpwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPWATCH_QUESTDB_")}
    return subprocess.run(
        [sys.executable, "-m", "questdb_ingest.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_start_status_stop(server_args: list[str], tmp_path: Path) -> None:
    assert pumpwatch("questdb", "status", *server_args).returncode == 3
    started = pumpwatch("questdb", "start", *server_args)
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        assert "running" in started.stdout
        status = pumpwatch("questdb", "status", *server_args)
        assert status.returncode == 0 and "healthy" in status.stdout
        # The managed server got the project's server.conf (telemetry off, loopback binds).
        conf = (tmp_path / "qdb" / "conf" / "server.conf").read_text()
        assert "telemetry.enabled=false" in conf
        # Starting again is idempotent.
        assert pumpwatch("questdb", "start", *server_args).returncode == 0
    finally:
        stopped = pumpwatch("questdb", "stop", *server_args)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert pumpwatch("questdb", "status", *server_args).returncode == 3
    assert not (tmp_path / "qdb" / "questdb.pid").exists()
    assert "stopped" not in pumpwatch("questdb", "stop", *server_args).stdout.replace("not running", "")


def test_start_failure_shows_the_log_tail(server_args: list[str]) -> None:
    pg_port = int(server_args[server_args.index("--pg-port") + 1])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", pg_port))
        blocker.listen()
        result = pumpwatch("questdb", "start", *server_args)
        pumpwatch("questdb", "stop", *server_args)
    assert result.returncode == 1
    assert "log tail" in result.stderr
