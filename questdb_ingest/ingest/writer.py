"""Batch writers: columnar rows into client ``Buffer``s, flushed by row count or interval.

Rows go into the *current* buffer; when it reaches ``batch_rows`` (or the interval passes) it
is *sealed* and queued. A flusher thread sends sealed buffers strictly in order while the caller
encodes the next one (the client releases the GIL during the request), and at most
``max_in_flight`` sealed buffers wait before a writer blocks (backpressure). A buffer is cleared
only after QuestDB confirmed it (ILP/HTTP answers after commit). A failed flush stops the queue
where it is: every row stays buffered, the typed ``FlushError`` (with the server's message) is
raised to the caller, and the next ``flush()`` retries from the oldest buffer.

With ``background_flush=False`` the same happens synchronously in the caller's thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import questdb

from ..config import Settings
from ..errors import FlushError, FlushRejectedError, FlushTransportError, WriteError
from ..models import (
    TRADE_SYMBOL_COLUMNS,
    CompareRecord,
    GapEvent,
    HealthEvent,
    ListingEvent,
    RolloutEvent,
    Trade,
    TradeBatch,
)
from .ilp import open_sender

# Keep any single request well under the client's buffer limit.
MAX_BUFFER_BYTES = 64 * 1024 * 1024
MAX_SLICE_ROWS = 100_000
_REJECTED_CODES = {"ServerFlushError", "InvalidApiCall", "BadDataFrame", "InvalidName", "InvalidTimestamp"}

Fill = Callable[[Any], None]


@dataclass
class WriterStats:
    """Counters that let callers balance the books: pending = accepted - confirmed."""

    rows_accepted: int = 0
    rows_confirmed: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    last_flush_seconds: float = 0.0


def classify_flush_error(table: str, rows: int, exc: questdb.QuestDBError) -> FlushError:
    """Rejected (the server refused the data) or transport (retry may succeed), from the client code."""
    code = getattr(getattr(exc, "code", None), "name", "")
    cls = FlushRejectedError if code in _REJECTED_CODES else FlushTransportError
    return cls(table, rows, str(exc))


class TableWriter:
    """One ``Sender`` and its buffers for one table; subclasses add typed ``write`` methods."""

    def __init__(
        self,
        conf: str,
        table: str,
        *,
        batch_rows: int = 1000,
        flush_interval: float = 1.0,
        background_flush: bool = True,
        max_in_flight: int = 2,
    ) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.table = table
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.max_in_flight = max_in_flight
        self.stats = WriterStats()
        self._conf = conf
        self._background = background_flush
        # Lock order: _produce (serialises encoders, guards the current buffer) before _cond
        # (queue and counters). The flusher holds _cond and only *tries* _produce.
        self._produce = threading.RLock()
        self._cond = threading.Condition(threading.RLock())
        self._sender: questdb.Sender | None = None
        self._current: Any = None
        self._current_rows = 0
        self._sealed: deque[tuple[Any, int]] = deque()
        self._free: list[Any] = []
        self._error: FlushError | None = None
        self._in_flight = False  # the flusher is sending the head of _sealed (outside the lock)
        self._last_flush = time.monotonic()
        self._stop = False
        self._thread: threading.Thread | None = None

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
        # Buffers are made up front and recycled, so none is created while a flush runs.
        self._current = self._sender.new_buffer()
        self._free = [self._sender.new_buffer() for _ in range(self.max_in_flight + 1)]
        if self._background:
            self._thread = threading.Thread(target=self._flush_loop, name=f"flush-{self.table}", daemon=True)
            self._thread.start()
        return self

    def close(self, flush: bool = True) -> None:
        """Flush what is pending (unless told not to), stop the flusher and close the sender."""
        try:
            if flush and self._sender is not None:
                self.flush()
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join()
                self._thread = None
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
        """Rows buffered that QuestDB has not confirmed yet."""
        with self._cond:
            return self._current_rows + sum(rows for _, rows in self._sealed)

    @property
    def last_error(self) -> FlushError | None:
        """The failure that stopped the flush queue, until a ``flush()`` gets past it."""
        return self._error

    # -- writing ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._current is None:
            raise WriteError(f"writer for {self.table!r} is not open; use it as a context manager or call open()")

    def _raise_if_failed(self) -> None:
        """Refuse new rows while the queue is stopped on a failure (they would queue behind it)."""
        if self._error is not None:
            raise self._error

    def _append(self, rows: int, fill: Fill, *, wait: bool = True) -> FlushError | None:
        """Encode ``rows`` into the current buffer; seal it at the threshold.

        Encoding runs outside ``_cond`` so the flusher can book confirmations meanwhile. A flush
        failure is returned, not raised: the rows are buffered either way, and the caller reports
        it once the rest of its batch is buffered too. ``wait`` applies backpressure."""
        self._check_open()
        with self._produce:
            try:
                fill(self._current)
            except questdb.QuestDBError as exc:
                raise WriteError(f"could not encode rows for {self.table!r}: {exc}") from exc
            with self._cond:
                self._current_rows += rows
                self.stats.rows_accepted += rows
                if self._current_rows >= self.batch_rows or len(self._current) >= MAX_BUFFER_BYTES:
                    self._seal_locked()
                    if not self._background:
                        self._flush_sealed_locked()
                    elif wait:
                        while len(self._sealed) > self.max_in_flight and self._error is None:
                            self._cond.wait()
                return self._error

    def _append_or_raise(self, rows: int, fill: Fill) -> None:
        self._raise_if_failed()
        error = self._append(rows, fill)
        if error is not None:
            raise error

    def _seal_locked(self) -> None:
        """Queue the current buffer and start a fresh one (caller holds _produce and _cond)."""
        if self._current_rows == 0:
            return
        self._sealed.append((self._current, self._current_rows))
        self._current = self._free.pop() if self._free else self._sender.new_buffer()  # type: ignore[union-attr]
        self._current_rows = 0
        self._cond.notify_all()

    def _before_seal(self) -> None:
        """Hook: move rows kept outside the buffer (per-row API) into it (caller holds both locks)."""

    def flush(self) -> int:
        """Send everything buffered, in order; clear each buffer only once QuestDB confirmed it.

        Retries from the oldest unconfirmed buffer after an earlier failure. Returns the rows
        confirmed by this call; raises ``FlushError`` (rows kept) if a flush fails again."""
        self._check_open()
        with self._produce, self._cond:
            before = self.stats.rows_confirmed
            self._before_seal()
            self._seal_locked()
            self._error = None
            if self._background:
                self._cond.notify_all()
                while self._sealed and self._error is None:
                    self._cond.wait()
            else:
                self._flush_sealed_locked()
            if self._error is not None:
                raise self._error
            return self.stats.rows_confirmed - before

    def flush_if_due(self) -> int:
        """Flush when rows are pending and ``flush_interval`` has passed since the last flush."""
        if time.monotonic() - self._last_flush >= self.flush_interval and self.pending_rows:
            return self.flush()
        return 0

    def discard_pending(self) -> int:
        """Drop every unconfirmed row on purpose (after the caller saved them elsewhere)."""
        with self._produce, self._cond:
            while self._in_flight:  # never clear a buffer the flusher is sending
                self._cond.wait()
            rows = self.pending_rows
            for buf, _ in self._sealed:
                buf.clear()
                self._free.append(buf)
            self._sealed.clear()
            self._current.clear()
            self._current_rows = 0
            self._error = None
            self._cond.notify_all()
            return rows

    # -- flushing ---------------------------------------------------------------------------
    def _send(self, buf: Any, rows: int) -> FlushError | None:
        """One request for one sealed buffer; the caller must hold no lock in background mode."""
        assert self._sender is not None
        started = time.perf_counter()
        try:
            self._sender.flush(buf, clear=False)
        except questdb.QuestDBError as exc:
            return classify_flush_error(self.table, rows, exc)
        self.stats.last_flush_seconds = time.perf_counter() - started
        return None

    def _confirmed_locked(self, error: FlushError | None) -> None:
        """Book the head of the queue as confirmed (or the queue as stopped on ``error``)."""
        if error is not None:
            self._error = error
            self.stats.failed_flushes += 1
        else:
            buf, rows = self._sealed.popleft()
            buf.clear()
            self._free.append(buf)
            self.stats.rows_confirmed += rows
            self.stats.flushes += 1
            self._last_flush = time.monotonic()
        self._cond.notify_all()

    def _flush_sealed_locked(self) -> None:
        """Synchronous mode: send sealed buffers in order until done or one fails."""
        while self._sealed and self._error is None:
            buf, rows = self._sealed[0]
            self._confirmed_locked(self._send(buf, rows))

    def _flush_loop(self) -> None:
        """Background mode: seal on the interval, send the oldest sealed buffer, repeat."""
        tick = min(max(self.flush_interval / 4, 0.01), 0.25)
        while True:
            with self._cond:
                while True:
                    if self._sealed and self._error is None:
                        buf, rows = self._sealed[0]
                        self._in_flight = True
                        break
                    if self._stop:
                        return
                    due = time.monotonic() - self._last_flush >= self.flush_interval
                    # Never block on _produce here (lock order); a busy encoder seals soon anyway.
                    if due and self._error is None and self._produce.acquire(blocking=False):
                        try:
                            self._before_seal()
                            self._seal_locked()
                        finally:
                            self._produce.release()
                        if self._sealed:
                            continue
                    self._cond.wait(tick)
            error = self._send(buf, rows)  # outside the lock: the caller keeps encoding meanwhile
            with self._cond:
                self._in_flight = False
                self._confirmed_locked(error)


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
        buffer it. ``batch_rows`` is the flush threshold: a large batch is sealed in slices of at
        most ``MAX_SLICE_ROWS`` rows, never thousands of tiny requests.

        On ``FlushError`` every row of the batch is buffered (``pending_rows``) for ``flush()``."""
        if validate:
            batch.validate()
        self._check_open()
        self._raise_if_failed()
        with self._produce, self._cond:
            self._before_seal()
        first_error: FlushError | None = None
        for start in range(0, len(batch), MAX_SLICE_ROWS):
            part = batch.take(slice(start, start + MAX_SLICE_ROWS)) if len(batch) > MAX_SLICE_ROWS else batch
            error = self._append(len(part), self._encoder(part))
            first_error = first_error or error
        if first_error is not None:
            raise first_error

    def _encoder(self, part: TradeBatch) -> Fill:
        frame = part.to_frame()
        symbols = list(TRADE_SYMBOL_COLUMNS)
        return lambda buf: buf.dataframe(frame, table_name=self.table, symbols=symbols, at="ts")

    def write_trade(self, trade: Trade) -> None:
        """Per-row API: validated now, encoded as columns once ``batch_rows`` rows are gathered
        (or when the interval flush comes round)."""
        trade.validate()
        self._check_open()
        self._raise_if_failed()
        with self._cond:
            self._rows.append(trade)
            if len(self._rows) < self.batch_rows:
                return
        self.write(TradeBatch.from_trades(self._take_rows()), validate=False)

    def write_trades(self, trades: Iterable[Trade]) -> None:
        self.write(TradeBatch.from_trades(trades))

    def _take_rows(self) -> list[Trade]:
        with self._cond:
            rows, self._rows = self._rows, []
            return rows

    def _before_seal(self) -> None:
        # Called under the lock by flush() and the interval flusher: encode without waiting.
        rows = self._take_rows()
        if rows:
            self._append(len(rows), self._encoder(TradeBatch.from_trades(rows)), wait=False)

    @property
    def pending_rows(self) -> int:
        with self._cond:
            return super().pending_rows + len(self._rows)


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


