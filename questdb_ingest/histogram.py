"""Latency distributions: HdrHistogram (the ``hdrhistogram`` package) with microsecond resolution.

Fixed buckets made p50 = p99 = max whenever every value fell into one wide bucket (5 to 10 s); an
HDR histogram keeps three significant digits over 1 µs … 1 h in a few KB, merges exactly across
worker processes (its compressed encoding travels in the stats snapshots) and answers any
percentile. Filling it from numpy stays cheap: values are first rounded to the histogram's own
precision (three significant digits) and counted per distinct value, so a 50,000-row batch costs
a few hundred ``record_value`` calls, not one per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour; longer values are clamped (and the exact max is kept)
SIGNIFICANT_DIGITS = 3


def _new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


_VALUES: dict[int, npt.NDArray[np.float64]] = {}


def _index_values(h: HdrHistogram) -> npt.NDArray[np.float64]:
    """The highest value (µs) each slot of an HDR counts array holds, ascending (HdrHistogram's
    ``get_value_from_index`` + equivalent range, vectorised; one layout for all our histograms)."""
    if h.counts_len not in _VALUES:
        idx = np.arange(h.counts_len, dtype=np.int64)
        bucket = (idx >> h.sub_bucket_half_count_magnitude) - 1
        sub = (idx & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
        low = bucket < 0
        sub[low] -= h.sub_bucket_half_count
        bucket[low] = 0
        lowest = sub << (bucket + h.unit_magnitude)
        # the slot's highest equivalent value: a sample counts under a bound only if its whole slot does
        _VALUES[h.counts_len] = (lowest + (1 << (bucket + h.unit_magnitude)) - 1).astype(np.float64)
    return _VALUES[h.counts_len]


class Histogram:
    """A latency distribution in milliseconds, with the exact sum and max beside the HDR counts."""

    __slots__ = ("_hdr", "max_ms", "sum_ms")

    def __init__(self) -> None:
        self._hdr = _new()
        self.sum_ms = 0.0
        self.max_ms = 0.0

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def add(self, value_ms: float) -> None:
        self.add_many(np.asarray([value_ms], dtype=np.float64))

    def add_many(self, values_ms: npt.NDArray[np.float64]) -> None:
        if len(values_ms) == 0:
            return
        us = np.clip(np.rint(values_ms * 1000.0), LOWEST_US, HIGHEST_US)
        step = 10.0 ** np.maximum(np.floor(np.log10(us)) - (SIGNIFICANT_DIGITS - 1), 0.0)
        values, counts = np.unique((np.rint(us / step) * step).astype(np.int64), return_counts=True)
        for value, n in zip(values.tolist(), counts.tolist(), strict=True):
            self._hdr.record_value(value, n)
        self.sum_ms += float(values_ms.sum())
        self.max_ms = max(self.max_ms, float(values_ms.max()))

    def merge(self, other: Histogram) -> Histogram:
        if other.count:
            self._hdr.add(other._hdr)
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        return self

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` (0..1) in ms, within 0.1 %; never above the exact max; 0 if empty."""
        if self.count == 0:
            return 0.0
        if q >= 1.0:
            return self.max_ms
        return min(float(self._hdr.get_value_at_percentile(q * 100.0)) / 1000.0, self.max_ms)

    @property
    def mean_ms(self) -> float:
        return self.sum_ms / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON/pickle-friendly: the HDR counts in their standard compressed base64 encoding."""
        hdr = self._hdr.encode().decode("ascii") if self.count else ""
        return {"hdr": hdr, "sum_ms": self.sum_ms, "max_ms": self.max_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        h = cls()
        if data.get("hdr"):
            h._hdr.decode_and_add(data["hdr"])
        h.sum_ms = float(data["sum_ms"])
        h.max_ms = float(data["max_ms"])
        return h

    def cumulative(self, bounds_ms: list[float]) -> list[int]:
        """Recorded values ≤ each bound (ascending bounds): a Prometheus histogram's ``le`` buckets.
        Vectorised over the HDR counts array (the library's iterator is ~1000x slower in Python)."""
        counts = np.ctypeslib.as_array(self._hdr.counts)
        cum = np.cumsum(counts)
        values_ms = _index_values(self._hdr) / 1000.0
        at = np.searchsorted(values_ms, np.asarray(bounds_ms, dtype=np.float64), side="right")
        return [int(cum[i - 1]) if i else 0 for i in at.tolist()]

    def summary(self) -> dict[str, float]:
        return {
            "count": self.count,
            "mean_ms": round(self.mean_ms, 3),
            "p50_ms": round(self.quantile(0.5), 3),
            "p90_ms": round(self.quantile(0.9), 3),
            "p99_ms": round(self.quantile(0.99), 3),
            "max_ms": round(self.max_ms, 3),
        }


def histogram_for(by_key: dict[str, Histogram], key: str) -> Histogram:
    """``by_key[key]``, created on first use (``setdefault(key, Histogram())`` would allocate an HDR
    counts array on every call: measured 3.5 % of a worker's CPU)."""
    h = by_key.get(key)
    if h is None:
        h = by_key[key] = Histogram()
    return h
