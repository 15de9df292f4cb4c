"""The sharded sender: a router in the producer's process and N worker processes.

``submit`` validates and splits a ``TradeBatch`` by (exchange, symbol) into per-shard Arrow
payloads and queues them; one thread per shard hands them to its worker over a pipe, another
reads the worker's acknowledgements. A payload stays in the router until its worker says it was
confirmed by QuestDB or written to the spool, so a worker that dies loses nothing: the supervisor
starts a new one and everything unacknowledged is sent again (DEDUP keys absorb repeats).
Queues are bounded per shard in rows; a full queue blocks ``submit`` (backpressure) and, with a
timeout, raises ``BackpressureTimeoutError`` naming the cause. Nothing is ever discarded.

The worker configuration is checked here before any process is spawned, the spool root is locked
for this process alone, and every ``shard-N`` spool directory found is replayed whatever the
worker count (shards beyond it are adopted by the workers). A worker that fails
``sender.max_restarts`` starts in a row stops the sender with ``WorkerCrashLoopError`` and its
last traceback; ``close`` returns within ``sender.drain_timeout`` whatever the workers do, and
raises ``UnstoredRowsError`` with the exact count if rows were left only in memory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Self

import pyarrow as pa

from .. import logs
from ..config import Settings
from ..errors import (
    BackpressureTimeoutError,
    SenderClosedError,
    SenderError,
    UnstoredRowsError,
    WorkerCrashLoopError,
)
from ..histogram import Histogram
from ..histogram import histogram_for as _histogram
from ..models import TradeBatch
from .codec import ShardPart, ShardRouter
from .metrics import SenderMetrics, build_metrics
from .sinks import check_conf, check_websocket, transport_conf
from .spool import SpoolLock, shard_directories
from .worker import WorkerConfig, worker_main

log = logging.getLogger(__name__)

# Submitted batches are split in chunks of this many rows so workers start while the rest encodes.
CHUNK_ROWS = 100_000
_CUMULATIVE = ("rows_in", "rows_confirmed", "rows_spooled", "rows_dead", "rows_retried", "failed_flushes", "flushes")
_BY_EXCHANGE = ("replayed", "replayed_dead")
# A worker incarnation that lived longer than this was a working start; a crash after it is not a loop.
HEALTHY_AFTER_S = 30.0
# After drain_timeout, live workers get SIGTERM (spool what they hold) and this long before SIGKILL.
KILL_GRACE_S = 10.0


@dataclass
class _Part:
    batch_id: int
    rows: int
    exchange_rows: dict[str, int]
    payload: pa.Buffer
    sends: int = 0


@dataclass
class _Shard:
    index: int
    pending: deque[_Part] = field(default_factory=deque)
    queued_rows: int = 0
    next_send: int = 0
    generation: int = 0
    process: BaseProcess | None = None
    conn: Connection | None = None
    receiver: threading.Thread | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot: dict[str, Any] = field(default_factory=dict)
    quarantined: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path, over every incarnation
    previous: dict[str, Any] = field(default_factory=dict)  # cumulative counters of dead incarnations
    restarts: int = 0
    failed_starts: int = 0  # consecutive incarnations that died within HEALTHY_AFTER_S
    last_error: str = ""  # the last crash's traceback (or exit code)
    restart_at: float = 0.0
    restart_delay: float = 0.0
    started_at: float = 0.0
    said_bye: bool = False
    shutdown_sent: bool = False
    fatal: str = ""
    seen_hello: bool = False
    restarting: bool = False
    sending: bool = False  # the send thread is writing a batch to the pipe
    flush_wanted: bool = False  # flush() asked: tell the worker after the last queued batch


class ShardedSender:
    """Router + supervised worker processes; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int | None = None,
        transport: str = "http",
        conf: str | None = None,
        table: str | None = None,
        allow_unconfirmed: bool = False,
    ) -> None:
        se = settings.sender
        self.workers = workers or se.workers or default_workers()
        self.transport = transport
        self.conf = conf or transport_conf(settings, transport)
        if self.conf.startswith("tcp") and not allow_unconfirmed:
            raise SenderError("ILP/TCP has no acknowledgements, so the sender cannot confirm rows; use http (or ws)")
        self.table = table or settings.table("trades")
        self.max_queue_rows = se.max_queue_rows
        self._restart_backoff_max = se.restart_backoff_max
        self._max_restarts = se.max_restarts
        self._drain_timeout = se.drain_timeout
        check_conf(self.conf)  # a conf every worker would refuse fails here, before any process starts
        self._lock = SpoolLock(se.spool_dir)
        self._config = WorkerConfig(
            shard=0,
            conf=self.conf,
            table=self.table,
            batch_rows=settings.ingest.batch_rows,
            flush_interval=settings.ingest.flush_interval,
            min_linger=settings.ingest.min_linger,
            spool_dir=se.spool_dir,
            spool_max_bytes=se.spool_max_bytes,
            spool_segment_bytes=se.spool_segment_bytes,
            spool_fsync=se.spool_fsync,
            spool_after=se.spool_after,
            spool_linger=se.spool_linger,
            retry_initial=se.retry_initial,
            retry_max=se.retry_max,
            ledger_dir=se.ledger_dir,
            log=logs.current(),  # the workers log like this process (format, level, file)
        )
        self._ctx = multiprocessing.get_context("spawn")
        self._router = ShardRouter(self.workers, self.table)
        self._shards = [_Shard(i) for i in range(self.workers)]
        self._cond = threading.Condition()
        self._next_id = 0
        self._closing = False
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._fatal: SenderError | None = None
        self._adopt: dict[int, tuple[int, ...]] = {}
        self.started_at = 0.0
        # The books (exact, kept by the router): rows per exchange.
        self.received: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.resent_rows = 0
        self.confirmed: dict[str, int] = {}
        self.spooled: dict[str, int] = {}
        self.dead_lettered: dict[str, int] = {}
        self.recovered_rows = 0
        self.backpressure_waits = 0
        self.backpressure_seconds = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Self:
        if self.conf.startswith(("ws::", "wss::")):
            check_websocket(self.conf)  # a server without the endpoint fails here, before any row is taken
        self._lock.acquire()
        orphans = sorted(i for i in shard_directories(self._config.spool_dir) if i >= self.workers)
        self._adopt = {w: tuple(orphans[w :: self.workers]) for w in range(self.workers)}
        if orphans:
            log.warning(
                "spool has shard directories %s beyond the %d worker(s); they are replayed by the current workers",
                ", ".join(f"shard-{i}" for i in orphans),
                self.workers,
            )
        self.started_at = time.monotonic()
        for shard in self._shards:
            self._spawn(shard)
        for shard in self._shards:
            t = threading.Thread(target=self._send_loop, args=(shard,), name=f"router-send-{shard.index}", daemon=True)
            t.start()
            self._threads.append(t)
        sup = threading.Thread(target=self._supervise, name="router-supervisor", daemon=True)
        sup.start()
        self._threads.append(sup)
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, shard: _Shard) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        config = replace(self._config, shard=shard.index, adopt=self._adopt.get(shard.index, ()))
        process = self._ctx.Process(target=worker_main, args=(config, child), name=f"pumpwatch-sender-{shard.index}")
        process.start()
        child.close()
        with self._cond:
            shard.generation += 1
            shard.process, shard.conn = process, parent
            shard.next_send = 0  # everything unacknowledged goes to the new worker, in order
            shard.said_bye = shard.shutdown_sent = shard.restarting = False
            shard.started_at = time.monotonic()
            shard.receiver = threading.Thread(
                target=self._receive_loop, args=(shard, parent, shard.generation), name=f"router-recv-{shard.index}"
            )
            shard.receiver.daemon = True
            shard.receiver.start()
            self._cond.notify_all()

    def worker_pids(self) -> list[int]:
        return [s.process.pid or 0 if s.process else 0 for s in self._shards]

    # -- intake -----------------------------------------------------------------------------
    def submit(self, batch: TradeBatch, *, timeout: float | None = None, validate: bool = True) -> None:
        """Take ``batch`` (validated first: ``ValidationError`` and nothing is taken; ``validate=False``
        skips that for a caller that has already run ``TradeBatch.validate`` on it).

        Blocks while the target shards' queues are full. With ``timeout``, raises
        ``BackpressureTimeoutError`` once it has waited that long; its ``accepted_rows`` says how many
        leading rows (whole chunks) were taken before that."""
        if self._closing:
            raise SenderClosedError("the sender is closed; the batch was not taken")
        self._raise_fatal()
        chunks = [
            self._router.split(
                batch.take(slice(i, i + CHUNK_ROWS)) if len(batch) > CHUNK_ROWS else batch, validate=validate
            )
            for i in range(0, len(batch), CHUNK_ROWS)
        ]
        deadline = None if timeout is None else time.monotonic() + timeout
        accepted = 0
        for parts in chunks:
            self._enqueue(parts, deadline, accepted)
            accepted += sum(p.rows for p in parts)

    def _enqueue(self, parts: list[ShardPart], deadline: float | None, accepted: int) -> None:
        with self._cond:
            waited_from = None
            while not all(self._fits(self._shards[p.shard], p.rows) for p in parts):
                if waited_from is None:
                    waited_from = time.monotonic()
                    self.backpressure_waits += 1
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.backpressure_seconds += time.monotonic() - waited_from
                    raise self._timeout_error(accepted)
                self._raise_fatal()
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
            if waited_from is not None:
                self.backpressure_seconds += time.monotonic() - waited_from
            for p in parts:
                shard = self._shards[p.shard]
                self._next_id += 1
                shard.pending.append(_Part(self._next_id, p.rows, p.exchange_rows, p.payload))
                shard.queued_rows += p.rows
                _add(self.received, p.exchange_rows)
            self._cond.notify_all()

    def _fits(self, shard: _Shard, rows: int) -> bool:
        return shard.queued_rows == 0 or shard.queued_rows + rows <= self.max_queue_rows

    def _timeout_error(self, accepted: int) -> BackpressureTimeoutError:
        alarms = [s.snapshot.get("alarm", "") for s in self._shards if s.snapshot.get("alarm")]
        full = [f"shard {s.index}: {s.queued_rows:,} rows" for s in self._shards if s.queued_rows]
        cause = f"; {alarms[0]}" if alarms else ""
        return BackpressureTimeoutError(
            f"queues full ({', '.join(full)}; max {self.max_queue_rows:,} per shard){cause}; "
            f"{accepted:,} leading rows were taken, the rest were not",
            accepted,
        )

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # -- router threads ---------------------------------------------------------------------
    def _send_loop(self, shard: _Shard) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    shard.conn is None
                    or shard.said_bye
                    or (shard.next_send >= len(shard.pending) and not shard.flush_wanted)
                ):
                    self._cond.wait(0.5)
                if self._stopped:
                    return
                conn = shard.conn
                assert conn is not None
                if shard.next_send >= len(shard.pending):  # all handed over: ask for the flush
                    shard.flush_wanted = False
                    part = None
                else:
                    part = shard.pending[shard.next_send]
                    shard.next_send += 1
                    shard.sending = True
                    part.sends += 1
                generation = shard.generation
            if part is None:
                with contextlib.suppress(OSError), shard.send_lock:
                    conn.send(("flush",))
                continue
            try:
                with shard.send_lock:
                    conn.send(("batch", part.batch_id, part.sends > 1))
                    conn.send_bytes(part.payload)
            except OSError:
                with self._cond:  # the worker died; wait for the supervisor to start the next one
                    shard.sending = False
                    self._cond.notify_all()
                    while not self._stopped and shard.generation == generation:
                        self._cond.wait(0.5)
                continue
            with self._cond:
                shard.sending = False
                self._cond.notify_all()
                if part.sends > 1:
                    self.resent_rows += part.rows
                _add(self.sent, part.exchange_rows)

    def _receive_loop(self, shard: _Shard, conn: Connection, generation: int) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            kind, *args = msg
            snapshot = args[-1]
            with self._cond:
                if generation != shard.generation:
                    return
                if snapshot:
                    shard.snapshot.update(snapshot)  # an acknowledgement may leave the histograms out
                    for item in snapshot.get("quarantined", []):
                        shard.quarantined[item["path"]] = item
                if kind == "hello" and not shard.seen_hello:
                    shard.seen_hello = True
                    self.recovered_rows += int(snapshot.get("spool_rows", 0))
                elif kind == "ack":
                    self._acked(shard, args[0], args[1])
                elif kind == "bye":
                    shard.said_bye = True
                elif kind == "fatal":
                    shard.fatal = args[0]
                    self._fatal = SenderError(f"worker {shard.index} stopped: {args[0]}")
                    log.error("sender worker %d: %s", shard.index, args[0])
                elif kind == "crash":
                    shard.last_error = args[0]
                self._cond.notify_all()

    def _acked(self, shard: _Shard, batch_ids: list[int], kind: str) -> None:
        book = {"confirmed": self.confirmed, "spooled": self.spooled, "dead": self.dead_lettered}[kind]
        for batch_id in batch_ids:
            # Acks come in order, so this is the head; a repeat from before a restart is not found.
            index = next((i for i, p in enumerate(shard.pending) if p.batch_id == batch_id), None)
            if index is None:
                continue
            part = shard.pending[index]
            del shard.pending[index]
            if index < shard.next_send:
                shard.next_send -= 1
            shard.queued_rows -= part.rows
            _add(book, part.exchange_rows)

    def _supervise(self) -> None:
        while not self._stopped:
            for shard in self._shards:
                process = shard.process
                if process is None or process.is_alive():
                    continue
                self._reap(shard, process)
            time.sleep(0.05)

    def _reap(self, shard: _Shard, process: BaseProcess) -> None:
        process.join()
        if shard.receiver is not None:
            shard.receiver.join(timeout=5)
        with self._cond:
            if shard.process is not process:
                return
            _fold(shard)
            shard.conn = None
            shard.process = None
            clean = shard.said_bye and not shard.pending
            self._cond.notify_all()
            if shard.fatal or (self._closing and clean) or self._stopped:
                return
            now = time.monotonic()
            healthy = now - shard.started_at > HEALTHY_AFTER_S
            shard.failed_starts = 1 if healthy else shard.failed_starts + 1
            if not shard.last_error:
                shard.last_error = f"exit code {process.exitcode}"
            if shard.failed_starts >= self._max_restarts:
                error = WorkerCrashLoopError(shard.index, shard.failed_starts, shard.last_error)
                shard.fatal = str(error)
                self._fatal = error
                self._cond.notify_all()
                log.error("%s\n%s", error, shard.last_error.rstrip())
                return
            shard.restart_delay = 0.2 if healthy else min(max(shard.restart_delay * 2, 0.2), self._restart_backoff_max)
            shard.restart_at = now + shard.restart_delay
            shard.restarts += 1
            shard.restarting = True
            last = shard.last_error.strip().splitlines()[-1] if shard.last_error.strip() else ""
            shard.last_error = ""
        log.error(
            "sender worker %d (pid %s) exited with %s (%s); restarting in %.1fs, re-sending %d unacknowledged row(s)",
            shard.index,
            process.pid,
            process.exitcode,
            last,
            shard.restart_delay,
            shard.queued_rows,
        )
        while time.monotonic() < shard.restart_at and not self._stopped:
            time.sleep(0.05)
        if self._stopped:
            with self._cond:
                shard.restarting = False
                self._cond.notify_all()
        else:
            self._spawn(shard)

    # -- draining ---------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Have every worker send what it buffers now (not at ``batch_rows``/``flush_interval``) and
        wait until every submitted row is confirmed or spooled; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for shard in self._shards:
                shard.flush_wanted = True  # the send thread asks once every queued batch is in the pipe
            self._cond.notify_all()
        with self._cond:
            while any(s.pending for s in self._shards):
                self._raise_fatal()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    @property
    def failure(self) -> SenderError | None:
        """Why the sender can take no more rows (a worker's fatal error or crash loop), or None."""
        return self._fatal

    def wait_ready(self, timeout: float, abort: threading.Event | None = None) -> bool:
        """Block until every worker has started (opened its spools, said hello) or the sender has
        failed; False on timeout or ``abort``. Producers that wait for this never pile rows up in the
        router while the workers are still importing."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(s.seen_hello or s.fatal for s in self._shards):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (abort is not None and abort.is_set()):
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    def watermark(self) -> int:
        """The id of the last part taken so far: ``wait_through(mark)`` later tells when every row
        submitted before this call has been answered by a worker (hybrid compare syncs on it)."""
        with self._cond:
            return self._next_id

    def wait_through(self, mark: int, timeout: float | None = None, *, hurry: bool = True) -> bool:
        """Block until no part with id ≤ ``mark`` is pending (confirmed, spooled or dead-lettered);
        False on timeout. ``hurry`` asks the workers to send what they buffer now."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if hurry:
                for shard in self._shards:
                    if any(p.batch_id <= mark for p in shard.pending):
                        shard.flush_wanted = True
                self._cond.notify_all()
            while any(p.batch_id <= mark for s in self._shards for p in s.pending):
                self._raise_fatal()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.05 if remaining is None else min(remaining, 0.05))
        return True

    def close(self, timeout: float | None = None, *, abort: threading.Event | None = None) -> SenderMetrics:
        """Stop intake, let every worker flush (or spool) what it holds and exit; return the books.

        Returns within ``timeout`` (default ``sender.drain_timeout``; ``abort`` set cuts it short)
        plus a short grace in which live workers are told to spool what they hold. Raises
        ``UnstoredRowsError`` with the exact count if rows are then left only in memory (e.g. the
        spool is full and QuestDB is down, or a worker could not start)."""
        if self._stopped:
            return self.metrics()
        self._closing = True
        deadline = time.monotonic() + (self._drain_timeout if timeout is None else timeout)
        while True:
            with self._cond:
                # A worker is told to drain once every queued batch is in its pipe (the shutdown
                # message must come after them); sent outside the lock, as pipes can block.
                ready = [
                    s
                    for s in self._shards
                    if s.conn is not None and not s.shutdown_sent and not s.sending and s.next_send >= len(s.pending)
                ]
                for shard in ready:
                    shard.shutdown_sent = True
                done = all(s.process is None and not s.restarting for s in self._shards)
                remaining = deadline - time.monotonic()
                if done or remaining <= 0 or (abort is not None and abort.is_set()):
                    self._stopped = True
                    self._cond.notify_all()
                    break
                if not ready:
                    self._cond.wait(min(remaining, 0.2))
            for shard in ready:
                self._send_shutdown(shard)
        self._stop_workers()
        for t in self._threads:
            t.join(timeout=5)
        self._lock.release()
        metrics = self.metrics()
        with self._cond:
            left: dict[str, int] = {}
            for shard in self._shards:
                for part in shard.pending:
                    _add(left, part.exchange_rows)
        if left:
            rows = sum(left.values())
            cause = f"; {self._fatal.args[0]}" if self._fatal else ""
            raise UnstoredRowsError(
                f"{rows:,} row(s) were neither confirmed by QuestDB nor written to the spool before the sender "
                f"stopped{cause}",
                rows,
                left,
            )
        return metrics

    def _stop_workers(self) -> None:
        """Workers still running after the drain: SIGTERM (each spools what it holds and exits), then
        SIGKILL after ``KILL_GRACE_S`` (a worker blocked in a request to a hung server)."""
        alive = [s.process for s in self._shards if s.process is not None and s.process.is_alive()]
        for process in alive:
            with contextlib.suppress(OSError):
                os.kill(process.pid or 0, signal.SIGTERM)
        grace = time.monotonic() + KILL_GRACE_S
        for process in alive:
            process.join(timeout=max(grace - time.monotonic(), 0.0))
            if process.is_alive():
                log.error("sender worker pid %s did not stop within %.0fs; killed", process.pid, KILL_GRACE_S)
                process.kill()
                process.join(timeout=5)
        for shard in self._shards:
            if shard.process is not None and not shard.process.is_alive():
                shard.process.join(timeout=1)

    def _send_shutdown(self, shard: _Shard) -> None:
        conn = shard.conn
        if conn is None:
            return
        try:
            with shard.send_lock:
                conn.send(("shutdown",))
        except OSError:
            pass  # died meanwhile: the supervisor restarts it and we ask again

    # -- metrics ----------------------------------------------------------------------------
    def metrics(self) -> SenderMetrics:
        with self._cond:
            return build_metrics(self)

    def shard_views(self) -> Iterator[tuple[_Shard, dict[str, Any]]]:
        """Each shard with its cumulative worker counters (all incarnations); caller holds the lock."""
        for shard in self._shards:
            yield shard, _cumulative(shard)


