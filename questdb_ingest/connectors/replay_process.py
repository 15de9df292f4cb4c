"""Start and stop a ``pumpwatch replay-server`` child process (its own core, like a real venue)."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import IO

from ..errors import ConnectorError


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel for SIGTERM when the parent dies (Linux; elsewhere no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PR_SET_PDEATHSIG = 1


class ReplayProcess:
    """``with ReplayProcess(["--rate", "2000"]) as replay: replay.base_url``

    The server gets SIGTERM when the process that started it dies, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``), so a killed ``pumpwatch run`` never leaves it behind holding its port."""

    def __init__(self, args: Sequence[str] = (), *, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.start_timeout = start_timeout
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> ReplayProcess:
        cmd = [sys.executable, "-m", "questdb_ingest", "replay-server", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise ConnectorError(f"replay server exited with {self.proc.returncode}: {err.strip()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_replay/stats", timeout=1):  # noqa: S310 - loopback
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise ConnectorError(f"replay server did not answer on {self.base_url} within {self.start_timeout:.0f} s")

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.proc = None
