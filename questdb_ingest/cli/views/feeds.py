"""Rich tables for the connectors (live view of ``pumpwatch run`` / ``record`` and final summaries)."""

from __future__ import annotations

import time

from rich.table import Table

from ...connectors.pipeline import Pipeline
from ...histogram import Histogram


class RateMeter:
    """Trades/s per feed from successive samples."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        self.rates: dict[str, float] = {}

    def sample(self, pipeline: Pipeline) -> None:
        now = time.monotonic()
        for feed in pipeline.feeds:
            t0, n0 = self._last.get(feed.name, (now, feed.stats.trades))
            if now - t0 >= 1.0:
                self.rates[feed.name] = (feed.stats.trades - n0) / (now - t0)
                self._last[feed.name] = (now, feed.stats.trades)
            else:
                self._last.setdefault(feed.name, (t0, n0))


def _lag(h: Histogram) -> tuple[str, str]:
    """Exchange timestamp → handed to the sender, p50 and p99 (since the start)."""
    if not h.count:
        return "-", "-"
    return _ms(h.quantile(0.5)), _ms(h.quantile(0.99))


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def feeds_table(pipeline: Pipeline, title: str, rates: dict[str, float] | None = None) -> Table:
    table = Table(title=title)
    columns: tuple[str, ...] = ("connector", "status", "conns", "symbols", "frames", "trades", "trades/s")
    columns += ("lag p50", "lag p99", "unsent", "dead", "venue err", "unknown ev", "gaps", "backfilled")
    for col in columns:
        table.add_column(col, justify="left" if col in ("connector", "status") else "right")
    table.add_column("last error", overflow="fold", max_width=48)
    now = time.time_ns()
    for feed in pipeline.feeds:
        s = feed.stats
        up = sum(c.connected for c in feed.connections)
        age = f" ({(now - s.last_trade_ns) / 1e9:.0f}s ago)" if s.last_trade_ns else ""
        colour = {"connected": "green", "disconnected": "yellow", "error": "red"}.get(feed.status, "white")
        status = "halted" if feed.halted is not None else feed.status
        table.add_row(
            feed.name,
            f"[{'red' if feed.halted is not None else colour}]{status}[/]",
            f"{up}/{len(feed.connections)}",
            f"{len(feed.instruments):,}",
            f"{s.messages:,}",
            f"{s.trades:,}{age}" if s.trades else "0",
            f"{(rates or {}).get(feed.name, 0.0):,.0f}",
            *_lag(s.lag_ms),
            f"[bold red]{s.unsent:,}[/]" if s.unsent else "0",
            f"{s.dead_letters:,}",
            f"[red]{s.venue_errors:,}[/]" if s.venue_errors else "0",
            f"[yellow]{s.unknown_events:,}[/]" if s.unknown_events else "0",
            f"{s.gaps:,}",
            f"{s.backfilled:,}",
            s.last_error[-200:],
        )
    return table