def default_workers() -> int:
    """Worker processes when none are configured: one per two cores. Every worker costs a core's
    share on its own (decode, ILP serialisation) and QuestDB on the same box needs the rest: on two
    cores one worker beats two (the pipeline contest in benchmarks/RESULTS.md), since two shards'
    interleaved requests also make QuestDB merge out-of-order rows."""
    return max(1, (os.cpu_count() or 1) // 2)


def _add(book: dict[str, int], rows: dict[str, int]) -> None:
    for key, n in rows.items():
        book[key] = book.get(key, 0) + n


_HISTOGRAMS = ("flush_ms", "arrival_ms")  # one distribution per worker, merged across its incarnations


def _fold(shard: _Shard) -> None:
    """A worker incarnation ended: keep its cumulative counters."""
    shard.previous = _cumulative(shard)
    shard.snapshot = {
        k: v for k, v in shard.snapshot.items() if k not in (*_CUMULATIVE, *_BY_EXCHANGE, *_HISTOGRAMS, "delay_ms")
    }


def _cumulative(shard: _Shard) -> dict[str, Any]:
    cur, prev = shard.snapshot, shard.previous
    out: dict[str, Any] = {k: int(cur.get(k, 0)) + int(prev.get(k, 0)) for k in _CUMULATIVE}
    for key in _BY_EXCHANGE:
        book = dict(prev.get(key, {}))
        _add(book, cur.get(key, {}))
        out[key] = book
    for key in _HISTOGRAMS:
        h = Histogram.from_dict(prev[key]) if key in prev else Histogram()
        if key in cur:
            h.merge(Histogram.from_dict(cur[key]))
        out[key] = h.to_dict()
    delay: dict[str, Histogram] = {ex: Histogram.from_dict(h) for ex, h in prev.get("delay_ms", {}).items()}
    for ex, h in cur.get("delay_ms", {}).items():
        _histogram(delay, ex).merge(Histogram.from_dict(h))
    out["delay_ms"] = {ex: h.to_dict() for ex, h in delay.items()}
    return out
