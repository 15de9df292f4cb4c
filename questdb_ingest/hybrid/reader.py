"""QuestDB's side of hybrid reads: window queries over one PGWire connection, timed and counted
for the rollback manager, and the WAL sync compare mode needs before it reads."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import psycopg

from ..config import Settings
from ..errors import PumpwatchError, QueryError
from ..models import TradeBatch
from ..store import market  # the module, not its names: store.market imports hybrid.window (a cycle)
from ..store.pg import connect
from ..store.queries import wait_applied, wal_sequencer_txn


@dataclass(frozen=True)
class QueryWindow:
    """QuestDB reads since the previous ``QueryStats.take``."""

    queries: int
    errors: int
    mean_latency_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.queries if self.queries else 0.0


class QueryStats:
    """Counts and times every QuestDB read (window queries and health probes), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = [0, 0, 0.0]
        self.queries = 0
        self.errors = 0
        self.last_error = ""

    def record(self, ok: bool, latency_ms: float, error: str = "") -> None:
        with self._lock:
            self._window[0] += 1
            self._window[1] += 0 if ok else 1
            self._window[2] += latency_ms
            self.queries += 1
            if not ok:
                self.errors += 1
                self.last_error = error

    def take(self) -> QueryWindow:
        """The reads since the last call (and start a new window)."""
        with self._lock:
            n, errors, total = self._window
            self._window = [0, 0, 0.0]
        return QueryWindow(int(n), int(errors), total / n if n else 0.0)


class QuestDBReader:
    """Listing-window reads from QuestDB; a failed read drops the connection and raises ``QueryError``.

    One connection, one query at a time (a lock): listing windows are rare, and a connection per
    query would cost more than the query."""

    def __init__(self, settings: Settings, stats: QueryStats | None = None, connect_timeout: int = 3) -> None:
        self.settings = settings
        self.stats = stats or QueryStats()
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings, connect_timeout=self.connect_timeout)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def window(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, TradeBatch]:
        """Trades of ``symbol`` (or every pair of a base asset) in [start, end], per venue."""
        with self._lock:
            started = time.perf_counter()
            try:
                result = self._query(symbol, start_ns, end_ns)
            except (psycopg.Error, OSError, LookupError, PumpwatchError) as exc:
                self._drop()
                self.stats.record(False, (time.perf_counter() - started) * 1e3, f"{type(exc).__name__}: {exc}")
                raise QueryError(f"QuestDB window query for {symbol!r} failed: {exc}") from exc
            self.stats.record(True, (time.perf_counter() - started) * 1e3)
            return result

    def _query(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, TradeBatch]:
        return market.listing_window(self._connection(), self.settings, symbol, start_ns, end_ns)

    def probe(self) -> float:
        """A cheap read that proves QuestDB answers; its latency (ms). Counted like any read."""
        with self._lock:
            started = time.perf_counter()
            try:
                self._connection().execute("SELECT 1").fetchone()
            except (psycopg.Error, OSError, PumpwatchError) as exc:
                self._drop()
                self.stats.record(False, (time.perf_counter() - started) * 1e3, f"{type(exc).__name__}: {exc}")
                raise QueryError(f"QuestDB health probe failed: {exc}") from exc
            elapsed = (time.perf_counter() - started) * 1e3
            self.stats.record(True, elapsed)
            return elapsed

    def sync_trades(self, timeout: float) -> bool:
        """Wait until every transaction committed to ``trades`` so far is visible; False on timeout."""
        table = self.settings.table("trades")
        with self._lock:
            try:
                conn = self._connection()
                return wait_applied(conn, table, wal_sequencer_txn(conn, table), timeout)
            except (psycopg.Error, OSError, LookupError, RuntimeError, PumpwatchError) as exc:
                self._drop()
                raise QueryError(f"QuestDB WAL sync of {table} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()
