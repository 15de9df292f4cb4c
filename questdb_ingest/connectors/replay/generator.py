"""Deterministic trades for the replay server: same seed and calls, same trades.

Per tick the generator draws every random number for all trades at once (numpy) and only the
final ``Trade`` objects are built per row, so generation stays far cheaper than encoding and
sending. Prices walk per instrument, rounded to at most 8 decimals within 0.001..100000;
quantities are rounded to at most 6 decimals, or are whole contracts (``inst.to_base(k)``, k ≥ 1)
on instruments with a contract size and on every instrument of a venue that has one. Trade ids
are per-connector increasing integers from ``id_base``, so a restarted server (time-derived
base) never reuses an id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ...models import Trade
from ..core import Instrument, VenueProtocol
from ..synthetic import symbol_universe
from .config import quote_for

MIN_PRICE = 0.001
MAX_PRICE = 100_000.0
_LOG_MIN, _LOG_MAX = math.log(MIN_PRICE), math.log(MAX_PRICE)
_STEP = 0.0004  # per-trade log-price standard deviation
_NOTIONAL_MU, _NOTIONAL_SIGMA = math.log(250.0), 1.3  # quote value per trade, log-normal
_MAX_CONTRACTS = 1_000_000
_ZIPF = 1.2  # weight of the r-th instrument of a venue is 1 / r**_ZIPF: a few hot symbols
_SIDES = np.array(["sell", "buy"], dtype=object)
# Realistic starting points for the majors; everything else starts at a seeded random price.
_ANCHORS = {"BTC": 65_000.0, "ETH": 3_200.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15, "ADA": 0.45}
_KRW_PER_USDT = 1_400.0


def bases(count: int) -> list[str]:
    """``count`` base assets: real majors first, then numbered listings (shared with ``synthetic``)."""
    return [name.partition("-")[0] for name in symbol_universe(count)]


def universe(protocol: VenueProtocol, count: int) -> list[Instrument]:
    """The instruments a connector lists on the replay server (quote USDT, KRW on Upbit/Bithumb)."""
    quote = quote_for(protocol.spec.connector)
    return [protocol.instrument_for(base, quote) for base in bases(count)]


def _decimals(price: float, limit: int) -> int:
    """About 7 significant digits, at most 8 decimals (and at most the venue's scale)."""
    digits = 7 - (math.floor(math.log10(price)) + 1)
    return max(0, min(8, limit, digits))


def start_price(base: str, quote: str, seed: int) -> float:
    """Where an instrument's walk starts (deterministic per seed, base and quote)."""
    price = _ANCHORS.get(base) or math.exp(random.Random(f"{seed}:{base}").uniform(math.log(0.01), math.log(500.0)))
    if quote == "KRW":
        price *= _KRW_PER_USDT
    return min(max(price, MIN_PRICE), 0.8 * MAX_PRICE)  # room to walk either way


class Batch(NamedTuple):
    """Trades of one instrument from one tick, with the sums the server's stats need."""

    connector: str
    inst: Instrument
    trades: list[Trade]
    price_sum: float
    quantity_sum: float


@dataclass(slots=True)
class _Venue:
    connector: str
    exchange: str
    market_type: str
    next_id: int
    ranks: dict[str, int]  # venue symbol → position in the venue's list (weight)
    whole_contracts: bool  # every quantity is a whole number of contracts, even at multiplier 1
    per_instrument_ids: bool = False  # ids count up per instrument (as Binance's do), not per venue
    weight_sum: float = 0.0
    active: int = 0


@dataclass(slots=True)
class _Book:
    venue: _Venue
    inst: Instrument
    symbol: str
    next_id: int = 0


class TradeGenerator:
    """Trades for the instruments clients have subscribed to, over any number of connectors."""

    def __init__(self, *, seed: int, id_base: int) -> None:
        self.seed = seed
        self.id_base = id_base
        self._rng = np.random.default_rng(seed)
        self._venues: dict[str, _Venue] = {}
        self._instruments: dict[str, dict[str, Instrument]] = {}
        self._books: list[_Book] = []
        self._index: dict[tuple[str, str], int] = {}
        self._log_price: npt.NDArray[np.float64] = np.empty(0)
        self._price_scale: npt.NDArray[np.float64] = np.empty(0)
        self._qty_scale: npt.NDArray[np.float64] = np.empty(0)
        self._contract: npt.NDArray[np.bool_] = np.empty(0, dtype=bool)
        self._num: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._den: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._exact_vector = True  # contract sizes small enough for exact int64/float64 maths
        self._p: npt.NDArray[np.float64] | None = None

    # ---- universe ---------------------------------------------------------------------
    def add_venue(
        self,
        connector: str,
        exchange: str,
        market_type: str,
        instruments: Sequence[Instrument],
        *,
        whole_contracts: bool | None = None,
        per_instrument_ids: bool = False,
    ) -> None:
        """A connector and its listed instruments.

        ``whole_contracts`` defaults to "some instrument has a contract size": such a venue quotes
        sizes in contracts, so its multiplier-1 instruments must trade whole units too.
        ``per_instrument_ids``: trade ids count up by one per instrument (the venue's
        ``contiguous_ids``), so a client can tell from them that trades were missed.
        """
        if whole_contracts is None:
            whole_contracts = any(i.size_num != i.size_den for i in instruments)
        self._venues[connector] = _Venue(
            connector, exchange, market_type, self.id_base, {}, whole_contracts, per_instrument_ids
        )
        self._instruments[connector] = {}
        for inst in instruments:
            self.add_instrument(connector, inst)

    def add_instrument(self, connector: str, inst: Instrument, *, hot: bool = False) -> bool:
        """List ``inst`` on ``connector`` (no trades until activated); False when already listed.
        ``hot``: a listing made while running trades like the venue's busiest instrument, as a new
        listing pumps (at the last rank it would see a trade every few seconds)."""
        listed = self._instruments[connector]
        if inst.venue_symbol in listed:
            return False
        venue = self._venues[connector]
        listed[inst.venue_symbol] = inst
        venue.ranks[inst.venue_symbol] = 1 if hot else len(venue.ranks) + 1
        return True

    def instruments(self, connector: str) -> list[Instrument]:
        return list(self._instruments[connector].values())

    def instrument(self, connector: str, venue_symbol: str) -> Instrument | None:
        return self._instruments[connector].get(venue_symbol)

    def is_active(self, connector: str, venue_symbol: str) -> bool:
        return (connector, venue_symbol) in self._index

    def activate(self, connector: str, venue_symbol: str) -> bool:
        """Start trading a listed instrument (for good); False when unknown or already trading."""
        inst = self._instruments[connector].get(venue_symbol)
        if inst is None or (connector, venue_symbol) in self._index:
            return False
        venue = self._venues[connector]
        self._index[(connector, venue_symbol)] = len(self._books)
        self._books.append(_Book(venue, inst, inst.symbol, self.id_base))
        venue.weight_sum += venue.ranks[venue_symbol] ** -_ZIPF
        venue.active += 1
        price = start_price(inst.base, inst.quote, self.seed)
        contract = venue.whole_contracts or inst.size_num != inst.size_den
        self._log_price = np.append(self._log_price, math.log(price))
        self._price_scale = np.append(self._price_scale, 10.0 ** _decimals(price, inst.price_scale or 8))
        self._qty_scale = np.append(self._qty_scale, 10.0 ** min(6, inst.qty_scale or 6))
        self._contract = np.append(self._contract, contract)
        self._num = np.append(self._num, np.int64(inst.size_num))
        self._den = np.append(self._den, np.int64(inst.size_den))
        if contract and (inst.size_num * _MAX_CONTRACTS >= 2**53 or inst.size_den >= 2**53):
            self._exact_vector = False
        self._p = None
        return True

    @property
    def active_count(self) -> int:
        return len(self._books)

    def _weights(self) -> npt.NDArray[np.float64]:
        if self._p is None:
            venues = sum(1 for v in self._venues.values() if v.active)
            p = np.array(
                [b.venue.ranks[b.inst.venue_symbol] ** -_ZIPF / b.venue.weight_sum / venues for b in self._books]
            )
            self._p = p / p.sum()
        return self._p

    # ---- trades -----------------------------------------------------------------------
    def generate(self, n: int, start_ns: int, end_ns: int) -> list[Batch]:
        """``n`` trades spread over the active instruments, timed within ``(start_ns, end_ns]``."""
        if n <= 0 or not self._books:
            return []
        rng = self._rng
        counts = rng.multinomial(n, self._weights())
        nz = np.flatnonzero(counts)
        c = counts[nz]
        ends = np.cumsum(c)
        starts = ends - c

        # Random walks of all instruments in one cumulative sum, re-based per segment.
        cs = np.cumsum(rng.standard_normal(n) * _STEP)
        before = np.concatenate(([0.0], cs[ends[:-1] - 1]))
        log_p = np.repeat(self._log_price[nz] - before, c) + cs
        np.clip(log_p, _LOG_MIN, _LOG_MAX, out=log_p)
        self._log_price[nz] = log_p[ends - 1]
        p_scale = np.repeat(self._price_scale[nz], c)
        price = np.maximum(np.rint(np.exp(log_p) * p_scale), 1.0) / p_scale

        raw = np.minimum(rng.lognormal(_NOTIONAL_MU, _NOTIONAL_SIGMA, n) / price, 1e9)
        q_scale = np.repeat(self._qty_scale[nz], c)
        qty = np.maximum(np.rint(raw * q_scale), 1.0) / q_scale
        contract = np.repeat(self._contract[nz], c)
        if contract.any():
            num = np.repeat(self._num[nz], c)[contract]
            den = np.repeat(self._den[nz], c)[contract]
            k = np.clip(np.rint(raw[contract] * den / num), 1, _MAX_CONTRACTS).astype(np.int64)
            if self._exact_vector:
                qty[contract] = (k * num) / den  # == Instrument.to_base(k): one rounding of k*num/den
            else:
                insts = [self._books[i].inst for i, cc in zip(nz.tolist(), c.tolist(), strict=True) for _ in range(cc)]
                picked = [inst for inst, m in zip(insts, contract.tolist(), strict=True) if m]
                qty[contract] = [inst.to_base(int(kk)) for inst, kk in zip(picked, k.tolist(), strict=True)]

        sides = _SIDES[(rng.random(n) < 0.5).astype(np.intp)].tolist()
        span = max(end_ns - start_ns, 0)
        ts = (start_ns + (np.arange(1, n + 1, dtype=np.int64) * span) // n).tolist()
        prices = price.tolist()
        qtys = qty.tolist()

        out: list[Batch] = []
        books = self._books
        for i, count, s in zip(nz.tolist(), c.tolist(), starts.tolist(), strict=True):
            book = books[i]
            venue = book.venue
            if venue.per_instrument_ids:
                first = book.next_id
                book.next_id = first + count
            else:
                first = venue.next_id
                venue.next_id = first + count
            e = s + count
            ex, mt, sym = venue.exchange, venue.market_type, book.symbol
            seg_p = prices[s:e]
            seg_q = qtys[s:e]
            trades = [
                Trade(ts_ns=t, exchange=ex, market_type=mt, symbol=sym, price=p, quantity=q, side=sd, trade_id=str(tid))
                for t, p, q, sd, tid in zip(ts[s:e], seg_p, seg_q, sides[s:e], range(first, first + count), strict=True)
            ]
            out.append(Batch(venue.connector, book.inst, trades, sum(seg_p), sum(seg_q)))
        return out
