"""``pumpwatch rollout status|advance|rollback|set``: look at and move the staged rollout.

The state file (``hybrid.rollout_state``) is the source of truth: a change is saved there first,
and a running ``pumpwatch run`` picks it up on its next ``Rollout.refresh()``. Each change is
also recorded in QuestDB's ``rollout_events`` when QuestDB answers; when it does not, a warning
is printed and the command still succeeds.

Settings come from the root context's ``obj``: ``{"config": path}`` as ``pumpwatch --config``
stores it, or ``{"settings": Settings}`` (tests, embedding); without either, from the environment
and ./pumpwatch.toml. An invalid setting or rollout YAML exits 2 naming the key; an impossible
change (advance past the last phase, ...) or an unusable state file exits 1.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..config import Settings
from ..errors import PumpwatchError
from ..hybrid.rollout import Rollout, RolloutChange
from ..timefmt import format_duration, iso
from .support import ErrorGroup, cli_settings, console, err_console

# One quick attempt: the event is an audit copy, and an unreachable QuestDB must not stall the command.
EVENT_RETRY_MS = 500
HISTORY_SHOWN = 5


def _settings(ctx: click.Context, rollout_config: str | None) -> Settings:
    """Settings as the rest of the CLI loads them, with ``--rollout-config`` over ``hybrid.rollout_config``."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    given = obj.get("settings")
    if isinstance(given, Settings):
        if rollout_config is None:
            return given
        return replace(given, hybrid=replace(given.hybrid, rollout_config=rollout_config))
    return cli_settings(ctx, hybrid={"rollout_config": rollout_config})


def _open(ctx: click.Context, rollout_config: str | None) -> tuple[Settings, Rollout]:
    settings = _settings(ctx, rollout_config)
    return settings, Rollout.from_settings(settings)


def _event_conf(settings: Settings) -> str:
    """The ILP conf with a short client retry unless one is configured."""
    from ..ingest.ilp import parse_conf

    proto, keys = parse_conf(settings.client_conf())
    keys.setdefault("retry_timeout", str(EVENT_RETRY_MS))
    return f"{proto}::" + "".join(f"{k}={v.replace(';', ';;')};" for k, v in keys.items())


def record_event(settings: Settings, change: RolloutChange) -> str | None:
    """Write the change to ``rollout_events``; returns why it failed (None when it landed)."""
    from ..ingest.writer import RolloutEventWriter

    try:
        table = settings.table(RolloutEventWriter.logical_table())
        with RolloutEventWriter(_event_conf(settings), table, batch_rows=1, background_flush=False) as writer:
            writer.write(change.event())
    except (PumpwatchError, OSError) as exc:
        return str(exc)
    return None


def _changed(settings: Settings, rollout: Rollout, change: RolloutChange) -> None:
    cfg = rollout.config
    before, after = cfg.phase(change.from_phase), cfg.phase(change.to_phase)
    console.print(
        f"[bold]rollout {change.action}[/]: {escape(before.label)} → [bold green]{escape(after.label)}[/]",
        highlight=False,
    )
    console.print(f"reason: {escape(change.reason)}; saved to {escape(str(rollout.store.path))}", highlight=False)
    failure = record_event(settings, change)
    if failure is None:
        console.print(f"recorded in {settings.table('rollout_events')}", style="dim", highlight=False)
    else:
        err_console.print(
            f"[yellow]warning:[/] the change is saved but not recorded in QuestDB ({escape(failure)}); "
            "the state file is the source of truth",
            highlight=False,
        )


def _rollout_config_option(f: Any) -> Any:
    return click.option(
        "--rollout-config",
        type=click.Path(dir_okay=False),
        help="Rollout YAML (default: hybrid.rollout_config, else the built-in 10/50/100/100 plan).",
    )(f)


def _reason_option(f: Any) -> Any:
    return click.option("--reason", default="operator", show_default=True, help="Why; stored with the change.")(f)


@click.group("rollout", cls=ErrorGroup)
def rollout() -> None:
    """Staged rollout of QuestDB reads: show, advance, roll back or set the phase."""


