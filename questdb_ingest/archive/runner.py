"""The archive runner: files → formats → the project's writers → QuestDB, exactly once.

Per file: hash it; skip it when ``ingest_state`` says this hash is complete (``reprocess``
forces it); resume from the watermark when a run died mid-file; start over when the hash
changed. Then batches of ``archive.batch_rows`` lines are decoded, written, **confirmed** by
QuestDB, and only then is the watermark moved past them (with the counts). Bad lines go to the
file's reject log (``<reject_dir>/<name>.rejects.jsonl``: line, reason, raw) and are counted.
A batch QuestDB cannot take is retried with the connectors' backoff; a file that keeps failing
is marked ``failed`` with the reason and the run goes on with the others.

Files run ``archive.parallel_files`` at a time (threads: the client sends with the GIL
released, so one file's request overlaps another's decoding). After a scalp file is in, its
minutes' 1-minute bars are recomputed from ``scalp_ticks`` in QuestDB (seed 004 §4.2), so a
minute split over two files is whole once both are in.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql

from ..config import Settings
from ..connectors.connection import Backoff
from ..connectors.replay.session import instruments_path, read_instruments
from ..errors import ArchiveError, ArchiveFormatError, FlushError, FlushRejectedError, WriteError
from ..ingest.writer import FrameWriter, TableWriter, TradeWriter
from ..store.pg import connect
from ..store.queries import wait_applied, wal_sequencer_txn
from .formats import DECODERS, SCHEMA_VERSION, Decoded, Options, Reject
from .sources import detect_format, expand, file_digest, first_line, numbered_lines, open_text
from .state import FileState, StateStore, exclusive

MINUTE_NS = 60 * 10**9
_BARS_TABLE = "scalp_1m_bars"


@dataclass
class FileReport:
    """What one file's ingest did (also the rows of ``--json``)."""

    path: str
    format: str
    action: str  # ingested | resumed | reingested | skipped | failed | dry_run
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    watermark: int = 0
    seconds: float = 0.0
    bytes: int = 0
    error: str = ""
    reject_log: str = ""
    span_ns: tuple[int, int] | None = None


