"""The listing window: what a ±20 s query returns, whichever source answered it.

A window is asked for by ``symbol``: ``XYZ-USDT`` means that instrument only, a bare base
asset ``XYZ`` means every instrument of that asset on every venue (``XYZ-USDT``, ``XYZ-KRW``,
...), which is what a new listing needs. Bounds are inclusive at both ends, as ``BETWEEN``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models import TradeBatch

SOURCES = ("buffer", "questdb")


def venue_key(exchange: str, market_type: str) -> str:
    """``exchange_market`` key of a venue feed, e.g. ``binance_futures`` (the connector name)."""
    return f"{exchange}_{market_type}"


def is_base_query(symbol: str) -> bool:
    """True when ``symbol`` names a base asset (every quote), False for one ``BASE-QUOTE`` pair."""
    return "-" not in symbol


def symbol_matches(query: str, symbol: str) -> bool:
    """Whether an instrument ``symbol`` (``BASE-QUOTE``) belongs to the window asked for."""
    if is_base_query(query):
        return symbol.split("-", 1)[0] == query
    return symbol == query


def sort_by_time(batch: TradeBatch) -> TradeBatch:
    """Rows by (ts, trade_id) so both sources present a window in the same order."""
    if len(batch) < 2:
        return batch
    order = np.lexsort((batch.trade_id.astype(str), batch.ts_ns))
    return batch.take(order)


@dataclass(frozen=True)
class VenueDiff:
    """One venue's disagreement by trade id: ``a`` is the safe source, ``b`` the candidate."""

    venue: str
    rows_a: int
    rows_b: int
    missing: tuple[str, ...] = ()  # in a, not in b
    extra: tuple[str, ...] = ()  # in b, not in a
    mismatched: tuple[str, ...] = ()  # in both, with a different ts, price, quantity, side or symbol

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.mismatched)


@dataclass(frozen=True)
class WindowDiff:
    source_a: str
    source_b: str
    venues: dict[str, VenueDiff]
    latency_a_ms: float
    latency_b_ms: float

    @property
    def clean(self) -> bool:
        return all(v.clean for v in self.venues.values())

    @property
    def differences(self) -> int:
        return sum(len(v.missing) + len(v.extra) + len(v.mismatched) for v in self.venues.values())


@dataclass(frozen=True)
class ListingData:
    """Trades of one window grouped by venue (``exchange_market``), and where they came from."""

    symbol: str
    trigger_ns: int
    start_ns: int
    end_ns: int
    source: str
    venues: dict[str, TradeBatch]
    latency_ms: float
    fell_back: bool = False  # QuestDB failed and the buffer answered
    diff: WindowDiff | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_trades(self) -> int:
        return sum(len(b) for b in self.venues.values())

    @property
    def exchanges_with_data(self) -> int:
        return sum(1 for b in self.venues.values() if len(b))

    def counts(self) -> dict[str, int]:
        return {venue: len(b) for venue, b in sorted(self.venues.items()) if len(b)}
