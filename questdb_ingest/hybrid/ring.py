"""The hybrid ring buffer: the last hour of trades in memory, next to QuestDB.

A listing window (±20 s around a trigger) must be answerable in well under a millisecond even
when QuestDB is slow or down, so every batch the sender gets is also copied into numpy arrays
here. Storage is a *segmented ring* per venue (``exchange_market``): fixed-size segments of
preallocated columns that are filled in arrival order and, once their rows are older than the
hot window (or the memory cap is reached), overwritten in place rather than reallocated. A hard
memory cap bounds the arrays whatever the trade rate; ``covers`` says whether an eviction has
cost rows a query would need, so the caller can fall back to QuestDB.

Per row the buffer keeps only what a window returns: ts, price, quantity, a symbol code, the side
and the trade id as fixed-width UTF-8 bytes (≈ 45-50 bytes a row); sequence numbers and receive
times stay in QuestDB.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..config import HybridSettings
from ..models import NO_SEQUENCE, ObjArray, TradeBatch
from .window import is_base_query, venue_key

I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]
I32Array = npt.NDArray[np.int32]
I8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
BytesArray = npt.NDArray[np.bytes_]

MAX_CLOCK_LEAD_NS = 60 * 1_000_000_000  # trades stamped further ahead do not advance expiry
MIN_ID_WIDTH = 16  # bytes a trade id gets before a longer one widens its venue
FIXED_ROW_BYTES = 8 + 8 + 8 + 4 + 1  # ts, price, quantity, symbol code, side
INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)
_MAX_CACHED_QUERIES = 4096  # per venue; bounds the cache if callers query arbitrary strings
_T = TypeVar("_T", bound=np.generic)
_SIDE_NAMES: ObjArray = np.array(["buy", "sell"], dtype=object)


def segment_bytes(rows: int, id_width: int) -> int:
    """Bytes of one segment's arrays: the unit the memory cap is counted in."""
    return rows * (FIXED_ROW_BYTES + id_width)


@dataclass(frozen=True, slots=True)
class RingStats:
    """A snapshot for status output and the benchmark."""

    rows: int
    venues: int
    segments: int
    allocated_bytes: int
    memory_cap_bytes: int
    evicted_rows: int  # dropped by the memory cap while still inside the hot window
    expired_rows: int  # overwritten or freed after the hot window passed them
    oldest_ts_ns: int | None
    newest_ts_ns: int | None
    appended_rows: int


@dataclass(frozen=True, slots=True)
class _Rows:
    """One venue's rows of a batch, already in storage dtypes (built outside the lock)."""

    exchange: str
    market_type: str
    ts: I64Array
    price: F64Array
    quantity: F64Array
    side: I8Array
    trade_id: BytesArray
    sym_codes: npt.NDArray[np.intp]  # index into sym_names
    sym_names: ObjArray  # this batch's distinct symbols

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class _Match:
    """Which symbol codes a query selects: one code (a compare) or a lookup table (a take)."""

    code: int
    table: BoolArray | None

    def mask(self, sym: I32Array) -> BoolArray:
        mask: BoolArray = sym == self.code if self.table is None else self.table[sym]
        return mask


