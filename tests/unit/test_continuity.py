"""Holes in a live stream from per-instrument consecutive trade ids (Binance)."""

from __future__ import annotations

import numpy as np

from questdb_ingest.connectors.continuity import IdHole, TradeIds
from questdb_ingest.models import TradeBatch


def _batch(rows: list[tuple[str, int | str, int]]) -> TradeBatch:
    n = len(rows)
    return TradeBatch.from_columns(
        ts_ns=np.array([r[2] for r in rows], dtype=np.int64),
        exchange=np.full(n, "binance", dtype=object),
        market_type=np.full(n, "spot", dtype=object),
        symbol=np.array([r[0] for r in rows], dtype=object),
        price=np.ones(n),
        quantity=np.ones(n),
        side=np.full(n, "buy", dtype=object),
        trade_id=np.array([str(r[1]) for r in rows], dtype=object),
    )


def test_a_jump_is_a_hole_with_the_times_around_it_per_symbol() -> None:
    ids = TradeIds()
    assert ids.check(_batch([("A", 1, 10), ("B", 5, 11), ("A", 2, 12), ("A", 5, 13), ("B", 6, 14)])) == [
        IdHole("A", 2, 5, 12, 13)
    ]
    [hole] = ids.check(_batch([("A", 6, 20), ("B", 9, 22)]))  # across batches: B's last was 6
    assert hole == IdHole("B", 6, 9, 14, 22) and hole.missing == 2


def test_repeats_and_late_ids_are_not_holes() -> None:
    """A rotation overlap or a resend delivers ids at or below the highest seen: not a hole."""
    ids = TradeIds()
    assert ids.check(_batch([("A", 10, 1), ("A", 11, 2), ("A", 10, 3), ("A", 11, 4), ("A", 12, 5)])) == []
    assert ids.check(_batch([("A", 12, 6), ("A", 13, 7)])) == []


def test_skipped_and_forgotten_symbols_start_afresh() -> None:
    ids = TradeIds()
    ids.check(_batch([("A", 1, 1), ("B", 1, 1)]))
    assert ids.check(_batch([("A", 9, 2)]), skip={"A"}) == []  # rotating: tracked, not judged
    assert ids.check(_batch([("A", 10, 3)])) == []
    ids.forget(["B"])  # reconnected: the disconnect gap covers the hole
    assert ids.check(_batch([("B", 50, 4), ("B", 51, 5)])) == []


def test_non_numeric_ids_are_not_checked() -> None:
    assert TradeIds().check(_batch([("A", "x1", 1), ("A", "x9", 2)])) == []
