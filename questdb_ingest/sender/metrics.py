"""The sender's books and metrics, assembled from the router's exact counters and the workers' reports.

The books balance at every instant the router has processed a worker message::

    received + recovered = confirmed + replayed + dead_lettered + in_flight + spooled_now

``recovered`` is what the spool held from an earlier run; ``spooled_now`` is what the spools hold
now (read from disk by the workers). A resend after a worker crash is counted in ``resent_rows``
and collapses in QuestDB through the DEDUP keys.

Rows the spool had to quarantine on start-up (a damaged record) are outside that equation: the
books then say they do **not** balance, with the count, so a loss is never reported as success.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..histogram import Histogram
from ..histogram import histogram_for as _histogram

if TYPE_CHECKING:
    from .router import ShardedSender


@dataclass(frozen=True)
class ExchangeMetrics:
    received: int = 0
    sent: int = 0
    confirmed: int = 0
    spooled: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    delay_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerMetrics:
    shard: int
    pid: int
    state: str
    alive: bool
    restarts: int
    queue_rows: int
    queue_batches: int
    rows_in: int
    confirmed: int
    spooled: int
    replayed: int
    dead_lettered: int
    retried: int
    failed_flushes: int
    flushes: int
    spool_rows: int
    spool_bytes: int
    quarantined: list[dict[str, Any]]
    alarm: str
    flush_ms: dict[str, float]


@dataclass(frozen=True)
class Books:
    received: int
    recovered: int
    confirmed: int
    replayed: int
    dead_lettered: int
    in_flight: int
    spooled_now: int
    quarantined: int = 0  # rows in spool records set aside as damaged (header rows)
    quarantined_unknown: int = 0  # quarantined byte ranges whose header was unreadable (rows unknown)

    @property
    def accounted(self) -> bool:
        """Every row taken is confirmed, replayed, dead-lettered, in flight or on disk."""
        return self.received + self.recovered == (
            self.confirmed + self.replayed + self.dead_lettered + self.in_flight + self.spooled_now
        )

    @property
    def balanced(self) -> bool:
        """Accounted for, and nothing lost to a damaged spool record."""
        return self.accounted and not self.quarantined and not self.quarantined_unknown


@dataclass(frozen=True)
class SenderMetrics:
    uptime_s: float
    workers: int
    transport: str
    books: Books
    resent_rows: int
    backpressure_waits: int
    backpressure_seconds: float
    exchanges: dict[str, ExchangeMetrics]
    per_worker: list[WorkerMetrics]
    delay_ms: dict[str, float]  # exchange timestamp → confirmed by QuestDB
    flush_ms: dict[str, float]
    arrival_ms: dict[str, float] = field(default_factory=dict)  # exchange timestamp → taken by a worker
    # The distributions behind the summaries ("delay", "flush"), for Prometheus histograms; not in to_dict.
    histograms: dict[str, Histogram] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, histograms={}))
        del out["histograms"]
        out["books"]["balanced"] = self.books.balanced
        out["books"]["accounted"] = self.books.accounted
        return out

    @property
    def spool_bytes(self) -> int:
        return sum(w.spool_bytes for w in self.per_worker)

    @property
    def queue_rows(self) -> int:
        return self.books.in_flight


def build_metrics(sender: ShardedSender) -> SenderMetrics:
    """Snapshot (the caller holds the sender's lock)."""
    in_flight: dict[str, int] = {}
    workers: list[WorkerMetrics] = []
    replayed: dict[str, int] = {}
    replayed_dead: dict[str, int] = {}
    delay: dict[str, Histogram] = {}
    flush_all = Histogram()
    arrival_all = Histogram()
    spool_rows = 0
    quarantined: list[dict[str, Any]] = []
    for shard, cum in sender.shard_views():
        for part in shard.pending:
            for ex, n in part.exchange_rows.items():
                in_flight[ex] = in_flight.get(ex, 0) + n
        for ex, n in cum["replayed"].items():
            replayed[ex] = replayed.get(ex, 0) + n
        for ex, n in cum["replayed_dead"].items():
            replayed_dead[ex] = replayed_dead.get(ex, 0) + n
        for ex, h in cum["delay_ms"].items():
            _histogram(delay, ex).merge(Histogram.from_dict(h))
        flush = Histogram.from_dict(cum["flush_ms"])
        flush_all.merge(flush)
        arrival_all.merge(Histogram.from_dict(cum["arrival_ms"]))
        snap = shard.snapshot
        spool_rows += int(snap.get("spool_rows", 0))
        quarantined += list(shard.quarantined.values())
        workers.append(
            WorkerMetrics(
                shard=shard.index,
                pid=(shard.process.pid or 0) if shard.process else 0,
                state=str(snap.get("state", "starting")) if shard.process else "stopped",
                alive=shard.process is not None and shard.process.is_alive(),
                restarts=shard.restarts,
                queue_rows=shard.queued_rows,
                queue_batches=len(shard.pending),
                rows_in=cum["rows_in"],
                confirmed=cum["rows_confirmed"],
                spooled=cum["rows_spooled"],
                replayed=sum(cum["replayed"].values()),
                dead_lettered=cum["rows_dead"],
                retried=cum["rows_retried"],
                failed_flushes=cum["failed_flushes"],
                flushes=cum["flushes"],
                spool_rows=int(snap.get("spool_rows", 0)),
                spool_bytes=int(snap.get("spool_bytes", 0)),
                quarantined=list(shard.quarantined.values()),
                alarm=str(snap.get("alarm", "")),
                flush_ms=flush.summary(),
            )
        )
    names = sorted(set(sender.received) | set(replayed) | set(in_flight) | set(replayed_dead))
    exchanges = {
        ex: ExchangeMetrics(
            received=sender.received.get(ex, 0),
            sent=sender.sent.get(ex, 0),
            confirmed=sender.confirmed.get(ex, 0) + replayed.get(ex, 0),
            spooled=sender.spooled.get(ex, 0),
            replayed=replayed.get(ex, 0),
            dead_lettered=sender.dead_lettered.get(ex, 0) + replayed_dead.get(ex, 0),
            in_flight=in_flight.get(ex, 0),
            delay_ms=delay[ex].summary() if ex in delay else {},
        )
        for ex in names
    }
    delay_all = Histogram()
    for h in delay.values():
        delay_all.merge(h)
    books = Books(
        received=sum(sender.received.values()),
        recovered=sender.recovered_rows,
        confirmed=sum(sender.confirmed.values()),
        replayed=sum(replayed.values()),
        dead_lettered=sum(sender.dead_lettered.values()) + sum(replayed_dead.values()),
        in_flight=sum(in_flight.values()),
        spooled_now=spool_rows,
        quarantined=sum(int(q["rows"]) for q in quarantined if q.get("rows") is not None),
        quarantined_unknown=sum(1 for q in quarantined if q.get("rows") is None),
    )
    return SenderMetrics(
        uptime_s=round(time.monotonic() - sender.started_at, 3) if sender.started_at else 0.0,
        workers=sender.workers,
        transport=sender.transport,
        books=books,
        resent_rows=sender.resent_rows,
        backpressure_waits=sender.backpressure_waits,
        backpressure_seconds=round(sender.backpressure_seconds, 3),
        exchanges=exchanges,
        per_worker=workers,
        delay_ms=delay_all.summary(),
        flush_ms=flush_all.summary(),
        arrival_ms=arrival_all.summary(),
        histograms={"delay": delay_all, "flush": flush_all},
    )
