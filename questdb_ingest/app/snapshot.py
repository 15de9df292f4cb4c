"""What the running service shows, as one typed value: ``Service.snapshot()`` builds it, the live
view renders it, the HTTP API serialises it (msgspec) and the Prometheus exposition reads it.

Building one only reads counters the parts already keep (no I/O, no QuestDB query), so the API
can take one per request without touching the feeds' event loop.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from ..sender.metrics import SenderMetrics
from ..timefmt import iso

if TYPE_CHECKING:
    from ..connectors.feed import Feed

RATE_WINDOW_S = 5.0  # trades/s in snapshots: over this much recent time


class FeedSnapshot(msgspec.Struct, frozen=True):
    """One connector (exchange and market): its connection state and what it received."""

    name: str
    exchange: str
    market_type: str
    status: str  # connected | disconnected | error | halted
    connected: bool
    instruments: int
    connections: int
    connections_up: int
    reconnects: int
    messages: int
    trades: int
    trades_per_s: float
    unsent: int
    dead_letters: int
    venue_errors: int
    unknown_events: int
    gaps: int
    backfilled: int
    last_trade: str | None  # ISO-8601 exchange time of the newest trade
    last_trade_ns: int
    down_since_s: float | None  # seconds since the feed was last fully connected (None: up)
    last_error: str
    lag_p50_ms: float
    lag_p99_ms: float


class SchemaSnapshot(msgspec.Struct, frozen=True):
    state: str  # unchecked | unreachable | refused | ok | pending | error
    message: str


class QuestDBSnapshot(msgspec.Struct, frozen=True):
    """QuestDB as the service last saw it (a background probe; never queried per snapshot)."""

    host: str
    http_port: int
    pg_port: int
    reachable: bool
    version: str
    checked: str | None
    data_dir: str
    disk_total_bytes: int
    disk_used_bytes: int
    disk_used_ratio: float | None
    writes_confirmed: bool  # every worker alive and writing (none spooling), schema up to date
    error: str


class ListingSnapshot(msgspec.Struct, frozen=True):
    base: str
    detected: str
    detected_ns: int
    status: str
    source: str
    counts: dict[str, int]


class HybridSnapshot(msgspec.Struct, frozen=True):
    rollout_phase: int
    rollout_phase_name: str
    questdb_percentage: int
    fallback_enabled: bool
    time_in_phase_s: float | None
    compare: bool
    ring_rows: int
    ring_venues: int
    ring_oldest_ns: int
    ring_newest_ns: int
    ring_bytes: int
    ring_cap_bytes: int
    ring_evicted_rows: int
    reads: int
    buffer_answers: int
    questdb_answers: int
    fallbacks: int
    ring_hit_rate: float | None  # share of window reads the buffer answered
    questdb_queries: int
    questdb_errors: int
    compares: int
    compares_with_diffs: int
    differences: int
    compare_skipped: int
    last_diff: str
    rollback_checks: int
    rollback_state: str  # "first check in Ns" | "healthy (…)" | the breaches
    last_change: str  # the newest rollout change ("" = none)
    listing_polls: int
    listing_poll_failures: int
    listings: int
    listings_waiting: int
    last_listing: ListingSnapshot | None


class ServiceSnapshot(msgspec.Struct, frozen=True):
    """Everything the live view and the API show about one running ``Service``."""

    version: str
    taken_ns: int  # when this snapshot was taken (epoch ns)
    state: str  # starting | running | draining | stopped
    source: str  # live | replay | synthetic
    started: str | None
    uptime_s: float
    received: int
    trades_per_s: float
    unsent: int
    feeds: list[FeedSnapshot]
    schema: SchemaSnapshot
    questdb: QuestDBSnapshot
    hybrid: HybridSnapshot | None
    alarms: list[str]
    api_url: str
    failure: str
    sender: SenderMetrics | None = None
    alert_stats: dict[str, int] = {}  # the alert path's counters (sent, failed, suppressed, …)
    maintenance: dict[str, Any] = {}  # the maintenance jobs' last runs (retention, backups)

    @property
    def healthy(self) -> bool:
        return not self.health_problems()

    def health_problems(self) -> list[str]:
        """Why the service is not healthy ([] = every enabled feed connected and QuestDB confirming writes)."""
        out = [f"feed {f.name} is {f.status}" for f in self.feeds if not f.connected]
        if self.state != "running":
            out.append(f"service is {self.state}")
        if not self.questdb.writes_confirmed:
            out.append(f"QuestDB is not confirming writes ({self.questdb.error or 'see /api/system/status'})")
        if self.failure:
            out.append(f"intake stopped: {self.failure}")
        return out

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = msgspec.to_builtins(msgspec.structs.replace(self, sender=None))
        out["sender"] = self.sender.to_dict() if self.sender is not None else None
        out["healthy"] = self.healthy
        return out


class RateTracker:
    """Trades/s per feed and in total over the last ``RATE_WINDOW_S``, sampled each tick."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, dict[str, int]]] = deque()

    def sample(self, total: int, per_feed: dict[str, int]) -> None:
        now = time.monotonic()
        self._samples.append((now, total, per_feed))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()

    def rates(self) -> tuple[float, dict[str, float]]:
        if len(self._samples) < 2:
            return 0.0, {}
        (t0, n0, f0), (t1, n1, f1) = self._samples[0], self._samples[-1]
        dt = max(t1 - t0, 1e-9)
        return (n1 - n0) / dt, {k: (v - f0.get(k, 0)) / dt for k, v in f1.items()}


def feed_snapshot(f: Feed, rate: float) -> FeedSnapshot:
    """One feed's counters as a ``FeedSnapshot`` (``rate``: its recent trades/s)."""
    s = f.stats
    up = sum(c.connected for c in f.connections)
    down_since = f.down_since
    status = "halted" if f.halted is not None else f.status
    return FeedSnapshot(
        name=f.name, exchange=f.spec.exchange, market_type=f.spec.market_type, status=status,
        connected=status == "connected", instruments=len(f.instruments), connections=len(f.connections),
        connections_up=up, reconnects=sum(max(c.connects - 1, 0) for c in f.connections), messages=s.messages,
        trades=s.trades, trades_per_s=round(rate, 1), unsent=s.unsent, dead_letters=s.dead_letters,
        venue_errors=s.venue_errors, unknown_events=s.unknown_events, gaps=s.gaps, backfilled=s.backfilled,
        last_trade=iso(s.last_trade_ns) if s.last_trade_ns else None, last_trade_ns=s.last_trade_ns,
        down_since_s=round(time.monotonic() - down_since, 3) if down_since is not None else None,
        last_error=s.last_error, lag_p50_ms=s.lag_ms.quantile(0.5), lag_p99_ms=s.lag_ms.quantile(0.99),
    )  # fmt: skip
