"""The hybrid-mode panel of the live view: rollout stage, ring buffer, reads, compare, rollback,
listings — from the service snapshot's ``HybridSnapshot``."""

from __future__ import annotations

import time

from rich.table import Table

from ...app.snapshot import HybridSnapshot
from ...timefmt import iso


def _utc(ns: int) -> str:
    return iso(ns) if ns else "-"


def hybrid_table(h: HybridSnapshot) -> Table:
    table = Table(title="hybrid", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("state", overflow="fold")
    mode = "compare (buffer answers)" if h.compare else "routed"
    in_phase = h.time_in_phase_s
    table.add_row(
        "rollout",
        f"phase {h.rollout_phase} {h.rollout_phase_name}: QuestDB reads {h.questdb_percentage}% "
        f"fallback {'on' if h.fallback_enabled else 'off'}; {mode}"
        + (f"; {in_phase / 60:,.1f} min in phase" if in_phase is not None else ""),
    )
    table.add_row(
        "buffer",
        f"{h.ring_rows:,} trades in {h.ring_venues} venues, {h.ring_bytes / 2**20:,.0f} of "
        f"{h.ring_cap_bytes / 2**20:,.0f} MiB; {_utc(h.ring_oldest_ns)} to {_utc(h.ring_newest_ns)}"
        + (f"; [yellow]{h.ring_evicted_rows:,} evicted by the memory cap[/]" if h.ring_evicted_rows else ""),
    )
    colour = "green" if h.compares_with_diffs == 0 else "red"
    table.add_row(
        "reads",
        f"{h.reads:,} windows ({h.buffer_answers:,} buffer, {h.questdb_answers:,} QuestDB, "
        f"{h.fallbacks:,} fallbacks); QuestDB {h.questdb_queries:,} queries, {h.questdb_errors:,} errors",
    )
    table.add_row(
        "compare",
        f"[{colour}]{h.compares:,} compared, {h.compares_with_diffs:,} with differences "
        f"({h.differences:,} trades)[/]"
        + (f"; skipped {h.compare_skipped:,}" if h.compare_skipped else "")
        + (f"; last: {h.last_diff[:160]}" if h.last_diff else ""),
    )
    healthy = h.rollback_state.startswith(("healthy", "first check"))
    check = f"[green]{h.rollback_state}[/]" if healthy else f"[red]{h.rollback_state}[/]"
    if h.last_change:
        check += f"; last change {h.last_change}"
    table.add_row("rollback", f"{h.rollback_checks:,} checks; {check}")
    line = f"{h.listing_polls:,} market-list polls ({h.listing_poll_failures:,} failed), {h.listings:,} listings, "
    line += f"{h.listings_waiting} waiting for their window"
    last = h.last_listing
    if last is not None:
        counts = ", ".join(f"{v} {n:,}" for v, n in last.counts.items()) or "no trades"
        age = (time.time_ns() - last.detected_ns) / 1e9
        line += f"; last {last.base} ({age:,.0f}s ago, {last.status}, {last.source}): {counts}"
    table.add_row("listings", line)
    return table
