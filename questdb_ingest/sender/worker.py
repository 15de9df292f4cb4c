"""One sender worker process: batches from the router → QuestDB, or → the spool when it is down.

States: ``normal`` sends batches as they come (a request per ``batch_rows`` rows — once the
oldest has waited ``min_linger``, so a fast stream makes fewer, bigger requests — or per
``flush_interval``); after ``spool_after`` seconds of failed sends every unconfirmed batch goes
to the shard's spool and the worker is ``spooling``: new batches are appended behind them and the
oldest segment is replayed with backoff until the spool is empty, then back to ``normal``. So the
shard's order is kept across an outage. A batch is acknowledged to the router only once QuestDB
confirmed it or its spool record is on disk; the router re-sends anything unacknowledged if this
process dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FlushError, FlushRejectedError, SpoolError, SpoolFullError, TransportUnsupportedError
from .codec import Decoded, decode
from .histogram import Histogram
from .sinks import Sink, open_sink
from .spool import Spool

log = logging.getLogger(__name__)

# Keep one request well under the client's buffer limit.
MAX_REQUEST_BYTES = 64 << 20
MAX_REQUEST_ROWS = 100_000
INBOX_BATCHES = 8
# Replay sends a spool segment in requests of about this many rows.
REPLAY_CHUNK_ROWS = 200_000
STATS_INTERVAL = 0.5


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, picklable for ``spawn``."""

    shard: int
    conf: str
    table: str
    batch_rows: int
    flush_interval: float
    spool_dir: str
    spool_max_bytes: int
    spool_segment_bytes: int
    spool_fsync: str
    spool_after: float
    retry_initial: float
    retry_max: float
    min_linger: float = 0.0
    log_level: int = logging.WARNING


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``min(max, initial * 2**(attempt-1))`` scaled by U(0.5, 1)."""
    base = min(maximum, initial * (2 ** max(attempt - 1, 0)))
    return float(base * (rng or random).uniform(0.5, 1.0))


@dataclass
class _Batch:
    batch_id: int
    payload: bytes
    decoded: Decoded


@dataclass
class _Stats:
    rows_in: int = 0
    rows_confirmed: int = 0
    rows_spooled: int = 0
    rows_dead: int = 0
    rows_retried: int = 0
    failed_flushes: int = 0
    flushes: int = 0
    replayed: dict[str, int] = field(default_factory=dict)
    flush_ms: Histogram = field(default_factory=Histogram)
    delay_ms: dict[str, Histogram] = field(default_factory=dict)


class Worker:
    """The worker's main loop (runs in the child process; the inbox is filled by a reader thread)."""

    def __init__(self, config: WorkerConfig, conn: Connection) -> None:
        self.config = config
        self.conn = conn
        self.state = "normal"
        self.stats = _Stats()
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=INBOX_BATCHES)
        self.spool = Spool(
            Path(config.spool_dir) / f"shard-{config.shard}",
            max_bytes=config.spool_max_bytes,
            segment_bytes=config.spool_segment_bytes,
            fsync=config.spool_fsync,
        )
        self.dead_letter: Spool | None = None
        self.sink: Sink = open_sink(config.conf, config.table)
        self.pending: list[_Batch] = []
        self.overflow: list[_Batch] = []  # could not be spooled (spool full): held, not acknowledged
        self._first_pending = 0.0
        self._failing_since: float | None = None
        self._attempt = 0
        self._next_attempt = 0.0
        self._alarm = ""
        self._draining = False
        self._flush_requested = False  # the router asked to send what is buffered now
        self._last_stats = 0.0
        self._rng = random.Random()
        if len(self.spool):
            self.state = "spooling"

    # -- messages to the router -------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "state": self.state,
            "rows_in": s.rows_in,
            "rows_confirmed": s.rows_confirmed,
            "rows_spooled": s.rows_spooled,
            "rows_dead": s.rows_dead,
            "rows_retried": s.rows_retried,
            "failed_flushes": s.failed_flushes,
            "flushes": s.flushes,
            "replayed": dict(s.replayed),
            "spool_rows": self.spool.state.rows,
            "spool_bytes": self.spool.state.bytes,
            "quarantined": [dataclasses.asdict(q) for q in self.spool.state.quarantined],
            "flush_ms": s.flush_ms.to_dict(),
            "delay_ms": {ex: h.to_dict() for ex, h in s.delay_ms.items()},
            "alarm": self._alarm,
        }

    def _send(self, kind: str, *args: Any) -> None:
        with contextlib.suppress(OSError):  # the router is gone: the spool and DEDUP cover us
            self.conn.send((kind, *args, self._snapshot()))
        self._last_stats = time.monotonic()

    def _ack(self, batches: list[_Batch], kind: str) -> None:
        if batches:
            self._send("ack", [b.batch_id for b in batches], kind)

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> int:
        self._send("hello")
        while True:
            now = time.monotonic()
            if self._draining and self.inbox.empty() and self._drained():
                self._send("bye")
                return 0
            if not self.overflow:
                self._take_one(self._wait_time(now))
                # Under load, coalesce whatever has already arrived into the same request.
                while self.state == "normal" and not self.inbox.empty() and self.sink.nbytes < MAX_REQUEST_BYTES:
                    self._take_one(0)
            else:
                time.sleep(min(0.05, max(self._next_attempt - now, 0.0)))
            now = time.monotonic()
            if self.state == "normal":
                self._maybe_flush(now)
            if self.state == "spooling" and now >= self._next_attempt:
                self._replay(now)
            if self.overflow and now >= self._next_attempt:
                self._spool_overflow()
            if now - self._last_stats >= STATS_INTERVAL:
                self._send("stats")

    def _drained(self) -> bool:
        """Done when nothing is held in memory: sent, or on disk after a failed last attempt."""
        if self.overflow:
            return False
        if self.state == "normal":
            return not self.pending
        return self._attempt > 0 or len(self.spool) == 0  # tried once since draining and failed

    def _wait_time(self, now: float) -> float:
        deadlines = [self._last_stats + STATS_INTERVAL]
        if self.pending and self.state == "normal":
            due = self.config.flush_interval
            if self.sink.rows >= self.config.batch_rows:
                due = min(due, self.config.min_linger)
            deadlines.append(max(self._first_pending + due, self._next_attempt))
        if self.state == "spooling":
            deadlines.append(self._next_attempt)
        if self._draining:
            return 0.0
        return min(max(min(deadlines) - now, 0.0), 0.25)

    def _take_one(self, timeout: float) -> None:
        try:
            kind, item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        if kind == "flush":
            self._flush_requested = True
            return
        if kind in ("shutdown", "eof"):
            self._draining = True
            if self.state == "spooling":
                self._attempt = 0  # one more replay attempt before giving up on draining
            self._next_attempt = 0.0
            return
        batch: _Batch = item
        self.stats.rows_in += batch.decoded.rows
        if self.state == "normal":
            if not self.pending:
                self._first_pending = time.monotonic()
            self.sink.add(batch.decoded)
            self.pending.append(batch)
        else:
            self._to_spool([batch])

    def request_drain(self) -> None:
        """SIGTERM: finish what was received, flush or spool it, exit."""
        self._draining = True
        self._next_attempt = 0.0

    # -- sending ----------------------------------------------------------------------------
    def _maybe_flush(self, now: float) -> None:
        if not self.pending:
            self._flush_requested = False  # nothing buffered: the request is already met
            return
        if now < self._next_attempt:
            return
        age = now - self._first_pending
        due = (
            self._draining
            or self._flush_requested
            # batch_rows is reached: send, unless rows arrive so fast that waiting min_linger makes one
            # bigger request (QuestDB's cost is largely per request: half the CPU per row at 20k rows)
            or (self.sink.rows >= self.config.batch_rows and age >= self.config.min_linger)
            or self.sink.rows >= MAX_REQUEST_ROWS
            or self.sink.nbytes >= MAX_REQUEST_BYTES
            or age >= self.config.flush_interval
        )
        if not due:
            return
        rows = self.sink.rows
        started = time.perf_counter()
        try:
            self.sink.send()
        except TransportUnsupportedError:
            raise
        except FlushRejectedError as exc:
            if "does not exist" in exc.server_message:
                self._failed(exc, rows, now)  # a missing table is set-up, not bad data: keep and alarm
            else:
                self._isolate_rejected(exc)
            return
        except FlushError as exc:
            self._failed(exc, rows, now)
            return
        self.stats.flush_ms.add((time.perf_counter() - started) * 1000)
        self._flush_requested = False
        self._confirmed(self.pending)
        self.pending = []

    def _confirmed(self, batches: list[_Batch]) -> None:
        now_ns = time.time_ns()
        for b in batches:
            d = b.decoded
            self._record_delay(d, now_ns)
        rows = sum(b.decoded.rows for b in batches)
        self.stats.rows_confirmed += rows
        self.stats.flushes += 1
        self._recovered()
        self._ack(batches, "confirmed")

    def _record_delay(self, d: Decoded, now_ns: int) -> None:
        delay = (now_ns - d.ts_ns).astype(np.float64) / 1e6
        for code, exchange in enumerate(d.exchanges):
            sel = delay[d.exchange_codes == code] if len(d.exchanges) > 1 else delay
            if len(sel):
                self.stats.delay_ms.setdefault(exchange, Histogram()).add_many(sel)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("shard %d: QuestDB accepts writes again", self.config.shard)
        self._failing_since = None
        self._attempt = 0
        self._next_attempt = 0.0
        self._alarm = ""

    def _failed(self, exc: FlushError, rows: int, now: float) -> None:
        self.stats.failed_flushes += 1
        self.stats.rows_retried += rows
        self._attempt += 1
        self._next_attempt = now + self._backoff()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("shard %d: flush of %d rows failed, retrying with backoff: %s", self.config.shard, rows, exc)
        if self._draining or now - self._failing_since >= self.config.spool_after:
            self._spill()
        self._send("stats")

    def _backoff(self) -> float:
        return backoff_delay(self._attempt, self.config.retry_initial, self.config.retry_max, self._rng)

    def _spill(self) -> None:
        """QuestDB stayed down: move every unconfirmed batch to the spool, in order."""
        batches, self.pending = self.pending, []
        self.sink.discard()
        self.state = "spooling"
        log.warning("shard %d: QuestDB unavailable; spooling %d batch(es)", self.config.shard, len(batches))
        self._to_spool(batches)

    def _to_spool(self, batches: list[_Batch]) -> None:
        done: list[_Batch] = []
        for i, b in enumerate(batches):
            if self.overflow:
                self.overflow.extend(batches[i:])
                break
            try:
                self.spool.append(b.payload, b.decoded.rows)
            except SpoolFullError as exc:
                self._alarm = str(exc)
                log.error("shard %d: %s", self.config.shard, exc)
                self.overflow.extend(batches[i:])
                break
            done.append(b)
            self.stats.rows_spooled += b.decoded.rows
        self._ack(done, "spooled")

    def _spool_overflow(self) -> None:
        held, self.overflow = self.overflow, []
        self._to_spool(held)
        if self.overflow:
            self._next_attempt = time.monotonic() + self.config.retry_max

    def _isolate_rejected(self, exc: FlushRejectedError) -> None:
        """The server refused a request: resend batch by batch; dead-letter the ones refused alone."""
        batches, self.pending = self.pending, []
        self.sink.discard()
        for i, b in enumerate(batches):
            self.sink.add(b.decoded)
            try:
                self.sink.send()
            except FlushRejectedError as alone:
                self.sink.discard()
                self._dead_letter(b, alone.server_message)
                continue
            except FlushError as transport:
                self.pending = batches[i:]
                self.sink.discard()
                for rest in self.pending:
                    self.sink.add(rest.decoded)
                self._failed(transport, self.sink.rows, time.monotonic())
                return
            self._confirmed([b])
        log.warning("shard %d: a request was refused (%s); refused batches dead-lettered", self.config.shard, exc)

    def _dead_letter(self, batch: _Batch, reason: str) -> None:
        if self.dead_letter is None:
            self.dead_letter = Spool(
                Path(self.config.spool_dir) / "dead-letter" / f"shard-{self.config.shard}",
                max_bytes=1 << 62,
                segment_bytes=self.config.spool_segment_bytes,
                fsync="always",
            )
        self.dead_letter.append(batch.payload, batch.decoded.rows)
        with open(self.dead_letter.directory / "reasons.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"ts": time.time(), "rows": batch.decoded.rows, "reason": reason}) + "\n")
        self.stats.rows_dead += batch.decoded.rows
        self._alarm = f"server refused a batch of {batch.decoded.rows} rows: {reason[:200]}"
        log.error("shard %d: dead-lettered %d rows: %s", self.config.shard, batch.decoded.rows, reason)
        self._ack([batch], "dead")

    # -- replay -----------------------------------------------------------------------------
    def _replay(self, now: float) -> None:
        """Send the oldest spool segment; delete it once every row is confirmed."""
        oldest = self.spool.oldest()
        if oldest is None:
            self.state = "normal"
            self._recovered()
            return
        number, records = oldest
        replayed: dict[str, int] = {}
        sent: list[Decoded] = []
        try:
            for record in records:
                d = decode(record.payload)
                self.sink.add(d)
                sent.append(d)
                for ex, n in d.exchange_rows().items():
                    replayed[ex] = replayed.get(ex, 0) + n
                if self.sink.rows >= REPLAY_CHUNK_ROWS or self.sink.nbytes >= MAX_REQUEST_BYTES:
                    self.sink.send()
            self.sink.send()
        except FlushError as exc:
            self.sink.discard()
            self._attempt += 1
            self.stats.failed_flushes += 1
            self._next_attempt = now + self._backoff()
            if self._attempt == 1 or self._attempt % 10 == 0:
                log.warning("shard %d: spool replay failed (attempt %d): %s", self.config.shard, self._attempt, exc)
            self._send("stats")
            return
        self.spool.remove(number)
        now_ns = time.time_ns()
        for d in sent:
            self._record_delay(d, now_ns)
        for ex, n in replayed.items():
            self.stats.replayed[ex] = self.stats.replayed.get(ex, 0) + n
        self._attempt = 0
        self._next_attempt = 0.0
        if len(self.spool) == 0 and not self.overflow:
            self.state = "normal"
            self._recovered()
            log.warning("shard %d: spool drained", self.config.shard)
        self._send("replayed")

    def close(self) -> None:
        self.spool.close()
        if self.dead_letter is not None:
            self.dead_letter.close()
        self.sink.close()


def _reader(conn: Connection, inbox: queue.Queue[tuple[str, Any]]) -> None:
    """Receive and decode batches while the main thread sends (the client releases the GIL)."""
    while True:
        try:
            msg = conn.recv()
            if msg[0] == "shutdown":
                inbox.put(("shutdown", None))
                return
            if msg[0] == "flush":
                inbox.put(("flush", None))
                continue
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            inbox.put(("eof", None))
            return
        inbox.put(("batch", _Batch(msg[1], payload, decode(payload))))


def worker_main(config: WorkerConfig, conn: Connection) -> None:
    """Process entry point."""
    logging.basicConfig(level=config.log_level, format=f"%(asctime)s worker-{config.shard} %(levelname)s %(message)s")
    # Ctrl-C reaches the whole process group; the router decides when to drain us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker: Worker | None = None
    try:
        worker = Worker(config, conn)
        signal.signal(signal.SIGTERM, lambda *_: worker.request_drain() if worker else None)
        threading.Thread(target=_reader, args=(conn, worker.inbox), name="reader", daemon=True).start()
        code = worker.run()
    except (TransportUnsupportedError, SpoolError) as exc:
        with contextlib.suppress(OSError):
            conn.send(("fatal", str(exc), {}))
        code = 3
    finally:
        if worker is not None:
            worker.close()
    os._exit(code)
