"""QuestDB as the service sees it, checked in a thread of its own every few seconds: reachable
over PGWire, its version (``SELECT build()``), and the disk of its data directory. Snapshots and
API requests read the last result; none of them waits on QuestDB."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..config import Settings
from ..errors import QuestDBAuthError
from ..store.pg import connect

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
_VERSION = re.compile(r"QuestDB\s+([0-9][\w.\-]*)")


@dataclass(frozen=True)
class ProbeResult:
    reachable: bool = False
    version: str = ""
    checked_ns: int = 0
    disk_total_bytes: int = 0
    disk_used_bytes: int = 0
    error: str = "not checked yet"

    @property
    def disk_used_ratio(self) -> float | None:
        return self.disk_used_bytes / self.disk_total_bytes if self.disk_total_bytes else None


def data_disk(data_dir: str) -> tuple[int, int]:
    """(total, used) bytes of the filesystem holding ``data_dir`` (its nearest existing parent)."""
    path = Path(data_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.total, usage.total - usage.free


class QuestDBProbe:
    def __init__(self, settings: Settings, interval: float = PROBE_INTERVAL_S) -> None:
        self.settings = settings
        self.interval = interval
        self.result = ProbeResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None

    def start(self) -> QuestDBProbe:
        self.check()
        self._thread = threading.Thread(target=self._loop, name="questdb-probe", daemon=True)
        self._thread.start()
        return self

    def check(self) -> ProbeResult:
        total, used = data_disk(self.settings.questdb.data_dir)
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.settings, connect_timeout=3)
            row = self._conn.execute("SELECT build()").fetchone()
            match = _VERSION.search(str(row[0]) if row else "")
            self.result = ProbeResult(True, match.group(1) if match else "?", time.time_ns(), total, used, "")
        except (psycopg.Error, OSError, QuestDBAuthError) as exc:
            self._drop()
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self.result = ProbeResult(False, self.result.version, time.time_ns(), total, used, reason)
        return self.result

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._drop()
