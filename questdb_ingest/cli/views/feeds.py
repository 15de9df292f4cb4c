"""Rich tables for the connectors (live view of ``pumpwatch run`` / ``record`` and final summaries)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.table import Table

from ...app.snapshot import FeedSnapshot

_COLOURS = {"connected": "green", "disconnected": "yellow", "error": "red", "halted": "red"}


def _lag(f: FeedSnapshot) -> tuple[str, str]:
    """Exchange timestamp → handed to the sender, p50 and p99 (since the start)."""
    if not f.trades:
        return "-", "-"
    return _ms(f.lag_p50_ms), _ms(f.lag_p99_ms)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def feeds_table(feeds: Sequence[FeedSnapshot], title: str) -> Table:
    table = Table(title=title)
    columns: tuple[str, ...] = ("connector", "status", "conns", "symbols", "frames", "trades", "trades/s")
    columns += ("lag p50", "lag p99", "unsent", "dead", "venue err", "unknown ev", "gaps", "backfilled")
    for col in columns:
        table.add_column(col, justify="left" if col in ("connector", "status") else "right")
    table.add_column("last error", overflow="fold", max_width=48)
    now = time.time_ns()
    for s in feeds:
        age = f" ({(now - s.last_trade_ns) / 1e9:.0f}s ago)" if s.last_trade_ns else ""
        colour = _COLOURS.get(s.status, "white")
        table.add_row(
            s.name,
            f"[{colour}]{s.status}[/]",
            f"{s.connections_up}/{s.connections}",
            f"{s.instruments:,}",
            f"{s.messages:,}",
            f"{s.trades:,}{age}" if s.trades else "0",
            f"{s.trades_per_s:,.0f}",
            *_lag(s),
            f"[bold red]{s.unsent:,}[/]" if s.unsent else "0",
            f"{s.dead_letters:,}",
            f"[red]{s.venue_errors:,}[/]" if s.venue_errors else "0",
            f"[yellow]{s.unknown_events:,}[/]" if s.unknown_events else "0",
            f"{s.gaps:,}",
            f"{s.backfilled:,}",
            s.last_error[-200:],
        )
    return table
