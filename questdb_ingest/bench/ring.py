"""Ring buffer benchmark: fill an hour of trades, then time ±20 s listing-window queries.

Checks the issue's targets without QuestDB: 1 h at 5,000 trades/s (18 M trades) within 1 GB of
RSS, and a ±20 s window query within 1 ms p99. Batches look like the feeds' (one venue each,
~5,000 rows, object columns of ``str``), so the fill rate includes the conversion an ``append``
really does. Venues have numeric trade ids of 10-19 digits, one has 36-char UUIDs, and one
quotes in KRW, so a base-asset query matches two quotes.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from ..hybrid.ring import RingBuffer
from ..models import NO_SEQUENCE, ObjArray, TradeBatch

NS = 1_000_000_000
HOUR_NS = 3600 * NS
T0_NS = 1_735_689_600 * NS  # 2025-01-01: fixed, so a seed reproduces the same data
BATCH_ROWS = 5_000
HALF_WINDOW_NS = 20 * NS
_EXCHANGES = ("binance", "bybit", "okx", "kucoin", "gate", "phemex", "upbit", "bithumb")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _venues(count: int) -> list[tuple[str, str, str, str]]:
    """(exchange, market_type, quote, id kind) per venue; the last venue has UUID ids."""
    out = []
    for i in range(count):
        exchange = _EXCHANGES[(i // 2) % len(_EXCHANGES)] + ("" if i < 2 * len(_EXCHANGES) else str(i))
        market = "spot" if i % 2 == 0 else "futures"
        quote = "KRW" if exchange in ("upbit", "bithumb") else "USDT"
        kind = "uuid" if i == count - 1 else str(10 + i % 10)
        out.append((exchange, market, quote, kind))
    return out


def _digit_ids(rng: np.random.Generator, rows: int, digits: int) -> ObjArray:
    ids = rng.integers(10 ** (digits - 1), 10**digits, size=rows, dtype=np.uint64)
    out: ObjArray = ids.astype(str).astype(object)
    return out


def _uuid_ids(rng: np.random.Generator, rows: int) -> ObjArray:
    """Random UUID-shaped ids, built as bytes in one go (uuid.uuid4() per row would dominate)."""
    chars = np.full((rows, 36), ord("-"), dtype=np.uint8)
    chars[:, _UUID_DIGITS] = _HEX[rng.integers(0, 16, size=(rows, 32))]
    out: ObjArray = chars.view("S36").ravel().astype(str).astype(object)
    return out


def _batch(
    rng: np.random.Generator, venue: tuple[str, str, str, str], names: ObjArray, rows: int, start_ns: int, span_ns: int
) -> TradeBatch:
    exchange, market, _, kind = venue
    ts = start_ns + np.sort(rng.integers(0, span_ns, size=rows))
    ids = _uuid_ids(rng, rows) if kind == "uuid" else _digit_ids(rng, rows, int(kind))
    sides: ObjArray = np.array(["buy", "sell"], dtype=object)
    return TradeBatch(
        ts_ns=ts.astype(np.int64),
        exchange=np.full(rows, exchange, dtype=object),
        market_type=np.full(rows, market, dtype=object),
        symbol=names[rng.integers(0, len(names), size=rows)],
        price=rng.uniform(0.5, 200.0, size=rows),
        quantity=rng.exponential(10.0, size=rows) + 1e-6,
        side=sides[rng.integers(0, 2, size=rows)],
        trade_id=ids,
        sequence_number=np.full(rows, NO_SEQUENCE, dtype=np.int64),
        recv_ns=ts.astype(np.int64),
    )


def _rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[:5]] = int(line.split()[1]) * 1024
    peak = values.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return values.get("VmRSS", peak), peak


def _fill(ring: RingBuffer, rng: np.random.Generator, trades: int, venues: int, symbols: int) -> float:
    """Append ``trades`` rows spread evenly over one hour; return the seconds spent in ``append``."""
    plan = _venues(venues)
    bases = [f"C{i:03d}" for i in range(symbols)]
    names = {quote: np.array([f"{b}-{quote}" for b in bases], dtype=object) for quote in ("USDT", "KRW")}
    starts = range(0, trades, BATCH_ROWS)
    span = HOUR_NS // max(1, len(starts))
    spent = 0.0
    for k, first in enumerate(starts):
        venue = plan[k % len(plan)]
        rows = min(BATCH_ROWS, trades - first)
        batch = _batch(rng, venue, names[venue[2]], rows, T0_NS + k * span, span)
        started = time.perf_counter()
        ring.append(batch)
        spent += time.perf_counter() - started
    return spent


def _percentiles_us(samples: npt.NDArray[np.float64]) -> dict[str, float]:
    return {
        "p50_us": float(np.percentile(samples, 50)),
        "p99_us": float(np.percentile(samples, 99)),
        "max_us": float(samples.max()),
    }


def _time_queries(ring: RingBuffer, rng: np.random.Generator, symbols: int, queries: int, pair: bool) -> dict[str, Any]:
    """±20 s windows at random triggers inside the hour: a base asset (every venue) or one pair."""
    lat = np.empty(queries, dtype=np.float64)
    rows = np.empty(queries, dtype=np.int64)
    triggers = T0_NS + HALF_WINDOW_NS + rng.integers(0, HOUR_NS - 2 * HALF_WINDOW_NS, size=queries)
    for i in range(queries):
        base = f"C{int(rng.integers(0, symbols)):03d}"
        symbol = f"{base}-USDT" if pair else base
        t = int(triggers[i])
        started = time.perf_counter_ns()
        result = ring.window(symbol, t - HALF_WINDOW_NS, t + HALF_WINDOW_NS)
        lat[i] = (time.perf_counter_ns() - started) / 1e3
        rows[i] = sum(len(b) for b in result.values())
    return {**_percentiles_us(lat), "mean_rows": float(rows.mean())}


def run_ring_bench(trades: int, venues: int, symbols: int, queries: int, seed: int) -> dict[str, Any]:
    """Fill a default-sized ring buffer and time window queries; numbers for the report/CLI."""
    rng = np.random.default_rng(seed)
    rss_before, _ = _rss()
    ring = RingBuffer()
    append_s = _fill(ring, rng, trades, venues, symbols)
    rss_after, rss_peak = _rss()
    stats = ring.stats()
    base = _time_queries(ring, rng, symbols, queries, pair=False)
    pair = _time_queries(ring, rng, symbols, queries, pair=True)
    return {
        "trades": stats.appended_rows,
        "venues": stats.venues,
        "symbols": symbols,
        "rows_held": stats.rows,
        "segments": stats.segments,
        "evicted_rows": stats.evicted_rows,
        "allocated_bytes": stats.allocated_bytes,
        "allocated_bytes_per_row": stats.allocated_bytes / max(1, stats.rows),
        "rss_bytes": rss_after,
        "rss_peak_bytes": rss_peak,
        "rss_before_bytes": rss_before,
        "append_s": append_s,
        "fill_rate_per_s": stats.appended_rows / append_s if append_s else 0.0,
        "query_base": base,
        "query_pair": pair,
    }