@rollout.command("status")
@_rollout_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def rollout_status(ctx: click.Context, rollout_config: str | None, as_json: bool) -> None:
    """The phases (current one highlighted), time in the current phase and recent changes."""
    _, ro = _open(ctx, rollout_config)
    st = ro.status(history=HISTORY_SHOWN)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    table = Table(title=f"rollout phases ({escape(st['config'])})", title_justify="left")
    for column in ("", "phase", "name", "QuestDB reads", "duration", "fallback"):
        table.add_column(column, justify="right" if column in ("phase", "QuestDB reads") else "left")
    for p in st["phases"]:
        current = p["phase"] == st["phase"]
        table.add_row(
            "▶" if current else "",
            str(p["phase"]),
            p["name"],
            f"{p['questdb_percentage']}%",
            format_duration(p["duration_s"]) if p["phase"] else "until advanced",
            ("on" if p["fallback_enabled"] else "off") if p["phase"] else "n/a",
            style="bold green" if current else None,
        )
    console.print(table)
    console.print(f"current: {escape(ro.current().label)}", highlight=False)
    if st["clamped"]:
        console.print(
            f"[yellow]the state file says phase {st['stored_phase']}, but the config has only {st['last_phase']}; "
            f"phase {st['phase']} is in effect until the next change[/]",
            highlight=False,
        )
    if st["entered_at"] is None:
        console.print("entered: never changed (no state saved yet)", highlight=False)
    else:
        due = "[bold yellow]yes[/]" if st["due"] else "no"
        console.print(
            f"entered: {st['entered_at']}, {format_duration(st['time_in_phase_s'])} ago"
            f" of {format_duration(st['duration_s'])}; due for advance: {due}",
            highlight=False,
        )
    console.print(
        f"auto_advance: {'on' if st['auto_advance'] else 'off'}; state file: {escape(st['state_file'])}",
        highlight=False,
    )
    if st["history"]:
        console.print(_history_table(st["history"]))


def _history_table(history: list[dict[str, Any]]) -> Table:
    table = Table(title="recent changes", title_justify="left")
    for column in ("at (UTC)", "action", "phase", "by", "reason", "measured"):
        table.add_column(column)
    for h in reversed(history):
        measured = ", ".join(
            f"{k}={h[k]}" for k in ("error_rate", "mean_latency_ms", "disk_usage", "spool_growth_bytes") if k in h
        )
        at = h.get("at_ns")
        table.add_row(
            iso(at) if isinstance(at, int) else "?",
            escape(str(h.get("action", "?"))),
            f"{h.get('from_phase', '?')} → {h.get('to_phase', '?')}",
            escape(str(h.get("actor", "?"))),
            escape(str(h.get("reason", ""))),
            escape(measured),
        )
    return table


@rollout.command("advance")
@_reason_option
@_rollout_config_option
@click.pass_context
def rollout_advance(ctx: click.Context, reason: str, rollout_config: str | None) -> None:
    """Go to the next phase (exit 1 at the last one)."""
    settings, ro = _open(ctx, rollout_config)
    _changed(settings, ro, ro.advance(reason))


@rollout.command("rollback")
@click.option("--to-buffer", is_flag=True, help="Go straight to phase 0 (buffer only).")
@_reason_option
@_rollout_config_option
@click.pass_context
def rollout_rollback(ctx: click.Context, to_buffer: bool, reason: str, rollout_config: str | None) -> None:
    """Go back one phase, or to phase 0 with --to-buffer (exit 1 at phase 0)."""
    settings, ro = _open(ctx, rollout_config)
    _changed(settings, ro, ro.rollback(reason, to_buffer=to_buffer))


@rollout.command("set")
@click.argument("phase", type=click.IntRange(min=0))
@_reason_option
@_rollout_config_option
@click.pass_context
def rollout_set(ctx: click.Context, phase: int, reason: str, rollout_config: str | None) -> None:
    """Go to PHASE (0 = buffer only .. the last configured phase)."""
    settings, ro = _open(ctx, rollout_config)
    _changed(settings, ro, ro.set_phase(phase, reason))
