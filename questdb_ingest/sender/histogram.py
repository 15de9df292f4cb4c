"""Fixed-bucket latency histograms: cheap to fill from numpy arrays, cheap to ship between processes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# Upper bounds in milliseconds; the last bucket is open-ended.
BOUNDS_MS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    750,
    1000,
    1250,
    1500,
    2000,
    5000,
    10000,
    30000,
    60000,
)
_BOUNDS = np.asarray(BOUNDS_MS, dtype=np.float64)
BUCKETS = len(BOUNDS_MS) + 1


class Histogram:
    """Counts per bucket plus the exact sum and max (for the mean and the worst case)."""

    __slots__ = ("counts", "max_ms", "sum_ms")

    def __init__(self) -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        self.sum_ms = 0.0
        self.max_ms = 0.0

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, value_ms: float) -> None:
        self.add_many(np.asarray([value_ms], dtype=np.float64))

    def add_many(self, values_ms: npt.NDArray[np.float64]) -> None:
        if len(values_ms) == 0:
            return
        self.counts += np.bincount(np.searchsorted(_BOUNDS, values_ms, side="left"), minlength=BUCKETS)
        self.sum_ms += float(values_ms.sum())
        self.max_ms = max(self.max_ms, float(values_ms.max()))

    def merge(self, other: Histogram) -> Histogram:
        self.counts += other.counts
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        return self

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (the max for the open bucket); 0 if empty."""
        total = self.count
        if total == 0:
            return 0.0
        bucket = int(np.searchsorted(np.cumsum(self.counts), q * total, side="left"))
        return min(float(BOUNDS_MS[bucket]), self.max_ms) if bucket < len(BOUNDS_MS) else self.max_ms

    @property
    def mean_ms(self) -> float:
        return self.sum_ms / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "sum_ms": self.sum_ms, "max_ms": self.max_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        h = cls()
        h.counts = np.asarray(data["counts"], dtype=np.int64)
        h.sum_ms = float(data["sum_ms"])
        h.max_ms = float(data["max_ms"])
        return h

    def summary(self) -> dict[str, float]:
        return {
            "count": self.count,
            "mean_ms": round(self.mean_ms, 3),
            "p50_ms": self.quantile(0.5),
            "p99_ms": self.quantile(0.99),
            "max_ms": round(self.max_ms, 3),
        }
