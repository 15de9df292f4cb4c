"""Small pure pieces of the sender: backoff, histograms, load pattern, books."""

from __future__ import annotations

import random

import numpy as np
import pytest

from questdb_ingest.histogram import Histogram
from questdb_ingest.pacing import RateSchedule
from questdb_ingest.sender.metrics import Books
from questdb_ingest.sender.worker import backoff_delay


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.1, 5.0, rng) for a in range(1, 12)]
    for attempt, d in enumerate(delays, start=1):
        base = min(5.0, 0.1 * 2 ** (attempt - 1))
        assert base * 0.5 <= d <= base
    assert max(delays) <= 5.0
    assert len({round(d, 6) for d in delays[-4:]}) > 1  # jittered, not lock-step


def test_histogram_quantiles_and_merge() -> None:
    h = Histogram()
    h.add_many(np.array([0.5] * 98 + [700.0, 40_000.0]))
    assert h.count == 100
    assert h.quantile(0.5) == pytest.approx(0.5, rel=1e-3)
    assert h.quantile(0.99) == pytest.approx(700.0, rel=1e-3)
    assert h.quantile(1.0) == 40_000.0 and h.max_ms == 40_000.0
    other = Histogram.from_dict(h.to_dict())
    assert other.merge(h).count == 200
    assert other.quantile(0.99) == pytest.approx(700.0, rel=1e-3)


def test_histogram_tells_apart_values_inside_one_wide_range() -> None:
    """Delays spread over 5 to 10 s: fixed buckets reported p50 = p99 = max; the real quantiles differ."""
    values = np.linspace(5_000.0, 10_000.0, 10_001)
    h = Histogram()
    h.add_many(values)
    summary = h.summary()
    assert summary["p50_ms"] == pytest.approx(7_500.0, rel=2e-3)
    assert summary["p90_ms"] == pytest.approx(9_500.0, rel=2e-3)
    assert summary["p99_ms"] == pytest.approx(9_950.0, rel=2e-3)
    assert summary["max_ms"] == 10_000.0 and summary["mean_ms"] == pytest.approx(7_500.0)


def test_histograms_from_several_processes_merge_exactly() -> None:
    """Workers ship ``to_dict`` snapshots; the merged quantiles are those of all values together."""
    rng = np.random.default_rng(7)
    parts = [rng.exponential(scale, 5_000) for scale in (50.0, 400.0, 2_000.0)]
    merged = Histogram()
    for part in parts:
        h = Histogram()
        h.add_many(part)
        merged.merge(Histogram.from_dict(h.to_dict()))
    everything = np.concatenate(parts)
    assert merged.count == len(everything)
    for q in (0.5, 0.9, 0.99):
        assert merged.quantile(q) == pytest.approx(float(np.quantile(everything, q)), rel=5e-3)
    assert Histogram.from_dict(Histogram().to_dict()).count == 0


def test_load_pattern_has_pumps() -> None:
    p = RateSchedule(rate=1000, burst_rate=5000, burst_every=60, burst_seconds=10)
    rates = [p.rate_at(t) for t in range(120)]
    assert rates.count(5000) == 20 and rates.count(1000) == 100
    assert RateSchedule.steady(300).rate_at(31) == 300
    assert [RateSchedule(rate=700, burst_rate=0).rate_at(t) for t in range(120)] == [700] * 120  # 0 = no bursts


def test_books_balance_only_when_every_row_is_accounted_for() -> None:
    assert Books(100, 5, 80, 5, 1, 10, 9).balanced
    assert not Books(100, 0, 80, 0, 0, 10, 9).balanced


def test_cumulative_buckets_equal_the_hdr_iterators_count() -> None:
    """The vectorised ``le`` counts agree with HdrHistogram's own recorded iterator, slot by slot."""
    h = Histogram()
    h.add_many(np.random.default_rng(4).exponential(500.0, 50_000))
    h.add_many(np.array([0.001, 0.5, 3_000_000.0]))
    bounds = [0.0005, 0.001, 0.5, 50.0, 100.0, 499.0, 500.0, 1000.0, 60_000.0, 1e9]
    want = [0] * len(bounds)
    for item in h._hdr.get_recorded_iterator():
        for i, bound in enumerate(bounds):
            if item.value_iterated_to / 1000.0 <= bound:
                want[i] += item.count_at_value_iterated_to
    assert h.cumulative(bounds) == want and want[-1] == h.count
