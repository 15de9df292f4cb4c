"""One connector end to end: symbol discovery and refresh, connections, parsing, gaps, health.

The feed discovers the venue's instruments over REST (retrying until it can), spreads them over
as many ``Connection`` objects as the venue's per-connection limit needs, parses every frame with
the venue's pure parser into trade columns and hands batches to the sink. It re-reads the
symbol list every ``refresh_interval`` seconds and subscribes new instruments on live sockets,
so a new listing is captured without a restart. Every disconnect window becomes a gap event,
back-filled over REST where the venue allows; so does a hole in a live stream where the venue's
trade ids are consecutive per instrument (``contiguous_ids``: a stall shorter than the watchdog
leaves no disconnect behind, only the jump in the ids). Health rows go out periodically and on
every change of state; a venue error frame turns the status to ``error`` with the venue's message
and the running count, so it shows in ``exchange_health`` without a schema change.

Every unusable frame is dead-lettered raw with the reason (venue errors and unknown events are
also counted apart in ``FeedStats``); so is every row validation still rejects after parsing, with
the frame it came from (``_row_frames`` maps rows back to frames until the next drain).

If the sink fails for good (the sender stopped: ``SenderError``), the feed halts at once: its
sockets are closed without a reconnect, the trades it could not hand over are counted in
``stats.unsent`` (with any still parsed after the failure), and ``on_halt`` tells the pipeline.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..config import ConnectorSettings
from ..errors import FrameError, SenderError, UnknownEventError, ValidationError, VenueError
from ..histogram import Histogram
from ..models import GapEvent, HealthEvent, HealthStatus, TradeBatch
from .connection import Backoff, Connection
from .continuity import IdHole, TradeIds
from .core import Frame, Instrument, Instruments, RestClient, TradeColumns, VenueProtocol
from .deadletter import DeadLetters

log = logging.getLogger(__name__)

BACKFILL_MARGIN_NS = 1_000_000_000  # clocks differ a little; fetch from just before the last frame


class FrameTap(Protocol):
    """Sees every received frame before parsing (the recorder)."""

    def __call__(self, connector: str, recv_ns: int, frame: Frame) -> None: ...


class TradeSink(Protocol):
    """Where a feed's trades go; every batch it receives has passed ``TradeBatch.validate``."""

    async def submit(self, batch: TradeBatch) -> None: ...


class EventSink(Protocol):
    def health(self, event: HealthEvent) -> None: ...

    def gap(self, event: GapEvent) -> None: ...


@dataclass
class FeedStats:
    messages: int = 0
    trades: int = 0  # valid trades received (parsed and validated), handed over or not
    unsent: int = 0  # of those, the ones the sink did not take (it had failed)
    dead_letters: int = 0
    venue_errors: int = 0  # explicit error frames from the venue (also dead letters)
    unknown_events: int = 0  # events the connector does not know (also dead letters)
    backfilled: int = 0
    gaps: int = 0
    last_trade_ns: int = 0
    last_error: str = ""
    # exchange timestamp → handed to the sender, per live trade (not backfill): the venue's and the
    # network's share of the delay, told apart from the sender's (its exchange-ts → confirmed)
    lag_ms: Histogram = field(default_factory=Histogram)


def select_instruments(found: Sequence[Instrument], settings: ConnectorSettings) -> list[Instrument]:
    """Instruments to subscribe: an explicit symbol list wins, else by quote asset; capped per connector."""
    quotes = {q.strip().upper() for q in settings.quotes.split(",") if q.strip()}
    symbols = {s.strip().upper() for s in settings.symbols.split(",") if s.strip()}
    if symbols:
        chosen = [inst for inst in found if inst.symbol in symbols]
    else:
        chosen = [inst for inst in found if not quotes or inst.quote in quotes]
    return chosen[: settings.max_symbols] if settings.max_symbols else chosen


