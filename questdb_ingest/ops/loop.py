"""The lifecycle every maintenance job shares: one daemon thread running the job's ``_loop``
until ``stop`` (which sets ``_stop`` and joins it)."""

from __future__ import annotations

import threading


class Periodic:
    """Base of the jobs the service owns (retention, backups): ``start_loop``/``stop``."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        raise NotImplementedError

    def start_loop(self, name: str) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop (a run in progress ends at its next check of ``_stop``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
