"""The hybrid part of ``pumpwatch run``'s live view: rollout phase, buffer, compares, rollback
checks and listings, one line each so the operator sees at a glance which source answers."""

from __future__ import annotations

import time

from rich.table import Table

from ...hybrid.runtime import HybridRuntime
from ...timefmt import iso


def _utc(ns: int) -> str:
    return iso(ns) if ns else "-"


def hybrid_table(rt: HybridRuntime) -> Table:
    table = Table(title="hybrid", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("state", overflow="fold")
    phase = rt.rollout.current()
    mode = "compare (buffer answers)" if rt.manager.compare else "routed"
    in_phase = rt.rollout.time_in_phase()
    table.add_row(
        "rollout",
        f"phase {phase.number} {phase.name}: QuestDB reads {phase.questdb_percentage}% "
        f"fallback {'on' if phase.fallback_enabled else 'off'}; {mode}"
        + (f"; {in_phase / 60:,.1f} min in phase" if in_phase is not None else ""),
    )
    rs = rt.ring.stats()
    table.add_row(
        "buffer",
        f"{rs.rows:,} trades in {rs.venues} venues, {rs.allocated_bytes / 2**20:,.0f} of "
        f"{rs.memory_cap_bytes / 2**20:,.0f} MiB; {_utc(rs.oldest_ts_ns or 0)} to {_utc(rs.newest_ts_ns or 0)}"
        + (f"; [yellow]{rs.evicted_rows:,} evicted by the memory cap[/]" if rs.evicted_rows else ""),
    )
    ms = rt.manager.stats
    q = rt.reader.stats
    colour = "green" if ms.compares_with_diffs == 0 else "red"
    table.add_row(
        "reads",
        f"{ms.reads:,} windows ({ms.buffer_answers:,} buffer, {ms.questdb_answers:,} QuestDB, "
        f"{ms.fallbacks:,} fallbacks); QuestDB {q.queries:,} queries, {q.errors:,} errors",
    )
    table.add_row(
        "compare",
        f"[{colour}]{ms.compares:,} compared, {ms.compares_with_diffs:,} with differences "
        f"({ms.differences:,} trades)[/]"
        + (f"; skipped {ms.compare_skipped:,}" if ms.compare_skipped else "")
        + (f"; last: {ms.last_diff[:160]}" if ms.last_diff else ""),
    )
    verdict = rt.rollback.verdicts[-1] if rt.rollback.verdicts else None
    if verdict is None:
        check = f"first check in {rt.rollout.config.rollback.interval_s:g}s"
    elif verdict.breaches:
        check = "[red]" + "; ".join(verdict.breaches) + "[/]"
    else:
        r = verdict.reading
        disk = f", disk {r.disk_usage:.0%}" if r.disk_usage is not None else ""
        check = f"[green]healthy[/] (errors {r.error_rate:.0%}, mean {r.mean_latency_ms:.1f} ms{disk})"
    last_change = rt.rollback.events[-1] if rt.rollback.events else None
    if last_change is not None:
        check += f"; last change {last_change.action} {last_change.from_phase}→{last_change.to_phase}"
    table.add_row("rollback", f"{rt.rollback.checks:,} checks; {check}")
    if rt.detector is not None:
        d = rt.detector.stats
        polls = sum(src.polls for src in d.watcher.sources.values())
        failures = sum(src.failures for src in d.watcher.sources.values())
        line = f"{polls:,} market-list polls ({failures:,} failed), {d.collector.triggers:,} listings, "
        line += f"{d.in_progress} waiting for their window"
        history = rt.detector.history
        if history:
            last = history[-1]
            counts = ", ".join(f"{v} {n:,}" for v, n in last.counts.items()) or "no trades"
            age = (time.time_ns() - last.trigger.detected_ns) / 1e9
            line += f"; last {last.trigger.base} ({age:,.0f}s ago, {last.status}, {last.source}): {counts}"
        table.add_row("listings", line)
    return table