class Feed:
    def __init__(
        self,
        proto: VenueProtocol,
        *,
        settings: ConnectorSettings,
        rest: RestClient,
        sink: TradeSink,
        events: EventSink,
        dead_letters: DeadLetters,
        session_id: str = "",
        tap: FrameTap | None = None,
        on_halt: Callable[[Feed, SenderError], None] | None = None,
    ) -> None:
        self.proto = proto
        self.on_halt = on_halt
        self.halted: SenderError | None = None
        self.tap = tap
        self.spec = proto.spec
        self.settings = settings
        self.rest = rest
        self.sink = sink
        self.events = events
        self.dead_letters = dead_letters
        self.session_id = session_id
        self.instruments = Instruments()
        self.connections: list[Connection] = []
        self.stats = FeedStats()
        self.status = HealthStatus.DISCONNECTED.value
        self.down_since: float | None = time.monotonic()  # monotonic time it stopped being connected
        self._parse = proto.make_parser(self.instruments)
        self._columns = TradeColumns()
        # (first row in ``_columns``, frame) for each frame that added rows, so a row validation
        # rejects later is dead-lettered with the frame it came from.
        self._row_frames: list[tuple[int, Frame]] = []
        self._unknown_seen: set[str] = set()  # unknown event names already logged
        self._open_gaps: dict[int, tuple[int, str]] = {}
        self._ids = TradeIds() if proto.contiguous_ids else None
        self._conn_of: dict[str, Connection] = {}  # symbol → the connection it is subscribed on
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._drain_lock = asyncio.Lock()
        self._stopping = False
        self.ready = asyncio.Event()  # set once the first symbol list is in and connections started

    @property
    def name(self) -> str:
        return self.spec.connector

    # ---- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        """Run until ``stop()``; never raises for venue trouble (it is retried and reported)."""
        backoff = Backoff(self.settings.reconnect_initial, self.settings.reconnect_max)
        while not self._stopping:
            try:
                found = await self.proto.fetch_instruments(self.rest)
                break
            except Exception as exc:  # REST down or malformed: retry with backoff, say why
                self._error(f"symbol list: {type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff.next_delay())
        else:
            return
        self._add_instruments(select_instruments(found, self.settings))
        log.info("%s: %d instruments on %d connection(s)", self.name, len(self.instruments), len(self.connections))
        self._emit_health()
        self._tasks += [
            asyncio.create_task(self._refresh_loop()),
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._health_loop()),
        ]
        self.ready.set()
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            if not self._stopping:
                raise

    async def stop(self) -> None:
        """Close the sockets, hand over every parsed trade, write a final health row."""
        self._stopping = True
        await asyncio.gather(*(c.stop() for c in self.connections), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)
        await self.drain()
        self.status = HealthStatus.DISCONNECTED.value
        self._emit_health("stopped")

    def _add_instruments(self, new: Sequence[Instrument]) -> list[Instrument]:
        added = [inst for inst in new if inst.venue_symbol not in self.instruments]
        if not added:
            return []
        for inst in added:
            self.instruments.add(inst)
        self._parse = self.proto.make_parser(self.instruments)
        pending = list(added)
        for conn in self.connections:
            if pending and conn.room > 0:
                take, pending = pending[: conn.room], pending[conn.room :]
                self._assign(conn, take)
        per_conn = self.spec.topics_per_connection
        while pending:
            self._assign(self._new_connection(), pending[:per_conn])
            pending = pending[per_conn:]
        return added

    def _assign(self, conn: Connection, insts: Sequence[Instrument]) -> None:
        conn.assign(insts)
        for inst in insts:
            self._conn_of[inst.symbol] = conn

    def _new_connection(self) -> Connection:
        s = self.settings
        lifetime = self.spec.max_lifetime
        rotate_after = s.rotate_after or (max(60.0, lifetime - s.rotate_margin) if lifetime else None)
        conn = Connection(
            self.proto,
            self.rest,
            self,
            index=len(self.connections),
            backoff=Backoff(s.reconnect_initial, s.reconnect_max),
            rotate_after=rotate_after,
        )
        self.connections.append(conn)
        self._open_gaps[conn.index] = (0, "")  # not a gap until it has been connected once
        task = asyncio.create_task(conn.run())
        self._tasks.append(task)
        return conn

    # ---- frames ----------------------------------------------------------------------
    def frame(self, conn: Connection, frame: Frame, recv_ns: int) -> bool:
        self.stats.messages += 1
        if self.tap is not None:
            self.tap(self.name, recv_ns, frame)
        first_row = len(self._columns)
        try:
            self._parse(frame, recv_ns, self._columns)
        except VenueError as exc:
            self.stats.venue_errors += 1
            self._dead_letter(frame, exc.reason, recv_ns, conn)
            self._error(f"{exc.reason} [venue errors: {self.stats.venue_errors:,}]")
        except UnknownEventError as exc:
            self.stats.unknown_events += 1
            if exc.event not in self._unknown_seen and len(self._unknown_seen) < 100:
                self._unknown_seen.add(exc.event)
                log.warning("%s: unknown event %r (counted and dead-lettered)", self.name, exc.event)
            self._dead_letter(frame, exc.reason, recv_ns, conn)
        except FrameError as exc:
            self._dead_letter(frame, exc.reason, recv_ns, conn)
        except Exception as exc:  # a parser bug must not stop the connector; the frame is kept
            self._dead_letter(frame, f"parser failure: {type(exc).__name__}: {exc}", recv_ns, conn)
        if len(self._columns) > first_row:  # after the handlers: even a parser bug's rows keep their frame
            self._row_frames.append((first_row, frame))
        return len(self._columns) >= self.settings.batch_rows

    def _dead_letter(self, frame: Frame, reason: str, recv_ns: int, conn: Connection | None) -> None:
        self.stats.dead_letters += 1
        scope = conn.scope if conn is not None else self.name
        self.dead_letters.write(self.name, frame, reason, recv_ns, scope=scope)

    async def drain(self) -> None:
        """Hand everything parsed so far to the sink (bad rows go to the dead-letter file)."""
        async with self._drain_lock:
            if not len(self._columns):
                return
            batch = self._columns.drain(self.spec.exchange, self.spec.market_type)
            frames, self._row_frames = self._row_frames, []  # no await between: rows and frames agree
            if self._ids is not None:
                self._check_ids(batch)
            await self._submit(batch, "stream", frames)

    async def _submit(self, batch: TradeBatch, source: str, frames: Sequence[tuple[int, Frame]] = ()) -> None:
        batch = self._valid(batch, source, frames)
        if not len(batch):
            return
        self.stats.trades += len(batch)
        self.stats.last_trade_ns = max(self.stats.last_trade_ns, int(batch.ts_ns.max()))
        if source == "stream":
            self.stats.lag_ms.add_many((time.time_ns() - batch.ts_ns).astype(np.float64) / 1e6)
        if self.halted is not None:
            self.stats.unsent += len(batch)
            return
        # Shielded: a reconnect cancelling the reader must not lose track of a batch already handed over.
        task = asyncio.ensure_future(self.sink.submit(batch))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(functools.partial(self._late_outcome, rows=len(batch)))
            raise
        except SenderError as exc:
            self.stats.unsent += len(batch)
            self.halt(exc)

    def _late_outcome(self, task: asyncio.Future[None], rows: int) -> None:
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, SenderError):
            self.stats.unsent += rows
            self.halt(exc)

    def halt(self, exc: SenderError) -> None:
        """The sink can take no more (seen here or by another feed): stop intake now — close the
        sockets, no reconnect, no new subscriptions — and say so."""
        if self.halted is not None:
            return
        self.halted = exc
        self._stopping = True
        log.error("%s: intake stopped, the sender failed: %s", self.name, exc)
        for conn in self.connections:
            task = asyncio.ensure_future(conn.stop())
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)
        if self.on_halt is not None:
            self.on_halt(self, exc)

    def _valid(self, batch: TradeBatch, source: str, frames: Sequence[tuple[int, Frame]] = ()) -> TradeBatch:
        """The batch without its invalid rows, each dead-lettered with the reason, the row and the raw
        frame it was parsed from (``frames``: first row → frame; none for REST back-fill rows)."""
        try:
            batch.validate()
        except ValidationError:
            bad = batch.invalid_mask()
            starts = [start for start, _ in frames]
            for row in bad.nonzero()[0].tolist():
                one = batch.take(slice(row, row + 1))
                try:
                    one.validate()
                    reason = "invalid row"
                except ValidationError as exc:
                    reason = f"invalid trade: {exc}"
                at = bisect.bisect_right(starts, row) - 1
                frame = frames[at][1] if at >= 0 else None
                self.dead_letters.write(
                    self.name, frame, reason, int(one.recv_ns[0]), trade=one.to_trades()[0], source=source
                )
                self.stats.dead_letters += 1
            batch = batch.take(~bad)
        return batch

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            await self.drain()

    # ---- trade-id continuity -----------------------------------------------------------
    def _check_ids(self, batch: TradeBatch) -> None:
        """Record every hole in the trade ids of this batch as a gap (and back-fill it)."""
        assert self._ids is not None
        now = time.monotonic()
        overlapping = {s for s, c in self._conn_of.items() if c.overlap_until > now}
        for hole in self._ids.check(batch, skip=overlapping):
            task = asyncio.create_task(self._close_id_hole(hole))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _close_id_hole(self, hole: IdHole) -> None:
        conn = self._conn_of.get(hole.symbol)
        inst = next((i for i in self.instruments.values() if i.symbol == hole.symbol), None)
        filled, fetched = False, 0
        if inst is not None and self.proto.supports_backfill:
            filled, fetched = await self._backfill([inst], hole.start_ns)
        gap = GapEvent(
            start_ns=hole.start_ns,
            end_ns=hole.end_ns,
            exchange=self.spec.exchange,
            market_type=self.spec.market_type,
            scope=f"{conn.scope if conn is not None else self.name}/{hole.symbol}",
            reason=f"trade ids jumped {hole.last_id} → {hole.next_id}: {hole.missing:,} trade(s) missed, socket up",
            filled=filled,
            backfilled_trades=fetched,
            symbols=1,
            session_id=self.session_id,
        )
        self.stats.gaps += 1
        self.stats.backfilled += fetched
        log.warning("%s %s: %s, %d trades back-filled", gap.scope, gap.reason, "filled" if filled else "not filled",
                    fetched)  # fmt: skip
        self.events.gap(gap)

    # ---- symbol refresh ---------------------------------------------------------------
    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            await self.refresh()

    async def refresh(self) -> list[Instrument]:
        """Re-read the symbol list; subscribe what is new. Returns the new instruments."""
        if self._stopping:
            return []
        try:
            found = await self.proto.fetch_instruments(self.rest)
        except Exception as exc:  # keep the current subscriptions; try again next period
            self._error(f"symbol refresh: {type(exc).__name__}: {exc}")
            return []
        added = self._add_instruments(select_instruments(found, self.settings))
        if added:
            log.warning("%s: new instruments subscribed: %s", self.name, ", ".join(i.symbol for i in added))
        return added

    # ---- connection events -------------------------------------------------------------
    def connected(self, conn: Connection, at_ns: int) -> None:
        if self._ids is not None:  # the disconnect window is its own gap: ids start afresh
            self._ids.forget(i.symbol for i in conn.instruments)
        start, reason = self._open_gaps.pop(conn.index, (0, ""))
        if start:
            task = asyncio.create_task(self._close_gap(conn, start, at_ns, reason, list(conn.instruments)))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)
        self._update_status()

    def disconnected(self, conn: Connection, reason: str, last_rx_ns: int, at_ns: int) -> None:
        self._open_gaps[conn.index] = (last_rx_ns or at_ns, reason)
        self.stats.last_error = f"{conn.scope}: {reason}"
        self._update_status()

    def connect_failed(self, conn: Connection, reason: str) -> None:
        self._error(f"{conn.scope}: connect failed: {reason}")

    async def _close_gap(self, conn: Connection, start: int, end: int, reason: str, insts: list[Instrument]) -> None:
        filled, fetched = False, 0
        if self.proto.supports_backfill and (end - start) / 1e9 <= self.settings.backfill_window:
            filled, fetched = await self._backfill(insts[: self.settings.backfill_max_instruments], start)
            filled = filled and len(insts) <= self.settings.backfill_max_instruments
        gap = GapEvent(
            start_ns=start,
            end_ns=end,
            exchange=self.spec.exchange,
            market_type=self.spec.market_type,
            scope=conn.scope,
            reason=reason,
            filled=filled,
            backfilled_trades=fetched,
            symbols=len(insts),
            session_id=self.session_id,
        )
        self.stats.gaps += 1
        self.stats.backfilled += fetched
        log.warning(
            "%s gap %.1f s (%s): %s, %d trades back-filled",
            conn.scope, gap.seconds, reason, "filled" if filled else "not filled", fetched,
        )  # fmt: skip
        self.events.gap(gap)

    async def _backfill(self, insts: Sequence[Instrument], start_ns: int) -> tuple[bool, int]:
        """Fetch each instrument's recent trades; filled when every one reaches back to the gap start."""
        filled, total = True, 0
        since = start_ns - BACKFILL_MARGIN_NS
        for inst in insts:
            cols = TradeColumns()
            try:
                count = await self.proto.fetch_recent_trades(self.rest, inst, cols, time.time_ns())
            except Exception as exc:  # the gap stays recorded as not filled, with the reason logged
                self._error(f"backfill {inst.symbol}: {type(exc).__name__}: {exc}")
                filled = False
                continue
            if self.proto.recent_page <= count and min(cols.ts_ns) > start_ns:
                # A full page that starts after the gap start: the trades before it are unknown. (A
                # short page is the instrument's whole history: its first trade came after the start.)
                filled = False
            keep = [i for i, ts in enumerate(cols.ts_ns) if ts >= since]
            if not keep:
                continue
            batch = cols.drain(self.spec.exchange, self.spec.market_type).take(keep)  # type: ignore[arg-type]
            total += len(batch)
            await self._submit(batch, "backfill")
        return filled, total

    # ---- health -------------------------------------------------------------------------
    def _error(self, message: str) -> None:
        log.warning("%s: %s", self.name, message)
        self.stats.last_error = message
        if self.status != HealthStatus.ERROR.value:
            self.status = HealthStatus.ERROR.value
            self.down_since = self.down_since or time.monotonic()
            self._emit_health(message)

    def _update_status(self) -> None:
        up = bool(self.connections) and all(c.connected for c in self.connections)
        status = HealthStatus.CONNECTED.value if up else HealthStatus.DISCONNECTED.value
        self.down_since = None if up else (self.down_since or time.monotonic())
        if status != self.status:
            self.status = status
            self._emit_health(self.stats.last_error if not up else "")

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            if self.status == HealthStatus.ERROR.value:
                self._update_status()  # errors clear once every connection is up again
            self._emit_health(self.stats.last_error if self.status != HealthStatus.CONNECTED.value else "")

    def _emit_health(self, message: str = "") -> None:
        self.events.health(
            HealthEvent(
                ts_ns=time.time_ns(),
                exchange=self.spec.exchange,
                market_type=self.spec.market_type,
                status=self.status,
                last_trade_ns=self.stats.last_trade_ns or None,
                message_count=self.stats.messages,
                error_message=message[:500],
            )
        )