class GapWriter(TableWriter):
    """Writes ``GapEvent`` rows to ``gaps``."""

    @classmethod
    def logical_table(cls) -> str:
        return "gaps"

    def write(self, event: GapEvent) -> None:
        event.validate()
        gap_ms = (event.end_ns - event.start_ns) // 1_000_000
        symbols = {"exchange": event.exchange, "market_type": event.market_type, "scope": event.scope}
        if event.session_id:
            symbols["session_id"] = event.session_id
        columns: dict[str, Any] = {
            "gap_end_ts": questdb.TimestampNanos(event.end_ns),
            "gap_seconds": -(-gap_ms // 1000),
            "gap_ms": gap_ms,
            "reason": event.reason,
            "filled": event.filled,
            "backfilled_trades": event.backfilled_trades,
            "symbols": event.symbols,
        }
        at = questdb.TimestampNanos(event.start_ns)
        self._append_or_raise(1, lambda buf: buf.row(self.table, symbols=symbols, columns=columns, at=at))


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


class CompareWriter(TableWriter):
    """Writes ``CompareRecord`` rows to ``shadow_compare``."""

    @classmethod
    def logical_table(cls) -> str:
        return "shadow_compare"

    def write(self, rec: CompareRecord) -> None:
        rec.validate()
        symbols = {
            "symbol": rec.symbol,
            "exchange_market": rec.exchange_market,
            "source_a": rec.source_a,
            "source_b": rec.source_b,
        }
        columns: dict[str, Any] = {
            "window_start": questdb.TimestampNanos(rec.window_start_ns),
            "window_end": questdb.TimestampNanos(rec.window_end_ns),
            "rows_a": rec.rows_a,
            "rows_b": rec.rows_b,
            "missing": rec.missing,
            "extra": rec.extra,
            "mismatched": rec.mismatched,
            "sample_ids": rec.sample_ids,
            "latency_a_ms": float(rec.latency_a_ms),
            "latency_b_ms": float(rec.latency_b_ms),
        }
        at = questdb.TimestampNanos(rec.ts_ns)
        self._append_or_raise(1, lambda buf: buf.row(self.table, symbols=symbols, columns=columns, at=at))


class RolloutEventWriter(TableWriter):
    """Writes ``RolloutEvent`` rows to ``rollout_events``."""

    @classmethod
    def logical_table(cls) -> str:
        return "rollout_events"

    def write(self, event: RolloutEvent) -> None:
        event.validate()
        columns: dict[str, Any] = {"from_phase": event.from_phase, "to_phase": event.to_phase, "reason": event.reason}
        for name in ("error_rate", "mean_latency_ms", "disk_usage"):
            value = getattr(event, name)
            if value is not None:
                columns[name] = float(value)
        if event.spool_growth_bytes is not None:
            columns["spool_growth_bytes"] = int(event.spool_growth_bytes)
        at = questdb.TimestampNanos(event.ts_ns)
        self._append_or_raise(
            1, lambda buf: buf.row(self.table, symbols={"action": event.action}, columns=columns, at=at)
        )


class FrameWriter(TableWriter):
    """Writes whole DataFrames into one table (the archive tables): the same buffers, flush-and-
    clear and error mapping as every other writer, for columns the caller has already shaped."""

    def __init__(self, conf: str, table: str, *, symbols: Iterable[str], at: str, **kwargs: Any) -> None:
        super().__init__(conf, table, **kwargs)
        self.symbols = list(symbols)
        self.at = at

    def write(self, frame: Any) -> None:
        """Buffer ``frame`` (a pandas DataFrame); rows stay buffered on ``FlushError``."""
        self._append_or_raise(
            len(frame), lambda buf: buf.dataframe(frame, table_name=self.table, symbols=self.symbols, at=self.at)
        )
