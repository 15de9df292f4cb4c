"""One sender worker process: batches from the router → QuestDB, or → the spool when it is down.

States: ``normal`` sends batches as they come (a request per ``batch_rows`` rows — once the
oldest has waited ``min_linger``, so a fast stream makes fewer, bigger requests — or per
``flush_interval``); after ``spool_after`` seconds of failed sends (or from the start, when
QuestDB does not answer its ``/ping`` then) every unconfirmed batch goes to the shard's spool and
the worker is ``spooling``: new batches are gathered for
``spool_linger`` and appended behind them as one record, and the spool is replayed a chunk of
records at a time, with backoff, until it is empty, then back to ``normal``. So the shard's order
is kept across an outage, and what an outage costs is one small record per ``spool_linger`` and,
per failed replay attempt, one request: a loaded chunk stays encoded in the client buffer between
attempts and a confirmed chunk is never sent again. Spool directories of shards beyond the
current worker count (``adopt``) are replayed too, so lowering ``--workers`` strands nothing.

A batch is acknowledged to the router only once QuestDB confirmed it or its spool record is on
disk; the router re-sends anything unacknowledged if this process dies. Any error that escapes
is reported to the router with its traceback before the process exits, so a crash loop can be
stopped and explained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import logging
import os
import queue
import random
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    FlushError,
    FlushRejectedError,
    SpoolError,
    SpoolFullError,
    TransportUnsupportedError,
)
from ..histogram import Histogram
from ..histogram import histogram_for as _histogram
from ..ingest.ilp import parse_conf
from ..logs import LogSpec
from ..logs import configure as configure_logging
from .codec import Decoded, combine, decode
from .ledger import Ledger
from .sinks import Sink, open_sink
from .spool import Spool, SpoolRecord

log = logging.getLogger(__name__)

# Keep one request well under the client's buffer limit.
MAX_REQUEST_BYTES = 64 << 20
# A backlog goes out in few big requests: QuestDB's CPU for 300,000 rows was 1.2-1.4 s in 50,000-row
# requests, 0.8-1.1 s in 100,000-row ones and 0.5-0.6 s in one (benchmarks/RESULTS.md).
MAX_REQUEST_ROWS = 300_000
INBOX_BATCHES = 8
# Replay sends spool records in requests of about this many rows.
REPLAY_CHUNK_ROWS = 200_000
# A coalesced spool record holds at most this many rows (one replay decode stays small).
MAX_RECORD_ROWS = 100_000
STATS_INTERVAL = 0.5
PROBE_TIMEOUT = 0.5  # a server that does not answer /ping this fast is not sent a replay chunk


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
    spool_linger: float = 0.25
    adopt: tuple[int, ...] = ()  # spool shards of a larger earlier worker count, replayed here
    ledger_dir: str = ""  # where the confirmation ledger goes ("": none)
    log: LogSpec | None = None  # None: warnings only, Python's format (a sender used as a library)


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``min(max, initial * 2**(attempt-1))`` scaled by U(0.5, 1)."""
    base = min(maximum, initial * (2 ** max(attempt - 1, 0)))
    return float(base * (rng or random).uniform(0.5, 1.0))


@dataclass
class _Batch:
    batch_id: int
    payload: bytes
    decoded: Decoded
    resent: bool = False  # the router sent it before, to a worker that died (it may be stored already)


@dataclass
class _Segment:
    """The spool segment being replayed: its records, and how many are confirmed already."""

    spool: Spool
    number: int
    records: list[SpoolRecord]
    done: int = 0


@dataclass
class _Chunk:
    """Records ``[start, end)`` of the segment, encoded in the sink and waiting to be confirmed."""

    start: int
    end: int
    decoded: list[Decoded]


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
    replayed_dead: dict[str, int] = field(default_factory=dict)  # spooled rows the server refused on replay
    flush_ms: Histogram = field(default_factory=Histogram)
    delay_ms: dict[str, Histogram] = field(default_factory=dict)
    # exchange timestamp → taken by this worker: with the feeds' lag and delay_ms it shows which
    # stage (venue and parsing, the hand-off, or batching and the request) holds the time
    arrival_ms: Histogram = field(default_factory=Histogram)