class Segment:
    """Fixed-size preallocated columns; ``sorted`` lets a query binary-search instead of scanning."""

    __slots__ = ("max_ts", "min_ts", "n", "price", "quantity", "side", "sorted", "sym", "trade_id", "ts")

    def __init__(self, rows: int, id_width: int) -> None:
        self.ts: I64Array = np.empty(rows, dtype=np.int64)
        self.price: F64Array = np.empty(rows, dtype=np.float64)
        self.quantity: F64Array = np.empty(rows, dtype=np.float64)
        self.sym: I32Array = np.empty(rows, dtype=np.int32)
        self.side: I8Array = np.empty(rows, dtype=np.int8)
        self.trade_id: BytesArray = np.empty(rows, dtype=f"S{id_width}")
        self.n = 0
        self.min_ts = INT64_MAX
        self.max_ts = INT64_MIN
        self.sorted = True

    @property
    def full(self) -> bool:
        return self.n >= len(self.ts)

    @property
    def nbytes(self) -> int:
        return segment_bytes(len(self.ts), self.trade_id.dtype.itemsize)

    def reset(self) -> None:
        """Forget the rows (the arrays are kept and overwritten: recycling allocates nothing)."""
        self.n = 0
        self.min_ts = INT64_MAX
        self.max_ts = INT64_MIN
        self.sorted = True

    def widen(self, id_width: int) -> None:
        self.trade_id = self.trade_id.astype(f"S{id_width}")

    def write(self, rows: _Rows, sym: I32Array, start: int) -> int:
        """Copy rows from ``start`` on into the free part; return how many fitted."""
        k = min(len(self.ts) - self.n, len(rows) - start)
        a, b, stop = self.n, self.n + k, start + k
        ts = rows.ts[start:stop]
        self.ts[a:b] = ts
        self.price[a:b] = rows.price[start:stop]
        self.quantity[a:b] = rows.quantity[start:stop]
        self.sym[a:b] = sym[start:stop]
        self.side[a:b] = rows.side[start:stop]
        self.trade_id[a:b] = rows.trade_id[start:stop]
        if self.sorted:
            self.sorted = (a == 0 or int(ts[0]) >= int(self.ts[a - 1])) and bool(np.all(ts[1:] >= ts[:-1]))
        self.min_ts = min(self.min_ts, int(ts.min()))
        self.max_ts = max(self.max_ts, int(ts.max()))
        self.n = b
        return k

    def select(self, start_ns: int, end_ns: int, match: _Match) -> npt.NDArray[np.intp]:
        """Row indexes with start_ns <= ts <= end_ns and a matching symbol (method calls: this is hot)."""
        ts = self.ts[: self.n]
        if self.sorted:
            lo = int(ts.searchsorted(start_ns, "left"))
            hi = int(ts.searchsorted(end_ns, "right"))
            rows: npt.NDArray[np.intp] = match.mask(self.sym[lo:hi]).nonzero()[0]
            rows += lo
            return rows
        inside = (ts >= start_ns) & (ts <= end_ns) & match.mask(self.sym[: self.n])
        return inside.nonzero()[0]


@dataclass(frozen=True, slots=True)
class _Hit:
    """A venue's window rows copied out under the lock; turned into a ``TradeBatch`` outside it."""

    exchange: str
    market_type: str
    names: ObjArray
    ts: I64Array
    price: F64Array
    quantity: F64Array
    sym: I32Array
    side: I8Array
    trade_id: BytesArray

    def to_batch(self) -> TradeBatch:
        """Order by (ts, trade_id) like ``sort_by_time``, sorting only when arrival order is not it."""
        ts, price, quantity, sym, side, ids = self.ts, self.price, self.quantity, self.sym, self.side, self.trade_id
        if len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all()):
            # UTF-8 byte order is code point order, so this equals sorting the decoded str.
            order = np.lexsort((ids, ts))
            ts, price, quantity, sym, side, ids = (
                ts[order],
                price[order],
                quantity[order],
                sym[order],
                side[order],
                ids[order],
            )
        m = len(ts)
        sequence = np.empty(m, dtype=np.int64)
        sequence.fill(NO_SEQUENCE)
        return TradeBatch(
            ts_ns=ts,
            exchange=_repeat(self.exchange, m),
            market_type=_repeat(self.market_type, m),
            symbol=self.names[sym],
            price=price,
            quantity=quantity,
            side=_SIDE_NAMES[side],
            trade_id=np.fromiter(map(bytes.decode, ids.tolist()), dtype=object, count=m),
            sequence_number=sequence,
            recv_ns=np.zeros(m, dtype=np.int64),
        )


def _repeat(value: str, m: int) -> ObjArray:
    """``np.full`` for object arrays at a fifth of its cost (a window builds two per venue)."""
    out: ObjArray = np.empty(m, dtype=object)
    out.fill(value)
    return out


