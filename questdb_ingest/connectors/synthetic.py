"""Synthetic trades across the twelve feeds, generated as columns (no per-trade Python objects).

Used by the quick-start demo and the insert benchmark. Prices follow a per-symbol random walk,
trade ids are unique per (connector, symbol) within one ``SyntheticMarket``, and timestamps are
strictly increasing per symbol so per-symbol order can be checked after a round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models import NO_SEQUENCE, TradeBatch, now_ns
from .registry import CONNECTORS, Connector

_BASES = [
    "BTC",
    "ETH",
    "SOL",
    "XRP",
    "DOGE",
    "ADA",
    "AVAX",
    "LINK",
    "DOT",
    "TRX",
    "TON",
    "SHIB",
    "LTC",
    "BCH",
    "NEAR",
    "UNI",
    "APT",
    "ARB",
    "OP",
    "SUI",
    "PEPE",
    "WIF",
    "BONK",
    "FET",
    "INJ",
    "TIA",
    "SEI",
    "JUP",
    "PYTH",
    "STRK",
    "ORDI",
    "SATS",
    "RNDR",
    "IMX",
    "GRT",
    "AAVE",
    "MKR",
    "LDO",
    "CRV",
    "SNX",
]


def symbol_universe(count: int) -> list[str]:
    """``count`` distinct BASE-USDT symbols: real majors first, then numbered listings."""
    names = [f"{b}-USDT" for b in _BASES]
    names += [f"NEW{i:04d}-USDT" for i in range(max(0, count - len(names)))]
    return names[:count]


class SyntheticMarket:
    """A reproducible stream of trades over ``connectors`` and ``symbols``."""

    def __init__(
        self,
        *,
        symbols: int = 200,
        connectors: Sequence[Connector] = CONNECTORS,
        seed: int = 7,
        run_id: str | None = None,
    ) -> None:
        self.connectors = tuple(connectors)
        self.symbols = np.array(symbol_universe(symbols), dtype=object)
        self._rng = np.random.default_rng(seed)
        self._exchange = np.array([c.exchange for c in self.connectors], dtype=object)
        self._market = np.array([c.market_type for c in self.connectors], dtype=object)
        self._base_price = 10 ** self._rng.uniform(-3, 4.5, size=len(self.symbols))
        self._next_id = 0
        self.run_id = run_id if run_id is not None else f"{now_ns():x}"

    def batch(self, rows: int, *, start_ns: int | None = None, span_ns: int = 1_000_000_000) -> TradeBatch:
        """``rows`` trades with exchange times spread over ``[start_ns, start_ns + span_ns)``."""
        rng = self._rng
        start = now_ns() - span_ns if start_ns is None else start_ns
        conn_idx = rng.integers(0, len(self.connectors), size=rows)
        sym_idx = np.minimum(rng.zipf(1.3, size=rows) - 1, len(self.symbols) - 1)
        # Sorted offsets + a unique nanosecond tiebreak keep timestamps strictly increasing per row.
        offsets = np.sort(rng.integers(0, max(span_ns - rows, 1), size=rows)) + np.arange(rows)
        ts = start + offsets
        drift = np.exp(rng.normal(0, 0.002, size=rows))
        price = np.round(self._base_price[sym_idx] * drift, 8)
        quantity = np.round(rng.exponential(50.0, size=rows) / np.sqrt(self._base_price[sym_idx]) + 1e-6, 6)
        seq = np.arange(self._next_id, self._next_id + rows, dtype=np.int64)
        self._next_id += rows
        trade_id = np.char.add(f"{self.run_id}-", seq.astype(str)).astype(object)
        return TradeBatch(
            ts_ns=ts.astype(np.int64),
            exchange=self._exchange[conn_idx],
            market_type=self._market[conn_idx],
            symbol=self.symbols[sym_idx],
            price=price,
            quantity=quantity,
            side=np.where(rng.random(rows) < 0.5, "buy", "sell").astype(object),
            trade_id=trade_id,
            sequence_number=seq if rows else np.full(0, NO_SEQUENCE, dtype=np.int64),
            recv_ns=ts.astype(np.int64) + rng.integers(1_000_000, 50_000_000, size=rows),
        )
