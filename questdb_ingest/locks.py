"""The one cross-process lock: an exclusive ``flock`` on a file that holds the owner's pid.

The kernel releases it when the owner dies (even by SIGKILL), so a crashed process never leaves
a stale lock behind. Used by the spool (one sender per spool root), backups (one per destination)
and the archive runner (one ingest or rollback per namespace).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class PidLock:
    """``acquire()`` → True when this process now holds ``path``; ``holder()`` names who does."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting (OSError when its directory cannot be made or opened)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by whoever holds (or last held) the lock, ``?`` when unreadable."""
        with contextlib.suppress(OSError):
            return self.path.read_text().strip() or "?"
        return "?"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