class VenueBuffer:
    """One venue's segments (arrival order, the tail last) and its symbol dictionary."""

    def __init__(self, exchange: str, market_type: str) -> None:
        self.exchange = exchange
        self.market_type = market_type
        self.segments: list[Segment] = []
        self.id_width = MIN_ID_WIDTH
        self.codes: dict[str, int] = {}
        self.names: ObjArray = np.empty(0, dtype=object)
        self.first_ts: int | None = None  # min ts of the first batch: where this venue's history starts
        self.evicted_max_ts = INT64_MIN  # newest ts of any row that left the buffer
        self.by_base: dict[str, list[int]] = {}  # base asset -> codes of its instruments
        self._matches: dict[str, _Match | None] = {}

    @property
    def tail(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    def encode_symbols(self, names: ObjArray, codes: npt.NDArray[np.intp]) -> I32Array:
        """Batch-local symbol codes to this venue's codes; new symbols get the next code, forever."""
        table = np.empty(len(names), dtype=np.int32)
        added = False
        for i, name in enumerate(names.tolist()):
            code = self.codes.get(name)
            if code is None:
                code = self.codes[name] = len(self.codes)
                self.by_base.setdefault(name.split("-", 1)[0], []).append(code)
                added = True
            table[i] = code
        if added:
            # Copy-on-write: a query that already took ``names`` keeps a consistent snapshot.
            self.names = np.array(list(self.codes), dtype=object)
            self._matches.clear()
        return table[codes]

    def match(self, query: str) -> _Match | None:
        """The codes a query selects, as ``window.symbol_matches`` decides, but through the
        ``codes``/``by_base`` indexes so a first query costs no scan (cached until a new symbol)."""
        if query in self._matches:
            return self._matches[query]
        if len(self._matches) >= _MAX_CACHED_QUERIES:
            self._matches.clear()
        if is_base_query(query):
            codes = self.by_base.get(query, [])
        else:
            code = self.codes.get(query)
            codes = [] if code is None else [code]
        found: _Match | None = None
        if len(codes) == 1:
            found = _Match(codes[0], None)
        elif codes:
            table = np.zeros(len(self.codes), dtype=bool)
            table[codes] = True
            found = _Match(-1, table)
        self._matches[query] = found
        return found

    def gather(self, query: str, start_ns: int, end_ns: int) -> _Hit | None:
        """Copy the window's rows out of the segments (overlap by min/max, then per segment)."""
        match = self.match(query)
        if match is None:
            return None
        parts = []
        for seg in self.segments:
            if seg.max_ts < start_ns or seg.min_ts > end_ns:
                continue
            idx = seg.select(start_ns, end_ns, match)
            if len(idx):
                parts.append((seg, idx))
        if not parts:
            return None
        return _Hit(
            self.exchange,
            self.market_type,
            self.names,
            _cat([seg.ts[idx] for seg, idx in parts]),
            _cat([seg.price[idx] for seg, idx in parts]),
            _cat([seg.quantity[idx] for seg, idx in parts]),
            _cat([seg.sym[idx] for seg, idx in parts]),
            _cat([seg.side[idx] for seg, idx in parts]),
            _cat([seg.trade_id[idx] for seg, idx in parts]),
        )


def _cat(parts: list[npt.NDArray[_T]]) -> npt.NDArray[_T]:
    """Concatenate, without the copy when the window sits in one segment (the common case)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class RingBuffer:
    """Recent trades per venue in recycled numpy segments; see the module docstring.

    ``append`` runs on the event loop thread, ``window``/``covers``/``stats`` may run on others:
    one uncontended lock guards the segments, and the costly conversions happen outside it.
    """

    def __init__(
        self, hot_window_s: float = 3600.0, memory_cap_bytes: int = 1 << 30, segment_rows: int = 65_536
    ) -> None:
        if hot_window_s <= 0:
            raise ValueError(f"hot_window_s must be > 0, got {hot_window_s}")
        if segment_rows <= 0:
            raise ValueError(f"segment_rows must be > 0, got {segment_rows}")
        smallest = segment_bytes(segment_rows, MIN_ID_WIDTH)
        if memory_cap_bytes < smallest:
            raise ValueError(
                f"memory_cap_bytes={memory_cap_bytes} is smaller than one segment "
                f"({segment_rows} rows = {smallest} bytes); raise the cap or lower segment_rows"
            )
        self.hot_window_ns = int(hot_window_s * 1e9)
        self.memory_cap_bytes = memory_cap_bytes
        self.segment_rows = segment_rows
        self._venues: dict[str, VenueBuffer] = {}
        self._lock = threading.Lock()
        self._allocated = 0
        self._rows = 0
        self._newest = INT64_MIN
        self._appended = 0
        self._evicted = 0
        self._expired = 0

    @classmethod
    def from_settings(cls, hybrid: HybridSettings) -> RingBuffer:
        return cls(hybrid.hot_window, hybrid.memory_cap_mb * 1024 * 1024, hybrid.segment_rows)

    @property
    def memory_bytes(self) -> int:
        """Bytes of all segment arrays (what the cap limits; untouched pages are not yet resident)."""
        return self._allocated

    # -- append ---------------------------------------------------------------------------------

    def append(self, batch: TradeBatch) -> None:
        """Copy a batch in (the same columnar batch the sender gets); old rows are overwritten."""
        if len(batch) == 0:
            return
        groups = self._prepare(batch)
        with self._lock:
            # A venue clock far ahead must not age out everybody's hour: the clock that drives
            # expiry never runs more than MAX_CLOCK_LEAD_NS ahead of this machine's.
            self._newest = max(self._newest, min(int(batch.ts_ns.max()), time.time_ns() + MAX_CLOCK_LEAD_NS))
            for rows in groups:
                self._write(rows)
            self._appended += len(batch)

    def _prepare(self, batch: TradeBatch) -> list[_Rows]:
        """Split by venue and convert to storage dtypes; validates everything before any write."""
        side = _side_codes(batch.side)
        groups = [_to_rows(batch, side, index) for index in _venue_groups(batch)]
        for rows in groups:
            width = rows.trade_id.dtype.itemsize
            if segment_bytes(self.segment_rows, width) > self.memory_cap_bytes:
                raise ValueError(
                    f"trade_id of {width} bytes makes one segment larger than memory_cap_bytes={self.memory_cap_bytes}"
                )
        return groups

    def _write(self, rows: _Rows) -> None:
        key = venue_key(rows.exchange, rows.market_type)
        vb = self._venues.get(key)
        if vb is None:
            vb = self._venues[key] = VenueBuffer(rows.exchange, rows.market_type)
        if vb.first_ts is None:
            vb.first_ts = int(rows.ts.min())
        sym = vb.encode_symbols(rows.sym_names, rows.sym_codes)
        width = rows.trade_id.dtype.itemsize
        if width > vb.id_width:
            self._widen(vb, width)
        done = 0
        while done < len(rows):
            tail = vb.tail
            if tail is None or tail.full:
                tail = self._next_segment(vb)
            k = tail.write(rows, sym, done)
            done += k
            self._rows += k

    # -- segment lifecycle ----------------------------------------------------------------------

    def _cutoff(self) -> int:
        """Rows with ts below this are outside the hot window."""
        return max(self._newest - self.hot_window_ns, INT64_MIN)

    def _next_segment(self, vb: VenueBuffer) -> Segment:
        """A fresh tail for ``vb``: an expired segment, else a new one, else the oldest one (cap)."""
        seg = self._sweep_expired(vb)
        if seg is not None:
            self._recycle(vb, seg)
            return seg
        need = segment_bytes(self.segment_rows, vb.id_width)
        while self._allocated + need > self.memory_cap_bytes:
            owner, seg = self._oldest_victim(vb, own_tail=True)
            if owner is vb:
                self._recycle(vb, seg)
                return seg
            self._free(owner, seg)
        seg = Segment(self.segment_rows, vb.id_width)
        vb.segments.append(seg)
        self._allocated += seg.nbytes
        return seg

    def _sweep_expired(self, vb: VenueBuffer) -> Segment | None:
        """Free other venues' expired segments (memory follows the hot window, not just the cap);
        return ``vb``'s oldest expired segment for recycling."""
        cutoff = self._cutoff()
        mine = None
        for owner in self._venues.values():
            expired = [seg for seg in owner.segments if seg.max_ts < cutoff]
            if owner is vb:
                mine = expired[0] if expired else None
                continue
            for seg in expired:
                self._free(owner, seg)
        return mine

    def _oldest_victim(self, vb: VenueBuffer, *, own_tail: bool) -> tuple[VenueBuffer, Segment]:
        """The segment with the smallest max_ts that may go: no other venue's tail unless nothing else."""
        candidates = [
            (owner, seg)
            for owner in self._venues.values()
            for seg in (owner.segments if owner is vb and own_tail else owner.segments[:-1])
        ]
        if not candidates:
            candidates = [(o, o.segments[-1]) for o in self._venues.values() if o is not vb and o.segments]
        if not candidates:
            raise RuntimeError("ring buffer: nothing left to evict under the memory cap")  # guarded at init
        return min(candidates, key=lambda c: c[1].max_ts)

    def _widen(self, vb: VenueBuffer, width: int) -> None:
        """Give ``vb``'s trade ids more bytes (rare: a longer id than seen so far), within the cap."""
        growth = segment_bytes(self.segment_rows, width) - segment_bytes(self.segment_rows, vb.id_width)
        while self._allocated + growth * len(vb.segments) > self.memory_cap_bytes:
            owner, seg = self._oldest_victim(vb, own_tail=False)
            self._free(owner, seg)
        for seg in vb.segments:
            seg.widen(width)
            self._allocated += growth
        vb.id_width = width

    def _drop(self, vb: VenueBuffer, seg: Segment) -> None:
        """Account for a segment's rows leaving the buffer (expired, or evicted early by the cap)."""
        if seg.n == 0:
            return
        expired = int(np.count_nonzero(seg.ts[: seg.n] < self._cutoff()))
        self._expired += expired
        self._evicted += seg.n - expired
        self._rows -= seg.n
        vb.evicted_max_ts = max(vb.evicted_max_ts, seg.max_ts)

    def _recycle(self, vb: VenueBuffer, seg: Segment) -> None:
        self._drop(vb, seg)
        vb.segments.remove(seg)
        seg.reset()
        vb.segments.append(seg)

    def _free(self, vb: VenueBuffer, seg: Segment) -> None:
        self._drop(vb, seg)
        vb.segments.remove(seg)
        self._allocated -= seg.nbytes

    # -- queries --------------------------------------------------------------------------------

    def window(
        self, symbol: str, start_ns: int, end_ns: int, venues: Collection[str] | None = None
    ) -> dict[str, TradeBatch]:
        """Trades of ``symbol`` (a pair, or a bare base for every quote) with start_ns <= ts <= end_ns,
        per venue key, ordered by (ts, trade_id); venues without rows are left out."""
        start_ns, end_ns = max(start_ns, INT64_MIN), min(end_ns, INT64_MAX)
        if end_ns < start_ns:
            return {}
        with self._lock:
            hits = {
                key: vb.gather(symbol, start_ns, end_ns)
                for key, vb in self._venues.items()
                if venues is None or key in venues
            }
        return {key: hit.to_batch() for key, hit in hits.items() if hit is not None}

    def covers(self, start_ns: int) -> bool:
        """Whether every trade received with ts >= start_ns is still held: the buffer was receiving
        by then (the earliest venue's first batch) and nothing that new was evicted or expired."""
        with self._lock:
            if not self._venues:
                return False
            first = min(vb.first_ts for vb in self._venues.values() if vb.first_ts is not None)
            evicted = max(vb.evicted_max_ts for vb in self._venues.values())
        return start_ns >= first and start_ns > evicted

    def stats(self) -> RingStats:
        with self._lock:
            held = [seg for vb in self._venues.values() for seg in vb.segments]
            filled = [seg for seg in held if seg.n]
            return RingStats(
                rows=self._rows,
                venues=len(self._venues),
                segments=len(held),
                allocated_bytes=self._allocated,
                memory_cap_bytes=self.memory_cap_bytes,
                evicted_rows=self._evicted,
                expired_rows=self._expired,
                oldest_ts_ns=min((s.min_ts for s in filled), default=None),
                newest_ts_ns=max((s.max_ts for s in filled), default=None),
                appended_rows=self._appended,
            )


def _side_codes(side: ObjArray) -> I8Array:
    """0 buy, 1 sell; anything else is a bug upstream (TradeBatch is validated), so refuse it."""
    buy = side == "buy"
    sell = side == "sell"
    bad = ~(buy | sell)
    if bad.any():
        raise ValueError(f"side must be 'buy' or 'sell', got {side[int(np.argmax(bad))]!r}")
    codes: I8Array = sell.view(np.int8)
    return codes


def _venue_groups(batch: TradeBatch) -> Iterator[slice | npt.NDArray[np.intp]]:
    """Row selections per (exchange, market_type); a one-venue batch (the usual case) is one slice."""
    ex, mt = batch.exchange, batch.market_type
    if bool(np.all(ex == ex[0])) and bool(np.all(mt == mt[0])):
        yield slice(None)
        return
    ex_codes, _ = pd.factorize(ex)
    mt_codes, mt_names = pd.factorize(mt)
    combined = ex_codes.astype(np.int64) * len(mt_names) + mt_codes
    for key in pd.unique(combined):
        yield np.flatnonzero(combined == key)


def _to_rows(batch: TradeBatch, side: I8Array, index: slice | npt.NDArray[np.intp]) -> _Rows:
    symbols = batch.symbol[index]
    codes, names = pd.factorize(symbols)
    return _Rows(
        exchange=str(batch.exchange[index][0]),
        market_type=str(batch.market_type[index][0]),
        ts=batch.ts_ns[index],
        price=batch.price[index],
        quantity=batch.quantity[index],
        side=side[index],
        trade_id=_encode_ids(batch.trade_id[index]),
        sym_codes=codes,
        sym_names=np.asarray(names, dtype=object),
    )


def _encode_ids(ids: ObjArray) -> BytesArray:
    """Trade ids as fixed-width bytes: numpy's ASCII cast when it can, UTF-8 otherwise."""
    try:
        out: BytesArray = ids.astype(np.bytes_)
    except UnicodeEncodeError:
        out = np.array([s.encode() for s in ids.tolist()], dtype=np.bytes_)
    return out