@dataclass
class RunReport:
    run_id: str
    dry_run: bool
    files: list[FileReport] = field(default_factory=list)
    low_coverage_bars: int = 0
    bars: int = 0
    seconds: float = 0.0

    def count(self, action: str) -> int:
        return sum(1 for f in self.files if f.action == action)

    @property
    def rows_written(self) -> int:
        return sum(f.rows_written for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.action == "failed"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out |= {"rows_written": self.rows_written, "rows_rejected": self.rows_rejected}
        out["actions"] = {a: self.count(a) for a in sorted({f.action for f in self.files})}
        return out


@dataclass(frozen=True)
class Progress:
    """A progress event: a file started or finished, or ``rows``/``bytes`` more were done."""

    kind: str  # start | rows | done
    path: str
    rows: int = 0
    bytes: int = 0
    report: FileReport | None = None


class _CancelledError(Exception):
    """``stop()`` was called: the file ends at its last committed watermark."""


class ArchiveRunner:
    """Ingests archive files; ``run`` returns a ``RunReport`` (never raises for one bad file)."""

    def __init__(
        self,
        settings: Settings,
        *,
        fmt: str = "",
        options: Options | None = None,
        reprocess: bool = False,
        dry_run: bool = False,
        parallel: int | None = None,
        batch_rows: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.settings = settings
        self.fmt = fmt
        self.options = options or Options()
        self.reprocess = reprocess
        self.dry_run = dry_run
        self.parallel = parallel or settings.archive.parallel_files
        self.batch_rows = batch_rows or settings.archive.batch_rows
        self.on_progress = on_progress or (lambda _p: None)
        self.run_id = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._conf = settings.client_conf()

    def stop(self) -> None:
        """Stop after the batches in flight (their watermark is committed; a rerun resumes)."""
        self._stop.set()

    # ------------------------------------------------------------------ run
    def run(self, paths: Sequence[Path]) -> RunReport:
        started = time.monotonic()
        files = expand(list(paths))
        report = RunReport(self.run_id, self.dry_run)
        with contextlib.ExitStack() as stack:
            if not self.dry_run:
                stack.enter_context(exclusive(self.settings))
            self._run(files, report)
        report.seconds = time.monotonic() - started
        return report

    def _run(self, files: list[Path], report: RunReport) -> None:
        with connect(self.settings) as conn:
            state = None if self.dry_run else StateStore(conn, self.settings)
            known = state.latest() if state is not None else {}
            with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(files) or 1))) as pool:
                futures = [pool.submit(self._one, f, state, known.get(str(f))) for f in files]
                report.files = [fut.result() for fut in futures]
            if not self.dry_run:
                spans = [f.span_ns for f in report.files if f.format == "scalp" and f.span_ns and f.rows_written]
                if spans:
                    report.bars, report.low_coverage_bars = self._bar_summary(conn, spans)

    # ------------------------------------------------------------------ one file
    def _one(self, path: Path, state: StateStore | None, previous: FileState | None) -> FileReport:
        fmt = self.fmt
        try:
            fmt = fmt or detect_format(path)
            size, digest = file_digest(path)
        except (ArchiveFormatError, OSError) as exc:
            out = FileReport(str(path), fmt or "?", "failed", error=str(exc))
            self.on_progress(Progress("done", str(path), report=out))
            return out
        action, skip, carried = self._plan(previous, digest)
        if action == "skipped":
            assert previous is not None
            out = FileReport(str(path), fmt, "skipped", watermark=previous.watermark)  # nothing done this run
            self.on_progress(Progress("done", str(path), report=out))
            return out
        self.on_progress(Progress("start", str(path), bytes=size))
        begun = time.time_ns() // 1000
        current = FileState(
            str(path), fmt, size, digest, "running", *carried, watermark=skip, started_at_us=begun,
            run_id=self.run_id, options=self.options.to_json(),
        )  # fmt: skip
        out = FileReport(str(path), fmt, "dry_run" if self.dry_run else action, *carried, watermark=skip, bytes=size)
        rejects = RejectLog(self._reject_path(path), keep_through=skip)
        out.reject_log = str(rejects.path)
        t0 = time.monotonic()
        try:
            if state is not None:
                current = state.put(current)
            self._ingest(path, fmt, skip, current, state, out, rejects)
            if fmt == "scalp" and not self.dry_run and out.rows_written:
                out.span_ns = self._recompute_bars(str(path))
            out.seconds = time.monotonic() - t0
            if state is not None:
                state.put(
                    self._state_of(current, out).replace(
                        status="complete", finished_at_us=time.time_ns() // 1000, seconds=out.seconds
                    )
                )
        except _CancelledError:
            out.action, out.error = "failed", "stopped before the end of the file (a rerun resumes at the watermark)"
        except (ArchiveError, WriteError, OSError, psycopg.Error, ValueError) as exc:
            out.action, out.error = "failed", f"{type(exc).__name__}: {exc}"
            if state is not None:
                # If even that fails the state stays 'running' at its last watermark: a rerun resumes there.
                with contextlib.suppress(psycopg.Error):
                    state.put(self._state_of(current, out).replace(status="failed", error=out.error[:2000]))
        finally:
            rejects.close()
            out.seconds = time.monotonic() - t0
        self.on_progress(Progress("done", str(path), report=out))
        return out

    def _plan(self, previous: FileState | None, digest: str) -> tuple[str, int, tuple[int, int, int]]:
        """(action, lines to skip, carried counts) for a file given its last state."""
        if previous is None or self.dry_run:
            return "ingested", 0, (0, 0, 0)
        if previous.sha256 != digest:
            return "reingested", 0, (0, 0, 0)
        if self.reprocess or previous.status == "rolled_back":
            return "reingested", 0, (0, 0, 0)
        if previous.status == "complete":
            return "skipped", 0, (0, 0, 0)
        carried = (previous.rows_read, previous.rows_written, previous.rows_rejected)
        return ("resumed", previous.watermark, carried) if previous.watermark else ("ingested", 0, (0, 0, 0))

    def _state_of(self, current: FileState, out: FileReport) -> FileState:
        return current.replace(
            rows_read=out.rows_read,
            rows_written=out.rows_written,
            rows_rejected=out.rows_rejected,
            watermark=out.watermark,
        )

    def _reject_path(self, path: Path) -> Path:
        """One reject log per source file; the path's hash keeps two ``x.jsonl`` apart."""
        tag = hashlib.sha256(str(path).encode()).hexdigest()[:8]
        kind = "dry-run.rejects" if self.dry_run else "rejects"
        return Path(self.settings.archive.reject_dir) / f"{path.name}.{tag}.{kind}.jsonl"

    def _batches(self, path: Path, skip: int) -> Iterator[list[tuple[int, bytes]]]:
        with open_text(path) as fh:
            batch: list[tuple[int, bytes]] = []
            for item in numbered_lines(fh, skip):
                batch.append(item)
                if len(batch) >= self.batch_rows:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def decoded_batches(self, path: Path, fmt: str, skip: int = 0) -> Iterator[tuple[int, int, int, Decoded]]:
        """(watermark after, records read, bytes read, decoded) per batch of the file."""
        options = self.options
        if fmt == "recording" and not options.instruments:
            found = read_instruments(instruments_path(path))
            options = dataclasses.replace(options, instruments=tuple(found))
        if fmt in ("csv_trades", "parquet_trades") and not options.mapping:
            raise ArchiveFormatError(str(path), f"{fmt} needs --map ts=…,price=…,quantity=…,side=…,trade_id=…")
        if fmt == "parquet_trades":
            yield from self._parquet(path, skip, options)
            return
        if fmt == "csv_trades":
            options = dataclasses.replace(options, header=tuple(next(csv.reader([first_line(path).decode()]))))
        decode = DECODERS.get(fmt)
        if decode is None:
            raise ArchiveFormatError(str(path), f"unknown format {fmt!r}; known: {', '.join(DECODERS)}")
        for lines in self._batches(path, skip):
            read = sum(1 for _, raw in lines if raw.strip())
            yield lines[-1][0], read, sum(len(raw) + 1 for _, raw in lines), decode(lines, str(path), options)

    def _parquet(self, path: Path, skip: int, options: Options) -> Iterator[tuple[int, int, int, Decoded]]:
        """Parquet by record batch; the watermark counts rows."""
        import pyarrow.parquet as pq

        from .formats import decode_parquet_trades

        done = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=self.batch_rows):
            first, done = done, done + batch.num_rows
            if done <= skip:
                continue
            frame = batch.slice(max(0, skip - first)).to_pandas()
            start = max(first, skip)
            yield done, len(frame), batch.nbytes, decode_parquet_trades(frame, start + 1, str(path), options)

    def _ingest(
        self,
        path: Path,
        fmt: str,
        skip: int,
        current: FileState,
        state: StateStore | None,
        out: FileReport,
        rejects: RejectLog,
    ) -> None:
        writer: TableWriter | None = None
        try:
            for watermark, read, size, decoded in self.decoded_batches(path, fmt, skip):
                if self._stop.is_set():
                    raise _CancelledError
                if writer is None and not self.dry_run and decoded.rows:
                    writer = self._writer(decoded).open()
                if decoded.rows and writer is not None:
                    self._write_confirmed(writer, decoded)
                rejects.write(decoded.rejects)
                out.rows_read += read
                out.rows_written += decoded.rows
                out.rows_rejected += len(decoded.rejects)
                out.watermark = watermark
                if decoded.min_ns is not None and decoded.max_ns is not None:
                    lo, hi = out.span_ns or (decoded.min_ns, decoded.max_ns)
                    out.span_ns = (min(lo, decoded.min_ns), max(hi, decoded.max_ns))
                if state is not None:
                    rejects.flush()
                    state.put(self._state_of(current, out))
                self.on_progress(Progress("rows", str(path), rows=decoded.rows + len(decoded.rejects), bytes=size))
        finally:
            if writer is not None:
                writer.discard_pending()  # everything confirmed is booked; nothing else may leave
                writer.close(flush=False)

    def _writer(self, decoded: Decoded) -> TableWriter:
        table = self.settings.table(decoded.table)
        big = 1 << 40  # never seal on a count: every batch is flushed (and confirmed) explicitly
        if decoded.trades is not None:
            return TradeWriter(self._conf, table, batch_rows=big, background_flush=False)
        return FrameWriter(
            self._conf, table, symbols=decoded.symbols, at=decoded.at, batch_rows=big, background_flush=False
        )

    def _write_confirmed(self, writer: TableWriter, decoded: Decoded) -> None:
        """Buffer the batch and flush until QuestDB confirms it; after ``archive.retries`` failed
        attempts (or one refusal: the data itself is refused) the error goes up and fails the file."""
        a = self.settings.archive
        if isinstance(writer, TradeWriter):
            assert decoded.trades is not None
            writer.write(decoded.trades, validate=False)  # invalid rows are rejects already
        else:
            assert isinstance(writer, FrameWriter)
            writer.write(decoded.frame)  # buffered only: batch_rows is never reached
        backoff = Backoff(a.retry_initial, a.retry_max)
        for attempt in range(a.retries + 1):
            try:
                writer.flush()
                return
            except FlushRejectedError:
                raise
            except FlushError:
                if attempt == a.retries or self._stop.is_set():
                    raise
                self._stop.wait(backoff.next_delay())

    # ------------------------------------------------------------------ bars
    def _recompute_bars(self, source: str) -> tuple[int, int] | None:
        """The bars of every minute this file's ticks fall in — all of them, also those an
        earlier, killed run wrote before the watermark this run resumed at."""
        ticks = self.settings.table("scalp_ticks")
        with connect(self.settings) as conn:
            txn = wal_sequencer_txn(conn, ticks)
            if not wait_applied(conn, ticks, txn, timeout=120):
                raise ArchiveError(f"{ticks}: WAL not applied after 120 s; bars not computed")
            row = conn.execute(
                sql.SQL("SELECT min(event_time)::long, max(event_time)::long FROM {} WHERE source_file = %s").format(
                    sql.Identifier(ticks)
                ),
                (source,),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            lo, hi = row
            span = (cast(int, lo) * 1000, cast(int, hi) * 1000)  # TIMESTAMP::long is µs
            recompute_bars(conn, self.settings, *span)
            return span

    def _bar_summary(self, conn: psycopg.Connection[Any], spans: list[tuple[int, int]]) -> tuple[int, int]:
        """Bars and low-coverage bars in the minutes this run touched (each minute counted once)."""
        bars = self.settings.table(_BARS_TABLE)
        total = low = 0
        for lo, hi in _merge(spans):
            row = conn.execute(
                sql.SQL(
                    "SELECT count(), sum(CASE WHEN quality_flag = 'low_coverage' THEN 1 ELSE 0 END) FROM {} "
                    "WHERE bar_time >= %s::timestamp_ns AND bar_time < %s::timestamp_ns"
                ).format(sql.Identifier(bars)),
                (lo, hi),
            ).fetchone()
            assert row is not None
            total += int(row[0] or 0)
            low += int(row[1] or 0)
        return total, low


def _minute_bounds(lo_ns: int, hi_ns: int) -> tuple[int, int]:
    return lo_ns - lo_ns % MINUTE_NS, hi_ns - hi_ns % MINUTE_NS + MINUTE_NS


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(_minute_bounds(a, b) for a, b in spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def recompute_bars(conn: psycopg.Connection[Any], settings: Settings, lo_ns: int, hi_ns: int) -> None:
    """(Re)compute the 1-minute bars of every minute in [lo_ns, hi_ns] from ``scalp_ticks``:
    OHLC of last_price, summed volume, ticks, coverage = ticks / (expected_tick_hz x 60), a bar
    under ``low_coverage`` flagged. Upserted (DEDUP), so recomputing a minute replaces its bar."""
    a = settings.archive
    ticks, bars = settings.table("scalp_ticks"), settings.table(_BARS_TABLE)
    start, end = _minute_bounds(lo_ns, hi_ns)
    txn = wal_sequencer_txn(conn, ticks)
    if not wait_applied(conn, ticks, txn, timeout=120):
        raise ArchiveError(f"{ticks}: WAL not applied after 120 s; bars not computed")
    expected = a.expected_tick_hz * 60.0
    conn.execute(
        sql.SQL(
            "INSERT INTO {bars} SELECT bar_time, symbol, session_id, open, high, low, close, volume, ticks, "
            "ticks / %(expected)s, mitigation_level, "
            "CASE WHEN ticks / %(expected)s < %(low)s THEN 'low_coverage' ELSE 'normal' END, %(version)s FROM ("
            "SELECT event_time bar_time, symbol, session_id, first(last_price) open, max(last_price) high, "
            "min(last_price) low, last(last_price) close, sum(volume) volume, count() ticks, "
            "max(mitigation_level) mitigation_level FROM {ticks} "
            "WHERE event_time >= %(start)s::timestamp_ns AND event_time < %(end)s::timestamp_ns "
            "SAMPLE BY 1m ALIGN TO CALENDAR)"
        ).format(bars=sql.Identifier(bars), ticks=sql.Identifier(ticks)),
        {"expected": expected, "low": a.low_coverage, "version": SCHEMA_VERSION, "start": start, "end": end},
    )
    txn = wal_sequencer_txn(conn, bars)
    if not wait_applied(conn, bars, txn, timeout=120):
        raise ArchiveError(f"{bars}: WAL not applied after 120 s")


class RejectLog:
    """A file's rejected lines as JSONL (line, reason, raw). On a resume the entries past the
    watermark are dropped first (those lines are read again), so each bad line is logged once; a
    fresh ingest starts the log over. A file without rejects has no log."""

    def __init__(self, path: Path, *, keep_through: int) -> None:
        self.path = path
        self._fh: Any = None
        if path.exists():
            kept: list[bytes] = []
            for line in path.read_bytes().splitlines() if keep_through else []:
                try:
                    if int(json.loads(line)["line"]) <= keep_through:
                        kept.append(line + b"\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line from a killed run
            if kept:
                path.write_bytes(b"".join(kept))
            else:
                path.unlink()

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        for r in rejects:
            self._fh.write(json.dumps(r.to_dict(), ensure_ascii=False).encode() + b"\n")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
