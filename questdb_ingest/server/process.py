"""Run the pinned QuestDB jar as a background process bound to 127.0.0.1.

The data directory holds everything the server owns: ``conf/server.conf`` (refreshed from the
project's top-level ``server.conf`` at each start), ``db/``, ``questdb.pid`` and ``questdb.log``.
Ports come from settings and reach the server as ``QDB_*`` environment overrides.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import QuestDBSettings
from ..errors import QuestDBServerError
from ..resources import resource
from .install import QuestDBInstall, find_install

BIND_HOST = "127.0.0.1"
_JVM_OPTS = ("-XX:+UnlockExperimentalVMOptions", "-XX:+AlwaysPreTouch", "-XX:+UseParallelGC")


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    healthy: bool
    data_dir: Path
    log_file: Path
    http_port: int
    pg_port: int
    ilp_tcp_port: int
    health_port: int


class QuestDBProcess:
    """Start, stop and inspect one QuestDB server rooted at ``settings.data_dir``."""

    def __init__(self, settings: QuestDBSettings, install: QuestDBInstall | None = None) -> None:
        self.settings = settings
        self._install = install
        self.root = Path(settings.data_dir).resolve()
        self.pid_file = self.root / "questdb.pid"
        self.log_file = self.root / "questdb.log"

    # -- inspection -----------------------------------------------------------------------
    def pid(self) -> int | None:
        """PID of our server if it is alive (a stale pid file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, PermissionError):
            return None
        return pid if b"io.questdb" in cmdline else None

    def healthy(self, timeout: float = 1.0) -> bool:
        url = f"http://{BIND_HOST}:{self.settings.health_port}/"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def status(self) -> ServerStatus:
        pid = self.pid()
        s = self.settings
        return ServerStatus(
            running=pid is not None,
            pid=pid,
            healthy=self.healthy(),
            data_dir=self.root,
            log_file=self.log_file,
            http_port=s.http_port,
            pg_port=s.pg_port,
            ilp_tcp_port=s.ilp_tcp_port,
            health_port=s.health_port,
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        return "\n".join(text.splitlines()[-lines:])

    # -- control --------------------------------------------------------------------------
    def command(self) -> list[str]:
        inst = self._install or find_install()
        heap = [f"-Xmx{self.settings.heap}"] if self.settings.heap else []
        return [
            str(inst.java),
            *_JVM_OPTS,
            *heap,
            "-p",
            str(inst.jar),
            "-m",
            "io.questdb/io.questdb.ServerMain",
            "-d",
            str(self.root),
        ]

    def environment(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "QDB_HTTP_BIND_TO": f"{BIND_HOST}:{s.http_port}",
                "QDB_HTTP_MIN_NET_BIND_TO": f"{BIND_HOST}:{s.health_port}",
                "QDB_PG_NET_BIND_TO": f"{BIND_HOST}:{s.pg_port}",
                "QDB_LINE_TCP_NET_BIND_TO": f"{BIND_HOST}:{s.ilp_tcp_port}",
                "QDB_PG_USER": s.user,
                "QDB_PG_PASSWORD": s.password,
                "QDB_TELEMETRY_ENABLED": "false",
            }
        )
        return env

    def start(self, progress: Callable[[float], None] | None = None) -> ServerStatus:
        """Start the server and wait until it answers; raise with the log tail if it does not."""
        if self.pid() is not None:
            if self.healthy(timeout=2.0):
                return self.status()
            return self._wait_healthy(progress)
        if self.healthy():
            raise QuestDBServerError(
                f"something already answers on {BIND_HOST}:{self.settings.health_port} but it is not the "
                f"server of {self.root}; stop it or choose other ports"
            )
        cmd = self.command()
        (self.root / "conf").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resource("server.conf"), self.root / "conf" / "server.conf")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.root,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return self._wait_healthy(progress, proc)

    def _wait_healthy(
        self, progress: Callable[[float], None] | None, proc: subprocess.Popen[bytes] | None = None
    ) -> ServerStatus:
        deadline = time.monotonic() + self.settings.start_timeout
        started = time.monotonic()
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise QuestDBServerError(
                    f"QuestDB exited with code {proc.returncode} during start-up; log tail "
                    f"({self.log_file}):\n{self.log_tail()}"
                )
            if self.healthy():
                return self.status()
            if progress:
                progress(time.monotonic() - started)
            time.sleep(0.25)
        self.stop()
        raise QuestDBServerError(
            f"QuestDB did not answer on {BIND_HOST}:{self.settings.health_port} within "
            f"{self.settings.start_timeout:.0f}s; log tail ({self.log_file}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Graceful SIGTERM, SIGKILL only after ``timeout``. Returns False if nothing was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True
