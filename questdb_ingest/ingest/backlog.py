"""Event rows (health, gaps, compares, rollout changes) to QuestDB without ever blocking a caller
on an outage: rows wait in a bounded backlog and go out with the next write or ``retry``."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Generic, Protocol, TypeVar

from ..errors import FlushError, PumpwatchError

log = logging.getLogger(__name__)

E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class EventTableWriter(Protocol[E_contra]):
    table: str

    @property
    def last_error(self) -> FlushError | None: ...

    def write(self, event: E_contra, /) -> None: ...

    def flush(self) -> int: ...

    def close(self, flush: bool = True) -> None: ...


class BackloggedWriter(Generic[E]):
    """Wraps a ``TableWriter``; ``write`` never raises for an unreachable QuestDB.

    Beyond ``max_backlog`` waiting rows the oldest is dropped and counted in ``dropped``
    (a few rows per second for hours before that happens). Safe to call from several threads
    (compares finishing at once each write from their own thread)."""

    def __init__(self, writer: EventTableWriter[E], max_backlog: int = 100_000, *, flush_each: bool = False) -> None:
        self.writer = writer
        self.max_backlog = max_backlog
        self.flush_each = flush_each  # flush after every row: for rare rows that must be visible soon
        self.backlog: deque[E] = deque()
        self.dropped = 0
        self.written = 0
        self._lock = threading.RLock()

    @property
    def table(self) -> str:
        return self.writer.table

    def write(self, event: E) -> bool:
        """Queue ``event`` and send what waits; True when nothing is left waiting."""
        with self._lock:
            self.backlog.append(event)
            if len(self.backlog) > self.max_backlog:
                self.backlog.popleft()
                self.dropped += 1
            return self.retry()

    def retry(self) -> bool:
        with self._lock:
            return self._send()

    def _send(self) -> bool:
        try:
            if self.writer.last_error is not None:
                self.writer.flush()  # resend what the writer holds before adding more
            while self.backlog:
                self.writer.write(self.backlog[0])
                self.backlog.popleft()
                self.written += 1
            if self.flush_each:
                self.writer.flush()
        except PumpwatchError as exc:
            log.warning("%s: %d row(s) waiting for QuestDB: %s", self.table, len(self.backlog), exc)
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._send()
            try:
                self.writer.close()
            except PumpwatchError as exc:
                log.error("%s: rows not written at shutdown: %s", self.table, exc)
            if self.backlog:
                log.error("%s: %d row(s) never reached QuestDB", self.table, len(self.backlog))
