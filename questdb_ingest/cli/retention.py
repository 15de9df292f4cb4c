"""``pumpwatch retention status|apply [--dry-run]``: the disk-pressure retention the service runs
every ``retention.interval``, shown and run by hand (``ops.retention``).

``--assume-usage PCT`` rehearses the policy as if the QuestDB disk were PCT % full — the reading
then falls by whatever the drops really free — so an operator can see (``--dry-run``) or drill
what an emergency would drop without filling a disk. It changes nothing unless ``apply`` is run
without ``--dry-run``, which then really drops what that usage calls for.

A real ``apply`` records its drops in ``maintenance_events`` and prints the alerts it raised (the
service sends them on to its alert sink); a dry run records and raises nothing. Exit 1 when the
run could not do everything (a drop refused, the disk or the spool unreadable).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .support import PERCENT, ErrorGroup, cli_settings, console, err_console


def _size(n: int) -> str:
    from ..ops.retention import human_bytes

    return human_bytes(n)


def _assume_option(f: Any) -> Any:
    return click.option(
        "--assume-usage",
        "assume",
        type=PERCENT,
        metavar="PCT",
        help="Rehearse the policy as if the QuestDB disk were PCT % full (the reading then falls by what the "
        "drops really free). A rehearsal aid: with apply (no --dry-run) it really drops what PCT calls for.",
    )(f)


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)


def _manager(ctx: click.Context, assume: float | None) -> Any:
    from ..ops.alerts import ListSink
    from ..ops.retention import AssumedUsage, RetentionManager, disk_usage_reader

    settings = cli_settings(ctx)
    reader = disk_usage_reader(settings.questdb.data_dir)
    if assume is not None:
        reader = AssumedUsage(reader, assume)
    return RetentionManager(settings, ListSink(), usage_reader=reader)


@click.group("retention", cls=ErrorGroup)
def retention() -> None:
    """Disk-pressure retention of the QuestDB data volume: show the policy, run it by hand."""


def _usage_line(report: Any, assume: float | None) -> str:
    usage, policy = report.usage_before, report.policy
    if usage is None:
        return "[yellow]disk usage unknown[/] (questdb.data_dir is not on this machine): nothing would be dropped"
    colour = {"ok": "green", "warn": "yellow", "emergency": "bold red"}.get(report.level, "white")
    level = {
        "ok": f"under the warn threshold ({policy.warn_percent:g}%)",
        "warn": f"above warn ({policy.warn_percent:g}%)",
        "emergency": f"above emergency ({policy.emergency_percent:g}%)",
    }.get(report.level, report.level)
    assumed = f" [dim](assumed: --assume-usage {assume:g})[/]" if assume is not None else ""
    return (
        f"disk {escape(usage.path)}: [{colour}]{usage.percent:.1f}% used[/] ({_size(usage.used_bytes)} of "
        f"{_size(usage.used_bytes + usage.free_bytes)}) — {level}{assumed}"
    )


def _policy_line(policy: Any) -> str:
    state = "enabled" if policy.enabled else "disabled in the service (retention.enabled = false)"
    return (
        f"policy: above {policy.warn_percent:g}% drop partitions older than {policy.normal_days} days; above "
        f"{policy.emergency_percent:g}% also those older than {policy.emergency_days} days, oldest first, until "
        f"under {policy.emergency_percent:g}%; checked every {policy.interval:g} s ({state})"
    )


def _actions_table(report: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("level", "table", "partition", "rows", "size", "disk before", "disk after"):
        table.add_column(col, justify="right" if col in ("rows", "size", "disk before", "disk after") else "left")
    for a in report.actions:
        table.add_row(
            a.level, escape(a.table), a.partition, f"{a.rows:,}", _size(a.bytes),
            f"{a.disk_before_pct:.1f}%", f"{a.disk_after_pct:.1f}%",
        )  # fmt: skip
    return table


def _print_outcome(report: Any) -> None:
    for kept in report.kept:
        console.print(f"kept {escape(kept.table)} {kept.partition}: {escape(kept.reason)}", highlight=False)
    for view in report.refreshed_views:
        verb = "would refresh" if report.dry_run else "full refresh started of"
        console.print(f"{verb} materialized view {escape(view)} (its base table lost partitions)", highlight=False)
    if report.still_above_emergency:
        after = report.usage_after.percent if report.usage_after else float("nan")
        verb = "would still be" if report.dry_run else "still"
        console.print(
            f"[bold red]{verb} above the emergency threshold[/] ({after:.1f}%) with nothing more that may go",
            highlight=False,
        )
    for error in report.errors:
        err_console.print(f"[bold red]error:[/] {escape(error)}", highlight=False)


@retention.command("status")
@_assume_option
@_json_option
@click.pass_context
def retention_status(ctx: click.Context, assume: float | None, as_json: bool) -> None:
    """Disk usage, thresholds, each table's partitions, and what `apply` would do now."""
    manager = _manager(ctx, assume)
    st = manager.status()
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
        return
    console.print(_usage_line(st.plan, assume), highlight=False)
    console.print(_policy_line(st.policy), highlight=False)
    for table_name, oldest in st.plan.spool_oldest.items():
        console.print(f"spool: {escape(table_name)} still has trades from {oldest} to replay", highlight=False)
    table = Table(title="time-series tables", title_justify="left")
    for col in ("table", "partitions", "oldest", "newest", "rows", "size", "TTL"):
        table.add_column(col, justify="right" if col in ("partitions", "rows", "size") else "left")
    for t in st.tables:
        table.add_row(
            escape(t.table), f"{t.partitions:,}", t.oldest or "-", t.newest or "-", f"{t.rows:,}", _size(t.bytes), t.ttl
        )
    console.print(table)
    if st.plan.actions:
        console.print(_actions_table(st.plan, "apply would drop (disk estimated to free each partition's size)"))
    else:
        console.print("apply would drop nothing now", highlight=False)
    _print_outcome(st.plan)


@retention.command("apply")
@click.option("--dry-run", is_flag=True, help="Show what would be dropped; drop, record and alert nothing.")
@_assume_option
@_json_option
@click.pass_context
def retention_apply(ctx: click.Context, dry_run: bool, assume: float | None, as_json: bool) -> None:
    """Run the policy once now: drop what the disk usage calls for (the same run the service makes)."""
    from ..errors import RetentionError

    manager = _manager(ctx, assume)
    with console.status("retention: dry run ..." if dry_run else "retention: applying ..."):
        report = manager.run_once(dry_run=dry_run)
    alerts = manager.alerts.alerts
    if as_json:
        click.echo(json.dumps(report.to_dict() | {"alerts": [asdict(a) for a in alerts]}, indent=2))
    else:
        console.print(_usage_line(report, assume), highlight=False)
        if report.actions:
            title = "would drop" if dry_run else "dropped"
            console.print(_actions_table(report, f"{title} ({len(report.actions)} partition(s))"))
        else:
            console.print(("would drop" if dry_run else "dropped") + " nothing", highlight=False)
        _print_outcome(report)
        for alert in alerts:
            colour = "bold red" if alert.severity == "critical" else "yellow"
            console.print(f"[{colour}]alert {alert.kind}[/]: {escape(alert.message)}", highlight=False)
        if report.events_recorded:
            console.print(
                f"recorded {report.events_recorded} event(s) in {escape(manager.settings.table('maintenance_events'))}",
                style="dim",
                highlight=False,
            )
    if report.errors:
        raise RetentionError(f"retention could not do everything: {'; '.join(report.errors)}")
