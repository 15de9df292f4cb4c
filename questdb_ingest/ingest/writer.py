"""Batch writers: columnar rows into a client ``Buffer``, flushed by row count or interval.

A buffer is cleared only after QuestDB confirmed the flush (ILP/HTTP answers after commit);
on failure the rows stay and a typed ``FlushError`` carries the server's message, so the
caller can retry or spool. An optional background thread flushes by interval when no new rows
arrive; its failure is re-raised on the next call so it is never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import questdb

from ..config import Settings
from ..errors import FlushError, FlushRejectedError, FlushTransportError, WriteError
from ..models import TRADE_SYMBOL_COLUMNS, HealthEvent, ListingEvent, Trade, TradeBatch
from .ilp import open_sender

# Keep any single request well under the client's default 100 MiB max_buf_size.
MAX_BUFFER_BYTES = 64 * 1024 * 1024
MAX_SLICE_ROWS = 100_000
_REJECTED_CODES = {"ServerFlushError", "InvalidApiCall", "BadDataFrame", "InvalidName", "InvalidTimestamp"}


@dataclass
class WriterStats:
    """Counters that let callers balance the books: buffered = accepted - confirmed."""

    rows_accepted: int = 0
    rows_confirmed: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    last_flush_seconds: float = 0.0


class TableWriter:
    """Owns one ``Sender`` and one ``Buffer`` for one table; subclasses add typed ``write`` methods."""

    def __init__(
        self,
        conf: str,
        table: str,
        *,
        batch_rows: int = 1000,
        flush_interval: float = 1.0,
        background_flush: bool = True,
    ) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        self.table = table
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.stats = WriterStats()
        self._conf = conf
        self._background = background_flush
        self._lock = threading.RLock()
        self._sender: questdb.Sender | None = None
        self._buffer: Any = None
        self._pending = 0
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._background_error: FlushError | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        kwargs.setdefault("batch_rows", settings.ingest.batch_rows)
        kwargs.setdefault("flush_interval", settings.ingest.flush_interval)
        return cls(settings.client_conf(), settings.table(cls.logical_table()), **kwargs)

    @classmethod
    def logical_table(cls) -> str:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> Self:
        # ILP/HTTP connects lazily: an unreachable server surfaces at the first flush.
        try:
            self._sender = open_sender(self._conf)
            self._sender.establish()  # type: ignore[no-untyped-call]
        except questdb.QuestDBError as exc:
            raise FlushTransportError(self.table, 0, f"cannot open ILP sender: {exc}") from exc
        self._buffer = self._sender.new_buffer()
        if self._background:
            self._thread = threading.Thread(target=self._flush_loop, name=f"flush-{self.table}", daemon=True)
            self._thread.start()
        return self

    def close(self, flush: bool = True) -> None:
        """Stop the interval thread, flush what is pending (unless told not to) and close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if flush and self._sender is not None:
                self.flush()
        finally:
            if self._sender is not None:
                self._sender.close()
                self._sender = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # On an exception, still try to land what is buffered, but do not mask the original
        # error; if that flush fails too, say so on the original error so no loss goes unnoticed.
        if exc is None:
            self.close(flush=True)
            return
        try:
            self.close(flush=True)
        except FlushError as flush_error:
            exc.add_note(f"while closing the writer: {flush_error}")

    # -- state ------------------------------------------------------------------------------
    @property
    def pending_rows(self) -> int:
        """Rows in the buffer that QuestDB has not confirmed yet."""
        return self._pending

    def buffered_bytes(self) -> int:
        with self._lock:
            return len(self._buffer) if self._buffer is not None else 0

    # -- writing ----------------------------------------------------------------------------
    def _append(self, rows: int, fill: Any) -> FlushError | None:
        """Run ``fill(buffer)`` under the lock, count ``rows``, flush when the threshold is reached.

        A failed threshold flush is returned, not raised: the rows are buffered either way, and
        the caller decides when to report it (after buffering the rest of its batch)."""
        self._raise_background_error()
        if self._buffer is None:
            raise WriteError(f"writer for {self.table!r} is not open; use it as a context manager or call open()")
        with self._lock:
            try:
                fill(self._buffer)
            except questdb.QuestDBError as exc:
                raise WriteError(f"could not encode rows for {self.table!r}: {exc}") from exc
            self._pending += rows
            self.stats.rows_accepted += rows
            if self._pending >= self.batch_rows or len(self._buffer) >= MAX_BUFFER_BYTES:
                try:
                    self._flush_locked()
                except FlushError as exc:
                    return exc
        return None

    def _append_or_raise(self, rows: int, fill: Any) -> None:
        error = self._append(rows, fill)
        if error is not None:
            raise error

    def flush(self) -> int:
        """Send everything buffered; clear only once QuestDB confirmed it. Returns rows confirmed."""
        self._raise_background_error()
        with self._lock:
            return self._flush_locked()

    def flush_if_due(self) -> int:
        """Flush when rows are pending and ``flush_interval`` has elapsed since the last flush."""
        with self._lock:
            if self._pending and time.monotonic() - self._last_flush >= self.flush_interval:
                return self._flush_locked()
        return 0

    def _flush_locked(self) -> int:
        rows = self._pending
        if rows == 0 or self._sender is None:
            self._last_flush = time.monotonic()
            return 0
        started = time.perf_counter()
        try:
            self._sender.flush(self._buffer, clear=False)
        except questdb.QuestDBError as exc:
            self.stats.failed_flushes += 1
            code = getattr(getattr(exc, "code", None), "name", "")
            cls = FlushRejectedError if code in _REJECTED_CODES else FlushTransportError
            raise cls(self.table, rows, str(exc)) from exc
        self._buffer.clear()
        self._pending = 0
        self._last_flush = time.monotonic()
        self.stats.rows_confirmed += rows
        self.stats.flushes += 1
        self.stats.last_flush_seconds = time.perf_counter() - started
        return rows

    def discard_pending(self) -> int:
        """Drop buffered rows on purpose (after the caller spooled them elsewhere); returns the count."""
        with self._lock:
            rows = self._pending
            self._buffer.clear()
            self._pending = 0
            return rows

    def _flush_loop(self) -> None:
        tick = min(max(self.flush_interval / 4, 0.01), 0.25)
        while not self._stop.wait(tick):
            if self._background_error is not None:
                continue
            try:
                self.flush_if_due()
            except FlushError as exc:
                self._background_error = exc

    def _raise_background_error(self) -> None:
        err, self._background_error = self._background_error, None
        if err is not None:
            raise err


