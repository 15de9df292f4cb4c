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
    """What answers at the configured address, and whether it is the server of ``data_dir``.

    ``pid`` is our server's (from its pid file, alive); ``healthy`` is the health endpoint of
    ``host``:``health_port`` answering. A server that answers without a pid of ours was started by
    someone else (``external``): it is running, never reported as stopped."""

    running: bool  # ours is alive, or something answers the health endpoint
    pid: int | None
    healthy: bool
    data_dir: Path
    log_file: Path
    http_port: int
    pg_port: int
    ilp_tcp_port: int
    health_port: int
    host: str = BIND_HOST

    @property
    def external(self) -> bool:
        """A healthy server that pumpwatch did not start (no live pid file in ``data_dir``)."""
        return self.pid is None and self.healthy

    @property
    def ok(self) -> bool:
        """Running and answering: what ``questdb status`` exits 0 for."""
        return self.running and self.healthy

    def describe(self) -> str:
        """One line: ``running (pid 12), healthy``, ``running (external, …), healthy`` or ``stopped``."""
        where = f"{self.host}:{self.health_port}"
        if self.pid is not None:
            health = f"healthy at {where}" if self.healthy else f"not answering at {where}"
            return f"running (pid {self.pid}), {health}; data {self.data_dir}"
        if self.healthy:
            return f"running (external, not started by pumpwatch), healthy at {where}"
        return f"stopped (nothing answers at {where}); data {self.data_dir}"

    def as_dict(self) -> dict[str, object]:
        """The same facts for ``--json`` (``state`` is the word ``describe`` starts with)."""
        return {
            "state": "running" if self.running else "stopped",
            "external": self.external,
            "pid": self.pid,
            "healthy": self.healthy,
            "host": self.host,
            "http_port": self.http_port,
            "pg_port": self.pg_port,
            "ilp_tcp_port": self.ilp_tcp_port,
            "health_port": self.health_port,
            "data_dir": str(self.data_dir),
            "log_file": str(self.log_file),
        }


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

    def healthy(self, timeout: float = 1.0, host: str = BIND_HOST) -> bool:
        """Whether the health endpoint on ``host`` answers 200 (our server binds ``BIND_HOST``)."""
        name = f"[{host}]" if ":" in host else host
        url = f"http://{name}:{self.settings.health_port}/"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def status(self) -> ServerStatus:
        """Our pid, and the health endpoint of the configured ``questdb.host`` (where clients go),
        so a server started elsewhere counts as running."""
        pid = self.pid()
        s = self.settings
        healthy = self.healthy(host=s.host)
        return ServerStatus(
            running=pid is not None or healthy,
            pid=pid,
            healthy=healthy,
            data_dir=self.root,
            log_file=self.log_file,
            http_port=s.http_port,
            pg_port=s.pg_port,
            ilp_tcp_port=s.ilp_tcp_port,
            health_port=s.health_port,
            host=s.host,
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
