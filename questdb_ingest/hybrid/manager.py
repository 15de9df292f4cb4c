"""HybridDataManager: every trade to the ring buffer and to QuestDB; listing windows read from
the buffer, from QuestDB or from both, as the rollout stage says.

Reads per stage:
- the symbol routes to QuestDB (deterministic share of symbols, ``Rollout.routes_to_questdb``)
  → QuestDB; when that read fails and the phase has ``fallback_enabled`` the buffer answers
  and the failure counts toward the rollback manager's error rate;
- otherwise → the buffer, unless the buffer no longer covers the window (older than its hot
  window, or evicted by the memory cap): then QuestDB, the only complete source;
- compare mode → both: the buffer is read, QuestDB is synced to everything the buffer had and
  read, the buffer is read again, and the diff goes to the log, the counters and
  ``shadow_compare``. The safe source (the buffer, when it covers the window) answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from ..config import Settings
from ..errors import QueryError
from ..ingest import CompareWriter
from ..ingest.backlog import BackloggedWriter
from ..models import CompareRecord, TradeBatch, now_ns
from ..sender.router import ShardedSender
from .compare import compare_records, diff_windows
from .reader import QuestDBReader
from .ring import RingBuffer
from .rollout import Rollout
from .window import ListingData, WindowDiff

log = logging.getLogger(__name__)
NS = 1_000_000_000


class HybridSink:
    """The feeds' ``TradeSink`` in hybrid mode: each batch to the ring buffer, then to the sender.

    The buffer gets a batch first (it is the safety net); ``synced`` waits until QuestDB has
    confirmed every batch the buffer held when it was called."""

    def __init__(self, ring: RingBuffer, sender: ShardedSender | None) -> None:
        self.ring = ring
        self.sender = sender
        self._appended = 0
        self._in_sender: set[int] = set()
        self._handed = asyncio.Event()

    async def submit(self, batch: TradeBatch) -> None:
        self.ring.append(batch)
        if self.sender is None:
            return
        self._appended += 1
        seq = self._appended
        self._in_sender.add(seq)
        try:
            await asyncio.to_thread(self.sender.submit, batch, validate=False)
        finally:
            self._in_sender.discard(seq)
            self._handed.set()

    async def synced(self, timeout: float) -> bool:
        """Every batch appended so far is confirmed by QuestDB (or spooled); False on timeout."""
        if self.sender is None:
            return True
        deadline = time.monotonic() + timeout
        mark = self._appended
        while any(seq <= mark for seq in self._in_sender):
            self._handed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._handed.wait(), min(remaining, 0.1))
            except TimeoutError:
                continue
        watermark = self.sender.watermark()
        return await asyncio.to_thread(self.sender.wait_through, watermark, max(0.0, deadline - time.monotonic()))


@dataclass
class HybridStats:
    reads: int = 0
    buffer_answers: int = 0
    questdb_answers: int = 0
    fallbacks: int = 0
    compares: int = 0
    compares_with_diffs: int = 0
    differences: int = 0
    compare_skipped: int = 0  # QuestDB could not be read or synced: nothing to compare
    last_diff: str = ""


class HybridDataManager:
    """Listing windows from the source(s) the rollout stage picks; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        ring: RingBuffer,
        rollout: Rollout,
        reader: QuestDBReader,
        *,
        sink: HybridSink | None = None,
        compare: bool = False,
        compare_writer: BackloggedWriter[CompareRecord] | None = None,
        history: int = 50,
    ) -> None:
        self.settings = settings
        self.ring = ring
        self.rollout = rollout
        self.reader = reader
        self.sink = sink
        self.compare = compare
        self.compare_writer = compare_writer
        self.stats = HybridStats()
        self.recent: deque[ListingData] = deque(maxlen=history)

    @classmethod
    def compare_writer_for(cls, settings: Settings) -> BackloggedWriter[CompareRecord]:
        return BackloggedWriter(CompareWriter.from_settings(settings).open(), flush_each=True)

    async def get_listing_data(
        self, symbol: str, trigger_ns: int, before: float | None = None, after: float | None = None
    ) -> ListingData:
        """Trades of ``symbol`` (``XYZ-USDT``, or ``XYZ`` for every pair of the asset) within
        [trigger - before, trigger + after], grouped by ``exchange_market``."""
        h = self.settings.hybrid
        before = h.window_before if before is None else before
        after = h.window_after if after is None else after
        start, end = trigger_ns - int(before * NS), trigger_ns + int(after * NS)
        self.rollout.refresh()
        self.stats.reads += 1
        if self.compare:
            data = await self._compared(symbol, trigger_ns, start, end)
        elif self.rollout.routes_to_questdb(symbol) or not self.ring.covers(start):
            data = await self._from_questdb(symbol, trigger_ns, start, end)
        else:
            data = self._from_buffer(symbol, trigger_ns, start, end)
        if data.source == "buffer":
            self.stats.buffer_answers += 1
        else:
            self.stats.questdb_answers += 1
        self.recent.append(data)
        return data

    def _buffer_read(self, symbol: str, start: int, end: int) -> tuple[dict[str, TradeBatch], float]:
        started = time.perf_counter()
        venues = self.ring.window(symbol, start, end)
        return venues, (time.perf_counter() - started) * 1e3

    def _from_buffer(
        self, symbol: str, trigger: int, start: int, end: int, notes: list[str] | None = None
    ) -> ListingData:
        venues, ms = self._buffer_read(symbol, start, end)
        notes = list(notes or [])
        if not self.ring.covers(start):
            notes.append("the buffer does not hold the whole window (older than its hot window or evicted)")
        return ListingData(symbol, trigger, start, end, "buffer", venues, ms, fell_back=bool(notes), notes=notes)

    async def _from_questdb(self, symbol: str, trigger: int, start: int, end: int) -> ListingData:
        started = time.perf_counter()
        try:
            venues = await asyncio.to_thread(self.reader.window, symbol, start, end)
        except QueryError as exc:
            if not self.rollout.fallback_enabled:
                raise
            self.stats.fallbacks += 1
            log.warning("QuestDB read failed, the buffer answers %s: %s", symbol, exc)
            return self._from_buffer(symbol, trigger, start, end, [f"fallback: {exc}"])
        return ListingData(symbol, trigger, start, end, "questdb", venues, (time.perf_counter() - started) * 1e3)

    async def _compared(self, symbol: str, trigger: int, start: int, end: int) -> ListingData:
        first, ms_a = self._buffer_read(symbol, start, end)
        timeout = self.settings.hybrid.compare_sync_timeout
        started = time.perf_counter()
        try:
            if self.sink is not None and not await self.sink.synced(timeout):
                raise QueryError(f"the sender did not confirm the buffered trades within {timeout:.0f}s")
            if not await asyncio.to_thread(self.reader.sync_trades, timeout):
                raise QueryError(f"QuestDB did not apply its WAL within {timeout:.0f}s")
            sync_ms = (time.perf_counter() - started) * 1e3
            questdb, ms_b = await self._timed_questdb(symbol, start, end)
        except QueryError as exc:
            self.stats.compare_skipped += 1
            log.warning("compare of %s skipped, the buffer answers: %s", symbol, exc)
            if not self.ring.covers(start):
                raise
            return self._from_buffer(symbol, trigger, start, end, [f"compare skipped: {exc}"])
        second, _ = self._buffer_read(symbol, start, end)
        diff = diff_windows(first, questdb, second, latency_a_ms=ms_a, latency_b_ms=ms_b)
        self._record(diff, symbol, start, end)
        await asyncio.to_thread(self._write_compare, diff, symbol, start, end)  # the rows may wait on QuestDB
        notes = [f"QuestDB sync {sync_ms:.0f} ms"]
        if self.ring.covers(start):
            return ListingData(symbol, trigger, start, end, "buffer", second, ms_a, diff=diff, notes=notes)
        notes.append("the buffer does not hold the whole window: QuestDB answers")
        return ListingData(symbol, trigger, start, end, "questdb", questdb, ms_b, diff=diff, notes=notes)

    async def _timed_questdb(self, symbol: str, start: int, end: int) -> tuple[dict[str, TradeBatch], float]:
        started = time.perf_counter()
        venues = await asyncio.to_thread(self.reader.window, symbol, start, end)
        return venues, (time.perf_counter() - started) * 1e3

    def _record(self, diff: WindowDiff, symbol: str, start: int, end: int) -> None:
        self.stats.compares += 1
        if not diff.clean:
            self.stats.compares_with_diffs += 1
            self.stats.differences += diff.differences
            parts = [
                f"{v}: missing {list(d.missing[:5])} extra {list(d.extra[:5])} mismatched {list(d.mismatched[:5])}"
                for v, d in diff.venues.items()
                if not d.clean
            ]
            self.stats.last_diff = f"{symbol}: " + "; ".join(parts)
            log.warning("shadow compare %s [%d, %d]: %s", symbol, start, end, "; ".join(parts))

    def _write_compare(self, diff: WindowDiff, symbol: str, start: int, end: int) -> None:
        if self.compare_writer is not None:
            for rec in compare_records(diff, symbol=symbol, start_ns=start, end_ns=end, at_ns=now_ns()):
                self.compare_writer.write(rec)

    def close(self) -> None:
        if self.compare_writer is not None:
            self.compare_writer.close()
        self.reader.close()
