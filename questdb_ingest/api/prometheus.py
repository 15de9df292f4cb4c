"""``/metrics``: the service's counters in the Prometheus text format, through ``prometheus_client``.

A custom collector reads the newest ``ServiceSnapshot`` at scrape time, so the numbers are the
ones the parts already keep (no second set of counters to drift from the books). Names follow
the Prometheus conventions: ``pumpwatch_`` prefix, ``_total`` counters, base units (seconds,
bytes, ratios 0..1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from ..app.snapshot import ServiceSnapshot
from ..histogram import Histogram

# Bucket bounds in seconds: flushes take milliseconds, an exchange-ts → confirmed delay up to minutes
# (an outage replayed from the spool).
FLUSH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELAY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
PHASES = {"starting": 0, "running": 1, "draining": 2, "stopped": 3}

Extra = Callable[[], Iterator[Metric]]


def _histogram(name: str, doc: str, h: Histogram | None, bounds_s: tuple[float, ...]) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, unit="seconds")
    if h is None:
        h = Histogram()
    counts = h.cumulative([b * 1000.0 for b in bounds_s])
    buckets = [(repr(b), float(c)) for b, c in zip(bounds_s, counts, strict=True)]
    buckets.append(("+Inf", float(h.count)))
    fam.add_metric([], buckets=buckets, sum_value=h.sum_ms / 1000.0)
    return fam


class ServiceCollector(Collector):
    """Every metric of one service, from ``snapshot()`` (its newest snapshot) at each scrape."""

    def __init__(self, snapshot: Callable[[], ServiceSnapshot], extra: list[Extra] | None = None) -> None:
        self.snapshot = snapshot
        self.extra = extra or []

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        info = InfoMetricFamily("pumpwatch_build", "Version and source of the running service.")
        info.add_metric([], {"version": s.version, "source": s.source, "questdb_version": s.questdb.version})
        yield info
        g = GaugeMetricFamily("pumpwatch_uptime_seconds", "Seconds since the service started.", unit="seconds")
        g.add_metric([], s.uptime_s)
        yield g
        g = GaugeMetricFamily("pumpwatch_service_state", "0 starting, 1 running, 2 draining, 3 stopped.")
        g.add_metric([], PHASES.get(s.state, -1))
        yield g
        g = GaugeMetricFamily("pumpwatch_healthy", "1 when /api/health answers 200.")
        g.add_metric([], 1.0 if s.healthy else 0.0)
        yield g

        yield from self._feeds(s)
        yield from self._sender(s)
        yield from self._questdb(s)
        if s.hybrid is not None:
            h = s.hybrid
            g = GaugeMetricFamily("pumpwatch_rollout_phase", "Current staged-rollout phase (0 = buffer only).")
            g.add_metric([], h.rollout_phase)
            yield g
            g = GaugeMetricFamily("pumpwatch_ring_buffer_rows", "Trades held in the ring buffer.")
            g.add_metric([], h.ring_rows)
            yield g
            g = GaugeMetricFamily("pumpwatch_ring_buffer_bytes", "Memory the ring buffer holds.", unit="bytes")
            g.add_metric([], h.ring_bytes)
            yield g
            c = CounterMetricFamily("pumpwatch_window_reads", "Listing-window reads, by who answered.", labels=["by"])
            c.add_metric(["buffer"], h.buffer_answers)
            c.add_metric(["questdb"], h.questdb_answers)
            c.add_metric(["fallback"], h.fallbacks)
            yield c
            c = CounterMetricFamily("pumpwatch_listings", "New listings detected.")
            c.add_metric([], h.listings)
            yield c
        if s.alert_stats:
            c = CounterMetricFamily("pumpwatch_alerts", "Alerts raised and what became of their webhook post.",
                                    labels=["outcome"])  # fmt: skip
            for outcome in ("emitted", "sent", "failed", "suppressed", "rate_limited", "dropped"):
                c.add_metric([outcome], s.alert_stats.get(outcome, 0))
            yield c
        retention = s.maintenance.get("retention")
        if retention is not None:
            g = GaugeMetricFamily(
                "pumpwatch_retention_dropped_partitions", "Partitions the last retention run dropped."
            )
            g.add_metric([], retention["dropped"])
            yield g
            g = GaugeMetricFamily(
                "pumpwatch_retention_above_emergency", "1 when the last run left the disk above the emergency level."
            )
            g.add_metric([], 1.0 if retention["still_above_emergency"] else 0.0)
            yield g
        backup = s.maintenance.get("backup")
        if backup is not None:
            g = GaugeMetricFamily("pumpwatch_backup_failing", "1 when the last scheduled backup failed.")
            g.add_metric([], 1.0 if backup.get("last_error") else 0.0)
            yield g
            if backup.get("last_bytes") is not None:
                g = GaugeMetricFamily("pumpwatch_backup_last_bytes", "Size of the last backup.", unit="bytes")
                g.add_metric([], backup["last_bytes"])
                yield g
        for extra in self.extra:
            yield from extra()

    def _feeds(self, s: ServiceSnapshot) -> Iterator[Metric]:
        labels = ["feed", "exchange", "market_type"]
        fams: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "received": CounterMetricFamily(
                "pumpwatch_trades_received", "Valid trades a feed received.", labels=labels
            ),
            "dead": CounterMetricFamily(
                "pumpwatch_dead_letters", "Frames a feed dead-lettered (malformed, venue errors).", labels=labels
            ),
            "reconnects": CounterMetricFamily("pumpwatch_feed_reconnects", "Reconnects of a feed.", labels=labels),
            "gaps": CounterMetricFamily("pumpwatch_feed_gaps", "Disconnect gaps of a feed.", labels=labels),
            "backfilled": CounterMetricFamily(
                "pumpwatch_trades_backfilled", "Trades fetched back over REST after a gap.", labels=labels
            ),
            "connected": GaugeMetricFamily(
                "pumpwatch_feed_connected", "1 when every connection of the feed is up.", labels=labels
            ),
            "connections": GaugeMetricFamily(
                "pumpwatch_feed_connections_up", "WebSocket connections up.", labels=labels
            ),
            "rate": GaugeMetricFamily("pumpwatch_feed_trades_per_second", "Recent trades/s.", labels=labels),
        }
        for f in s.feeds:
            key = [f.name, f.exchange, f.market_type]
            fams["received"].add_metric(key, f.trades)
            fams["dead"].add_metric(key, f.dead_letters)
            fams["reconnects"].add_metric(key, f.reconnects)
            fams["gaps"].add_metric(key, f.gaps)
            fams["backfilled"].add_metric(key, f.backfilled)
            fams["connected"].add_metric(key, 1.0 if f.connected else 0.0)
            fams["connections"].add_metric(key, f.connections_up)
            fams["rate"].add_metric(key, f.trades_per_s)
        yield from fams.values()

    def _sender(self, s: ServiceSnapshot) -> Iterator[Metric]:
        m = s.sender
        if m is None:
            return
        rows = {
            name: CounterMetricFamily(f"pumpwatch_rows_{name}", doc, labels=["exchange"])
            for name, doc in (
                ("submitted", "Rows the sender took from the feeds."),
                ("confirmed", "Rows QuestDB confirmed (sent directly or replayed from the spool)."),
                ("spooled", "Rows written to the durable spool while QuestDB was unreachable."),
                ("replayed", "Rows replayed from the spool and confirmed."),
                ("dead_lettered", "Rows QuestDB refused (kept in the dead-letter spool)."),
            )
        }
        queue = GaugeMetricFamily(
            "pumpwatch_sender_queue_rows", "Rows held in memory by the sender.", labels=["exchange"]
        )
        for ex, e in sorted(m.exchanges.items()):
            rows["submitted"].add_metric([ex], e.received)
            rows["confirmed"].add_metric([ex], e.confirmed)
            rows["spooled"].add_metric([ex], e.spooled)
            rows["replayed"].add_metric([ex], e.replayed)
            rows["dead_lettered"].add_metric([ex], e.dead_lettered)
            queue.add_metric([ex], e.in_flight)
        yield from rows.values()
        yield queue
        g = GaugeMetricFamily("pumpwatch_spool_bytes", "Bytes in the durable spool.", unit="bytes")
        g.add_metric([], m.spool_bytes)
        yield g
        g = GaugeMetricFamily("pumpwatch_spool_rows", "Rows in the durable spool, waiting for QuestDB.")
        g.add_metric([], m.books.spooled_now)
        yield g
        g = GaugeMetricFamily("pumpwatch_sender_workers", "Sender worker processes, by state.", labels=["state"])
        states: dict[str, int] = {}
        for w in m.per_worker:
            state = w.state if w.alive else "down"
            states[state] = states.get(state, 0) + 1
        for state, n in sorted(states.items()):
            g.add_metric([state], n)
        yield g
        c = CounterMetricFamily("pumpwatch_worker_restarts", "Sender worker restarts.")
        c.add_metric([], sum(w.restarts for w in m.per_worker))
        yield c
        g = GaugeMetricFamily("pumpwatch_books_balanced", "1 when every row taken is confirmed, spooled or in flight.")
        g.add_metric([], 1.0 if m.books.balanced else 0.0)
        yield g
        yield _histogram(
            "pumpwatch_flush_duration", "ILP flush duration (request to QuestDB's answer).",
            m.histograms.get("flush"), FLUSH_BUCKETS_S,
        )  # fmt: skip
        yield _histogram(
            "pumpwatch_trade_delay", "Exchange timestamp to confirmed by QuestDB, per trade.",
            m.histograms.get("delay"), DELAY_BUCKETS_S,
        )  # fmt: skip

    def _questdb(self, s: ServiceSnapshot) -> Iterator[Metric]:
        q = s.questdb
        g = GaugeMetricFamily("pumpwatch_questdb_up", "1 when QuestDB answers PGWire.")
        g.add_metric([], 1.0 if q.reachable else 0.0)
        yield g
        g = GaugeMetricFamily("pumpwatch_questdb_writes_confirmed", "1 when QuestDB confirms the sender's writes.")
        g.add_metric([], 1.0 if q.writes_confirmed else 0.0)
        yield g
        g = GaugeMetricFamily(
            "pumpwatch_questdb_disk_used_ratio", "Used share of the QuestDB data filesystem.", unit="ratio"
        )
        g.add_metric([], q.disk_used_ratio if q.disk_used_ratio is not None else float("nan"))
        yield g
        g = GaugeMetricFamily("pumpwatch_questdb_disk_used_bytes", "Used bytes of that filesystem.", unit="bytes")
        g.add_metric([], q.disk_used_bytes)
        yield g


def registry_for(snapshot: Callable[[], ServiceSnapshot], extra: list[Extra] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(snapshot, extra))
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text format body and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