class Worker:
    """The worker's main loop (runs in the child process; the inbox is filled by a reader thread)."""

    def __init__(self, config: WorkerConfig, conn: Connection) -> None:
        self.config = config
        self.conn = conn
        self.state = "normal"
        self.stats = _Stats()
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=INBOX_BATCHES)
        root = Path(config.spool_dir)
        self.spool = self._open_spool(root / f"shard-{config.shard}")
        self.adopted = [self._open_spool(root / f"shard-{index}") for index in config.adopt]
        for spool in list(self.adopted):
            self._release_adopted(spool)  # nothing left in it (an earlier incarnation replayed it)
        self.dead_letter: Spool | None = None
        self.ledger = Ledger(config.ledger_dir, config.shard, config.table) if config.ledger_dir else None
        # Segments present at start may have been partly replayed by a worker that died: ledgered as resent.
        self._replay_upto = {str(s.directory): max(s.segment_numbers(), default=0) for s in self._spools()}
        self.sink: Sink = open_sink(config.conf, config.table)
        self.pending: list[_Batch] = []
        self.coalescing: list[_Batch] = []  # spooling: gathered for one record, not yet acknowledged
        self.overflow: list[_Batch] = []  # could not be spooled (spool full): held, not acknowledged
        self._segment: _Segment | None = None
        self._chunk: _Chunk | None = None
        self._isolate_until: tuple[int, int] | None = None  # (segment, record) replayed one record at a time
        self._first_pending = 0.0
        self._first_coalesced = 0.0
        self._failing_since: float | None = None
        self._attempt = 0
        self._next_attempt = 0.0
        self._alarm = ""
        self._draining = False
        self._flush_requested = False  # the router asked to send what is buffered now
        self._last_stats = 0.0
        self._rng = random.Random()
        self._probe = _probe_target(config.conf)
        if self._spooled_rows() or not _answers(self._probe):
            # Something to replay first, or QuestDB is down already: spool from the first batch on
            # instead of holding a flush interval of rows in memory until a flush fails.
            self.state = "spooling"

    def _open_spool(self, directory: Path) -> Spool:
        return Spool(
            directory,
            max_bytes=self.config.spool_max_bytes,
            segment_bytes=self.config.spool_segment_bytes,
            fsync=self.config.spool_fsync,
        )

    def _spools(self) -> list[Spool]:
        """Adopted spools first (older rows), then this shard's own."""
        return [*self.adopted, self.spool]

    def _spooled_rows(self) -> int:
        return sum(s.state.rows for s in self._spools())

    # -- messages to the router -------------------------------------------------------------
    def _snapshot(self, full: bool) -> dict[str, Any]:
        """Counters always; the latency histograms (an HDR encoding costs ~5 ms each) only when
        ``full``: the router keeps the last ones it got."""
        s = self.stats
        spools = self._spools()
        books = {
            "state": self.state,
            "rows_in": s.rows_in,
            "rows_confirmed": s.rows_confirmed,
            "rows_spooled": s.rows_spooled,
            "rows_dead": s.rows_dead,
            "rows_retried": s.rows_retried,
            "failed_flushes": s.failed_flushes,
            "flushes": s.flushes,
            "replayed": dict(s.replayed),
            "replayed_dead": dict(s.replayed_dead),
            "spool_rows": sum(sp.state.rows for sp in spools),
            "spool_bytes": sum(sp.state.bytes for sp in spools),
            "quarantined": [dataclasses.asdict(q) for sp in spools for q in sp.state.quarantined],
            "alarm": self._alarm,
        }
        if not full:
            return books
        return books | {
            "flush_ms": s.flush_ms.to_dict(),
            "delay_ms": {ex: h.to_dict() for ex, h in s.delay_ms.items()},
            "arrival_ms": s.arrival_ms.to_dict(),
        }

    def _send(self, kind: str, *args: Any) -> None:
        """A message with a snapshot; an acknowledgement carries the histograms at most once per
        ``STATS_INTERVAL`` (encoded with every acknowledgement they took 0.06 of the worker's
        0.32 CPU-s for the contest's 300,000 rows)."""
        now = time.monotonic()
        full = kind != "ack" or now - self._last_stats >= STATS_INTERVAL
        with contextlib.suppress(OSError):  # the router is gone: the spool and DEDUP cover us
            self.conn.send((kind, *args, self._snapshot(full)))
        if full:
            self._last_stats = now

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
                # Coalesce what has already arrived into one spool record, or into the request up to
                # its size caps; not what keeps arriving meanwhile, which would hold a due request back.
                for _ in range(self.inbox.qsize()):
                    if self.state == "normal" and self._request_full():
                        break
                    self._take_one(0)
            else:
                time.sleep(min(0.05, max(self._next_attempt - now, 0.0)))
            now = time.monotonic()
            if self.state == "normal":
                self._maybe_flush(now)
            if self.state == "spooling":
                self._maybe_spool_coalesced(now)
                if now >= self._next_attempt:
                    self._replay()
            if self.overflow and now >= self._next_attempt:
                self._spool_overflow()
            if now - self._last_stats >= STATS_INTERVAL:
                self._send("stats")
                if self.ledger is not None:
                    self.ledger.maybe_flush()

    def _drained(self) -> bool:
        """Done when nothing is held in memory: sent, or on disk — while QuestDB takes the replay it goes
        on (the drain bound stops it; the rest is replayed by the next start), after a failure it stops."""
        if self.overflow:
            return False
        if self.state == "normal":
            return not self.pending
        return not self.coalescing and (self._attempt > 0 or not self._spooled_rows())

    def _wait_time(self, now: float) -> float:
        if self._draining:
            return 0.0
        deadlines = [self._last_stats + STATS_INTERVAL]
        if self.pending and self.state == "normal":
            due = self.config.flush_interval
            if self.sink.rows >= self.config.batch_rows:
                due = min(due, self.config.min_linger)
            deadlines.append(max(self._first_pending + due, self._next_attempt))
        if self.state == "spooling":
            deadlines.append(self._next_attempt)
            if self.coalescing:
                deadlines.append(self._first_coalesced + self.config.spool_linger)
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
            self.request_drain()
            return
        batch: _Batch = item
        self.stats.rows_in += batch.decoded.rows
        if batch.decoded.rows:
            self.stats.arrival_ms.add_many((time.time_ns() - batch.decoded.ts_ns).astype(np.float64) / 1e6)
        if self.state == "normal":
            if not self.pending:
                self._first_pending = time.monotonic()
            self.sink.add(batch.decoded)
            self.pending.append(batch)
        else:
            if not self.coalescing:
                self._first_coalesced = time.monotonic()
            self.coalescing.append(batch)

    def request_drain(self) -> None:
        """SIGTERM or shutdown: finish what was received, flush or spool it, exit."""
        self._draining = True
        self._attempt = 0  # one more replay attempt before giving up on the spool
        self._next_attempt = 0.0

    # -- sending ----------------------------------------------------------------------------
    def _flush_due(self, now: float) -> bool:
        """The buffered request should go now (a retry still waits for its backoff)."""
        if not self.pending or now < self._next_attempt:
            return False
        age = now - self._first_pending
        return (
            self._draining
            or self._flush_requested
            # batch_rows is reached: send, unless rows arrive so fast that waiting min_linger makes one
            # bigger request (QuestDB's cost is largely per request: half the CPU per row at 20k rows)
            or (self.sink.rows >= self.config.batch_rows and age >= self.config.min_linger)
            or self._request_full()
            or age >= self.config.flush_interval
        )

    def _request_full(self) -> bool:
        return self.sink.rows >= MAX_REQUEST_ROWS or self.sink.nbytes >= MAX_REQUEST_BYTES

    def _maybe_flush(self, now: float) -> None:
        if not self.pending:
            self._flush_requested = False  # nothing buffered: the request is already met
            return
        if not self._flush_due(now):
            return
        rows = self.sink.rows
        started = time.perf_counter()
        try:
            self.sink.send()
        except TransportUnsupportedError:
            raise
        except FlushRejectedError as exc:
            if "does not exist" in exc.server_message:
                self._failed(exc, rows)  # a missing table is set-up, not bad data: keep and alarm
            else:
                self._isolate_rejected(exc)
            return
        except FlushError as exc:
            self._failed(exc, rows)
            return
        self.stats.flush_ms.add((time.perf_counter() - started) * 1000)
        self._flush_requested = False
        self._confirmed(self.pending)
        self.pending = []

    def _confirmed(self, batches: list[_Batch]) -> None:
        now_ns = time.time_ns()
        for b in batches:
            self._record_delay(b.decoded, now_ns)
            if self.ledger is not None:
                self.ledger.add(b.decoded, resent=b.resent)
        self.stats.rows_confirmed += sum(b.decoded.rows for b in batches)
        self.stats.flushes += 1
        self._recovered()
        self._ack(batches, "confirmed")

    def _record_delay(self, d: Decoded, now_ns: int) -> None:
        delay = (now_ns - d.ts_ns).astype(np.float64) / 1e6
        for code, exchange in enumerate(d.exchanges):
            sel = delay[d.exchange_codes == code] if len(d.exchanges) > 1 else delay
            if len(sel):
                _histogram(self.stats.delay_ms, exchange).add_many(sel)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("shard %d: QuestDB accepts writes again", self.config.shard)
        self._failing_since = None
        self._attempt = 0
        self._next_attempt = 0.0
        if not self.overflow:
            self._alarm = ""

    def _retry_later(self) -> None:
        """One more failed attempt: the next is due after the backoff, counted from *now* (a failed
        request may itself have taken seconds)."""
        self._attempt += 1
        self.stats.failed_flushes += 1
        self._next_attempt = time.monotonic() + backoff_delay(
            self._attempt, self.config.retry_initial, self.config.retry_max, self._rng
        )

    def _failed(self, exc: FlushError, rows: int) -> None:
        self.stats.rows_retried += rows
        self._retry_later()
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("shard %d: flush of %d rows failed, retrying with backoff: %s", self.config.shard, rows, exc)
        if self._draining or now - self._failing_since >= self.config.spool_after:
            self._spill()
        self._send("stats")

    def _spill(self) -> None:
        """QuestDB stayed down: move every unconfirmed batch to the spool, in order."""
        batches, self.pending = self.pending, []
        self.sink.discard()
        self.state = "spooling"
        log.warning("shard %d: QuestDB unavailable; spooling %d batch(es)", self.config.shard, len(batches))
        self._to_spool(batches)

    def _maybe_spool_coalesced(self, now: float) -> None:
        if self.coalescing and (
            self._draining
            or now - self._first_coalesced >= self.config.spool_linger
            or sum(b.decoded.rows for b in self.coalescing) >= MAX_RECORD_ROWS
        ):
            batches, self.coalescing = self.coalescing, []
            self._to_spool(batches)

    def _to_spool(self, batches: list[_Batch]) -> None:
        """Append ``batches`` behind everything spooled, a few records for many batches; acknowledge
        what is on disk. A full spool (bound or filesystem) keeps the rest in ``overflow``."""
        if self.overflow:
            self.overflow.extend(batches)
            return
        done = 0
        for group in _groups(batches, self.config.spool_segment_bytes // 2):
            rows = sum(b.decoded.rows for b in group)
            try:
                self.spool.append(combine([b.payload for b in group]), rows)
            except SpoolFullError as exc:
                if self._alarm != str(exc):
                    log.error("shard %d: %s", self.config.shard, exc)
                self._alarm = str(exc)
                self.overflow.extend(batches[done:])
                self._next_attempt = time.monotonic() + self.config.retry_max
                return
            done += len(group)
            self.stats.rows_spooled += rows
            self._ack(group, "spooled")

    def _spool_overflow(self) -> None:
        held, self.overflow = self.overflow, []
        self._to_spool(held)
        if not self.overflow:
            log.warning("shard %d: spool has room again; %d held batch(es) spooled", self.config.shard, len(held))
            self._alarm = ""

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
                self._dead_letter(b.payload, b.decoded.rows, alone.server_message)
                self._ack([b], "dead")
                continue
            except FlushError as transport:
                self.pending = batches[i:]
                self.sink.discard()
                for rest in self.pending:
                    self.sink.add(rest.decoded)
                self._failed(transport, self.sink.rows)
                return
            self._confirmed([b])
        log.warning("shard %d: a request was refused (%s); refused batches dead-lettered", self.config.shard, exc)

    def _dead_letter(self, payload: bytes, rows: int, reason: str) -> None:
        if self.dead_letter is None:
            self.dead_letter = Spool(
                Path(self.config.spool_dir) / "dead-letter" / f"shard-{self.config.shard}",
                max_bytes=1 << 62,
                segment_bytes=self.config.spool_segment_bytes,
                fsync="always",
            )
        self.dead_letter.append(payload, rows)
        with open(self.dead_letter.directory / "reasons.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"ts": time.time(), "rows": rows, "reason": reason}) + "\n")
        self.stats.rows_dead += rows
        self._alarm = f"server refused a batch of {rows} rows: {reason[:200]}"
        log.error("shard %d: dead-lettered %d rows: %s", self.config.shard, rows, reason)

    # -- replay -----------------------------------------------------------------------------
    def _replay(self) -> None:
        """Send the next chunk of spooled records (the one already encoded, after a failure)."""
        if self._chunk is None and not self._load_chunk():
            if self.coalescing or self.overflow:
                return
            if not _answers(self._probe):  # nothing spooled yet, and QuestDB still down: keep spooling
                self._retry_later()
                return
            self.state = "normal"
            self._recovered()
            log.warning("shard %d: spool drained", self.config.shard)
            self._send("replayed")
            return
        if (self._attempt or self._draining) and not _answers(self._probe):
            self._retry_later()  # down or hung: no request is made (and none can hang this loop)
            self._log_replay_failure("QuestDB does not answer /ping")
            return
        try:
            self.sink.send()
        except FlushRejectedError as exc:
            if "does not exist" in exc.server_message or self._isolate_until is not None:
                self._replay_refused(exc)
                return
            self._isolate_chunk(exc)
            return
        except FlushError as exc:
            self._retry_later()  # the chunk stays encoded in the sink for the next attempt
            self._log_replay_failure(str(exc))
            return
        self._replayed_chunk()

    def _log_replay_failure(self, reason: str) -> None:
        if self._attempt == 1 or self._attempt % 10 == 0:
            log.warning("shard %d: spool replay failed (attempt %d): %s", self.config.shard, self._attempt, reason)
        self._send("stats")

    def _load_chunk(self) -> bool:
        """Decode the next records (about ``REPLAY_CHUNK_ROWS``) into the sink; False when nothing is left."""
        seg = self._next_segment()
        if seg is None:
            return False
        one_at_a_time = self._isolate_until is not None and self._isolate_until >= (seg.number, seg.done)
        end = seg.done
        decoded: list[Decoded] = []
        while end < len(seg.records):
            d = decode(seg.records[end].payload)
            self.sink.add(d)
            decoded.append(d)
            end += 1
            if one_at_a_time or self.sink.rows >= REPLAY_CHUNK_ROWS or self.sink.nbytes >= MAX_REQUEST_BYTES:
                break
        self._chunk = _Chunk(seg.done, end, decoded)
        return True

    def _next_segment(self) -> _Segment | None:
        while True:
            seg = self._segment
            if seg is not None and seg.done < len(seg.records):
                return seg
            if seg is not None:
                seg.spool.remove(seg.number)
                self._segment = None
                self._release_adopted(seg.spool)
            source = next((s for s in self._spools() if len(s)), None)
            if source is None:
                return None
            oldest = source.oldest()
            assert oldest is not None
            number, records = oldest
            self._segment = _Segment(source, number, list(records))

    def _release_adopted(self, spool: Spool) -> None:
        """An adopted spool that is empty: close it and remove its directory (kept if it has a quarantine)."""
        if spool is self.spool or len(spool):
            return
        spool.close()
        self.adopted.remove(spool)
        with contextlib.suppress(OSError):
            spool.directory.rmdir()
        log.warning("shard %d: nothing (more) to replay in %s", self.config.shard, spool.directory)

    def _past_chunk(self) -> _Segment:
        """The loaded chunk is finished (confirmed or dead-lettered): move the segment's mark past it."""
        seg, chunk = self._segment, self._chunk
        assert seg is not None and chunk is not None
        seg.done = chunk.end
        self._chunk = None
        if self._isolate_until is not None and (seg.number, seg.done) > self._isolate_until:
            self._isolate_until = None
        return seg

    def _replayed_chunk(self) -> None:
        chunk = self._chunk
        assert chunk is not None
        seg = self._past_chunk()
        now_ns = time.time_ns()
        again = seg.number <= self._replay_upto.get(str(seg.spool.directory), 0)
        for d in chunk.decoded:
            self._record_delay(d, now_ns)
            _count(self.stats.replayed, d.exchange_rows())
            if self.ledger is not None:
                self.ledger.add(d, resent=again)
        if seg.done == len(seg.records):  # the whole segment is confirmed: delete it now
            seg.spool.remove(seg.number)
            self._segment = None
            self._release_adopted(seg.spool)
        self._recovered()
        self._send("replayed")

    def _isolate_chunk(self, exc: FlushRejectedError) -> None:
        """A replay request was refused: go through its records one at a time."""
        seg, chunk = self._segment, self._chunk
        assert seg is not None and chunk is not None
        self.sink.discard()
        self._chunk = None
        self._isolate_until = (seg.number, chunk.end - 1)
        log.warning("shard %d: spool replay refused (%s); replaying record by record", self.config.shard, exc)

    def _replay_refused(self, exc: FlushRejectedError) -> None:
        """A missing table waits for the schema (alarm, retry); a record refused alone is dead-lettered."""
        if "does not exist" in exc.server_message:
            self._alarm = f"QuestDB refuses the rows: {exc.server_message[:200]}"
            self._retry_later()
            self._log_replay_failure(exc.server_message)
            return
        seg, chunk = self._segment, self._chunk
        assert seg is not None and chunk is not None
        self.sink.discard()
        for index in range(chunk.start, chunk.end):
            record = seg.records[index]
            self._dead_letter(record.payload, record.rows, exc.server_message)
        for d in chunk.decoded:
            _count(self.stats.replayed_dead, d.exchange_rows())
        self._past_chunk()
        self._send("replayed")

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.flush()
        for spool in self._spools():
            spool.close()
        if self.dead_letter is not None:
            self.dead_letter.close()
        self.sink.close()


def _count(book: dict[str, int], rows: dict[str, int]) -> None:
    for ex, n in rows.items():
        book[ex] = book.get(ex, 0) + n


def _groups(batches: list[_Batch], max_bytes: int) -> list[list[_Batch]]:
    """Consecutive batches in groups of at most ``MAX_RECORD_ROWS`` rows and about ``max_bytes``
    (half a segment, so a record always fits a segment and a small spool bound), all for one
    table — one record each."""
    groups: list[list[_Batch]] = []
    rows = size = 0
    for b in batches:
        if (
            not groups
            or rows + b.decoded.rows > MAX_RECORD_ROWS
            or size + len(b.payload) > max_bytes
            or b.decoded.table != groups[-1][0].decoded.table
        ):
            groups.append([])
            rows = size = 0
        groups[-1].append(b)
        rows += b.decoded.rows
        size += len(b.payload)
    return groups


def _probe_target(conf: str) -> tuple[str, int] | None:
    """Host and port to ``/ping`` before a replay retry (plain HTTP only; None: no probe)."""
    proto, keys = parse_conf(conf)
    host, _, port = keys.get("addr", "").rpartition(":")
    if proto != "http" or not host or not port.isdigit():
        return None
    return host, int(port)


def _answers(target: tuple[str, int] | None) -> bool:
    """Does QuestDB answer its ``/ping`` within ``PROBE_TIMEOUT``? A stopped (SIGSTOP) server accepts
    the connection and never answers: a replay request to it would block this loop for the whole
    request timeout, while intake waits."""
    if target is None:
        return True
    conn = http.client.HTTPConnection(*target, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


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
        inbox.put(("batch", _Batch(msg[1], payload, decode(payload), resent=len(msg) > 2 and bool(msg[2]))))


def worker_main(config: WorkerConfig, conn: Connection) -> None:
    """Process entry point. Exit codes: 0 drained, 3 fatal (reported, not restarted), 1 crashed
    (traceback reported; the router restarts it up to ``sender.max_restarts`` times in a row)."""
    if config.log is not None:
        configure_logging(config.log.for_process(f"worker-{config.shard}"))
    else:
        logging.basicConfig(
            level=logging.WARNING, format=f"%(asctime)s worker-{config.shard} %(levelname)s %(message)s"
        )
    # Ctrl-C reaches the whole process group; the router decides when to drain us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker: Worker | None = None
    code = 1
    try:
        worker = Worker(config, conn)
        signal.signal(signal.SIGTERM, lambda *_: worker.request_drain() if worker else None)
        threading.Thread(target=_reader, args=(conn, worker.inbox), name="reader", daemon=True).start()
        code = worker.run()
    except (TransportUnsupportedError, SpoolError) as exc:
        if isinstance(exc, SpoolFullError):  # only reached at start-up: a full disk is not fatal
            _report(conn, "crash", traceback.format_exc())
        else:
            _report(conn, "fatal", str(exc))
            code = 3
    except BaseException:
        _report(conn, "crash", traceback.format_exc())
    finally:
        if worker is not None:
            try:
                worker.close()
            except Exception as exc:  # closing must not turn a drained exit into a crash
                log.error("shard %d: error while closing: %s", config.shard, exc)
    os._exit(code)


def _report(conn: Connection, kind: str, text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        conn.send((kind, text, {}))
