"""Shadow compare: two answers for the same window, diffed per venue by trade id.

Compare mode reads the safe source (the buffer) before and after the candidate (QuestDB,
synced to everything the buffer had): a trade the first buffer read has and QuestDB lacks is
*missing*; a trade QuestDB has that even the second buffer read lacks is *extra*; a trade
both have with other values is *mismatched*. Trades that arrived between the reads are
therefore never reported as differences.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..models import CompareRecord, TradeBatch
from .window import VenueDiff, WindowDiff

Key = tuple[str, str]  # (symbol, trade_id): the DEDUP key without ts, exchange and market
Values = tuple[int, float, float, str]
SAMPLE_IDS = 10


def _rows(batch: TradeBatch | None) -> dict[Key, Values]:
    if batch is None or not len(batch):
        return {}
    keys = zip(batch.symbol.tolist(), batch.trade_id.tolist(), strict=True)
    values = zip(batch.ts_ns.tolist(), batch.price.tolist(), batch.quantity.tolist(), batch.side.tolist(), strict=True)
    return dict(zip(keys, values, strict=True))


def _same(a: Values, b: Values) -> bool:
    return a[0] == b[0] and a[3] == b[3] and bool(np.float64(a[1]) == b[1]) and bool(np.float64(a[2]) == b[2])


def _ids(keys: set[Key]) -> tuple[str, ...]:
    return tuple(tid for _, tid in sorted(keys))


def diff_venue(venue: str, a: TradeBatch | None, b: TradeBatch | None, a_after: TradeBatch | None = None) -> VenueDiff:
    """Diff one venue; ``a_after`` is the safe source read again after ``b`` (None: reuse ``a``)."""
    rows_a, rows_b = _rows(a), _rows(b)
    rows_a2 = rows_a if a_after is None else _rows(a_after)
    missing = set(rows_a) - set(rows_b)
    extra = set(rows_b) - set(rows_a2)
    mismatched = {k for k in set(rows_b) & set(rows_a2) if not _same(rows_a2[k], rows_b[k])}
    return VenueDiff(
        venue=venue,
        rows_a=len(rows_a2),
        rows_b=len(rows_b),
        missing=_ids(missing),
        extra=_ids(extra),
        mismatched=_ids(mismatched),
    )


def diff_windows(
    a: Mapping[str, TradeBatch],
    b: Mapping[str, TradeBatch],
    a_after: Mapping[str, TradeBatch] | None = None,
    *,
    source_a: str = "buffer",
    source_b: str = "questdb",
    latency_a_ms: float = 0.0,
    latency_b_ms: float = 0.0,
) -> WindowDiff:
    """Per-venue diff of two window answers (every venue either side has appears in the result)."""
    venues = sorted(set(a) | set(b) | set(a_after or {}))
    return WindowDiff(
        source_a=source_a,
        source_b=source_b,
        venues={v: diff_venue(v, a.get(v), b.get(v), None if a_after is None else a_after.get(v)) for v in venues},
        latency_a_ms=latency_a_ms,
        latency_b_ms=latency_b_ms,
    )


def compare_records(diff: WindowDiff, *, symbol: str, start_ns: int, end_ns: int, at_ns: int) -> list[CompareRecord]:
    """``shadow_compare`` rows: one per venue, with up to ``SAMPLE_IDS`` differing ids named."""
    out = []
    for venue, d in diff.venues.items():
        sample = [f"missing:{i}" for i in d.missing] + [f"extra:{i}" for i in d.extra]
        sample += [f"mismatched:{i}" for i in d.mismatched]
        out.append(
            CompareRecord(
                ts_ns=at_ns,
                symbol=symbol,
                exchange_market=venue,
                source_a=diff.source_a,
                source_b=diff.source_b,
                window_start_ns=start_ns,
                window_end_ns=end_ns,
                rows_a=d.rows_a,
                rows_b=d.rows_b,
                missing=len(d.missing),
                extra=len(d.extra),
                mismatched=len(d.mismatched),
                sample_ids=",".join(sample[:SAMPLE_IDS]),
                latency_a_ms=diff.latency_a_ms,
                latency_b_ms=diff.latency_b_ms,
            )
        )
    return out