class TradeWriter(TableWriter):
    """Writes ``TradeBatch`` columns (the hot path); ``write_trade`` is a per-row convenience."""

    def __init__(self, conf: str, table: str = "trades", **kwargs: Any) -> None:
        super().__init__(conf, table, **kwargs)
        self._rows: list[Trade] = []

    @classmethod
    def logical_table(cls) -> str:
        return "trades"

    def write(self, batch: TradeBatch, *, validate: bool = True) -> None:
        """Validate the whole batch (raising ``ValidationError`` before anything is sent), then
        buffer it. ``batch_rows`` is the flush threshold: a large batch is one flush per slice of
        at most ``MAX_SLICE_ROWS`` rows, never thousands of tiny requests."""
        if validate:
            batch.validate()
        self._drain_rows()
        first_error: FlushError | None = None
        for start in range(0, len(batch), MAX_SLICE_ROWS):
            part = batch.take(slice(start, start + MAX_SLICE_ROWS)) if len(batch) > MAX_SLICE_ROWS else batch
            frame = part.to_frame()
            error = self._append(
                len(part),
                lambda buf, frame=frame: buf.dataframe(
                    frame, table_name=self.table, symbols=list(TRADE_SYMBOL_COLUMNS), at="ts"
                ),
            )
            first_error = first_error or error
        if first_error is not None:
            # Every row of this batch is buffered (pending_rows); the next flush() retries them.
            raise first_error

    def write_trade(self, trade: Trade) -> None:
        """Per-row API: validated now, buffered as columns once ``batch_rows`` rows gathered."""
        trade.validate()
        self._raise_background_error()
        self._rows.append(trade)
        if len(self._rows) >= self.batch_rows:
            self._drain_rows()

    def write_trades(self, trades: Iterable[Trade]) -> None:
        self.write(TradeBatch.from_trades(trades))

    def _drain_rows(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self.write(TradeBatch.from_trades(rows), validate=False)

    @property
    def pending_rows(self) -> int:
        return self._pending + len(self._rows)

    def flush(self) -> int:
        self._drain_rows()
        return super().flush()

    def flush_if_due(self) -> int:
        with self._lock:
            if self._rows and time.monotonic() - self._last_flush >= self.flush_interval:
                self._drain_rows()
        return super().flush_if_due()


class HealthWriter(TableWriter):
    """Writes ``HealthEvent`` rows to ``exchange_health``."""

    @classmethod
    def logical_table(cls) -> str:
        return "exchange_health"

    def write(self, event: HealthEvent) -> None:
        event.validate()
        symbols = {"exchange": event.exchange, "market_type": event.market_type, "status": event.status}
        columns: dict[str, Any] = {"message_count": event.message_count, "error_message": event.error_message}
        if event.last_trade_ns is not None:
            columns["last_trade_time"] = questdb.TimestampNanos(event.last_trade_ns)
        self._append_or_raise(
            1,
            lambda buf: buf.row(self.table, symbols=symbols, columns=columns, at=questdb.TimestampNanos(event.ts_ns)),
        )


class ListingWriter(TableWriter):
    """Writes ``ListingEvent`` rows to ``listing_events``."""

    @classmethod
    def logical_table(cls) -> str:
        return "listing_events"

    def write(self, event: ListingEvent) -> None:
        event.validate()
        columns: dict[str, Any] = {
            "detected_at": questdb.TimestampNanos(event.detected_ns),
            "trigger_delay_ms": event.trigger_delay_ms,
            "collected_trades": event.collected_trades,
            "exchanges_with_data": event.exchanges_with_data,
        }
        if event.announced_ns is not None:
            columns["announced_at"] = questdb.TimestampNanos(event.announced_ns)
        self._append_or_raise(
            1,
            lambda buf: buf.row(
                self.table, symbols={"symbol": event.symbol}, columns=columns, at=questdb.TimestampNanos(event.ts_ns)
            ),
        )
