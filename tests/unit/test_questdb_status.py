"""``pumpwatch questdb status`` asks the health endpoint of the configured ``questdb.host``: a server
started elsewhere is running (never "stopped … healthy"), a dead pid file with nothing answering is
stopped. A tiny HTTP server plays QuestDB's health endpoint; no QuestDB is needed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from questdb_ingest.cli import main
from questdb_ingest.connectors.replay_process import free_port

from .cli_env import isolate, no_traceback


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"Status: Healthy"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    for key in ("HTTP_PORT", "PG_PORT", "ILP_TCP_PORT", "HEALTH_PORT"):  # status only asks --health-port;
        monkeypatch.delenv(f"PUMPWATCH_QUESTDB_{key}")  # the defaults (9000, ...) never clash with a free one


def _serve(host: str) -> Iterator[int]:
    server = ThreadingHTTPServer((host, 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def health_port() -> Iterator[int]:
    """A health endpoint answering 200 on 127.0.0.1."""
    yield from _serve("127.0.0.1")


@pytest.fixture
def other_host_health_port() -> Iterator[int]:
    """A health endpoint on 127.0.0.2 only: 127.0.0.1 on that port answers nothing."""
    yield from _serve("127.0.0.2")


def _status(tmp_path: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> Result:
    args = ["questdb", "status", "--data-dir", str(tmp_path / "qdb"), "--health-port", str(port), *extra]
    result = CliRunner().invoke(main, args, env=env)
    no_traceback(result)
    return result


def test_external_server_on_the_configured_host_is_running_and_healthy(
    tmp_path: Path, other_host_health_port: int
) -> None:
    env = {"PUMPWATCH_QUESTDB_HOST": "127.0.0.2"}
    result = _status(tmp_path, other_host_health_port, env=env)
    assert result.exit_code == 0, result.output
    assert "running (external, not started by pumpwatch), healthy" in result.output
    assert f"127.0.0.2:{other_host_health_port}" in result.output
    data = json.loads(_status(tmp_path, other_host_health_port, "--json", env=env).output)
    assert (data["state"], data["external"], data["healthy"], data["pid"]) == ("running", True, True, None)
    assert (data["host"], data["health_port"]) == ("127.0.0.2", other_host_health_port)


def test_no_pid_file_but_health_answers_is_never_stopped(tmp_path: Path, health_port: int) -> None:
    result = _status(tmp_path, health_port)
    assert result.exit_code == 0, result.output
    assert "stopped" not in result.output and "pid None" not in result.output
    assert "running (external, not started by pumpwatch), healthy" in result.output
    js = _status(tmp_path, health_port, "--json")
    assert js.exit_code == 0 and json.loads(js.output)["state"] == "running"


def test_dead_pid_and_no_health_is_stopped_exit_3(tmp_path: Path) -> None:
    (tmp_path / "qdb").mkdir()
    dead = int(Path("/proc/sys/kernel/pid_max").read_text())  # pids are below pid_max: none has this one
    (tmp_path / "qdb" / "questdb.pid").write_text(f"{dead}\n")
    closed = free_port()
    result = _status(tmp_path, closed)
    assert result.exit_code == 3, result.output
    assert f"stopped (nothing answers at 127.0.0.1:{closed})" in result.output
    assert "pid None" not in result.output and "healthy" not in result.output
    js = _status(tmp_path, closed, "--json")
    assert js.exit_code == 3
    data = json.loads(js.output)
    assert (data["state"], data["external"], data["healthy"], data["pid"]) == ("stopped", False, False, None)


@pytest.fixture
def our_pid(tmp_path: Path) -> Iterator[int]:
    """A live process that looks like our QuestDB (``io.questdb`` in its command line), in the pid file."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "io.questdb"], stdin=subprocess.PIPE)
    (tmp_path / "qdb").mkdir()
    (tmp_path / "qdb" / "questdb.pid").write_text(f"{proc.pid}\n")
    try:
        yield proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()


def test_our_server_with_and_without_health(tmp_path: Path, our_pid: int, health_port: int) -> None:
    result = _status(tmp_path, health_port)
    assert result.exit_code == 0, result.output
    assert f"running (pid {our_pid}), healthy at 127.0.0.1:{health_port}" in result.output
    data = json.loads(_status(tmp_path, health_port, "--json").output)
    assert (data["state"], data["external"], data["pid"], data["healthy"]) == ("running", False, our_pid, True)
    closed = free_port()
    result = _status(tmp_path, closed)
    assert result.exit_code == 3, result.output
    assert f"running (pid {our_pid}), not answering at 127.0.0.1:{closed}" in result.output
    data = json.loads(_status(tmp_path, closed, "--json").output)
    assert (data["state"], data["pid"], data["healthy"]) == ("running", our_pid, False)
