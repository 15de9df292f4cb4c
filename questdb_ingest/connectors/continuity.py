"""Holes in a live trade stream, from trade ids that count up by one per instrument (Binance).

A stall shorter than the silence watchdog leaves no disconnect behind: the socket stays up, the
venue (or something between) just never delivers some trades. Where the venue numbers its trades
consecutively per instrument, the jump in the ids shows the hole exactly. ``TradeIds`` keeps the
highest id seen per symbol; an id more than one past it is a hole. Ids at or below it (a rotation
overlap, a resend) are not holes; symbols whose connection is rotating are only tracked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..models import TradeBatch


@dataclass(frozen=True, slots=True)
class IdHole:
    """Trades ``last_id + 1 … next_id - 1`` of ``symbol`` never arrived (between those two times)."""

    symbol: str
    last_id: int
    next_id: int
    start_ns: int
    end_ns: int

    @property
    def missing(self) -> int:
        return self.next_id - self.last_id - 1


class TradeIds:
    """The highest trade id (and its time) seen per symbol."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    def forget(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self._last.pop(symbol, None)

    def check(self, batch: TradeBatch, skip: set[str] | frozenset[str] = frozenset()) -> list[IdHole]:
        """The holes this batch shows (in arrival order per symbol); remembers its highest ids."""
        if not len(batch):
            return []
        try:
            ids = batch.trade_id.astype(np.int64)
        except (TypeError, ValueError, OverflowError):  # not numeric: nothing to check against
            return []
        codes, uniques = pd.factorize(batch.symbol)
        order = np.argsort(codes, kind="stable")  # grouped by symbol, arrival order kept
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        holes: list[IdHole] = []
        for group in np.split(order, bounds):
            symbol = str(uniques[codes[group[0]]])
            sym_ids, sym_ts = ids[group], batch.ts_ns[group]
            prev = self._last.get(symbol)
            if prev is not None:
                sym_ids = np.concatenate(([prev[0]], sym_ids))
                sym_ts = np.concatenate(([prev[1]], sym_ts))
            top = np.maximum.accumulate(sym_ids)
            if symbol not in skip and len(sym_ids) > 1:
                jumps = np.flatnonzero(sym_ids[1:] > top[:-1] + 1)
                for j in jumps.tolist():
                    # The trade before the hole is the one that set the running maximum.
                    before = int(np.flatnonzero(sym_ids[: j + 1] == top[j])[-1])
                    holes.append(
                        IdHole(symbol, int(top[j]), int(sym_ids[j + 1]), int(sym_ts[before]), int(sym_ts[j + 1]))
                    )
            best = int(np.argmax(sym_ids))
            self._last[symbol] = (int(sym_ids[best]), int(sym_ts[best]))
        return holes
