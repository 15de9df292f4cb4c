"""``pumpwatch compare …``: what hybrid mode's shadow compare recorded."""

from __future__ import annotations

import click
from rich.table import Table

from ..timefmt import iso
from .support import ErrorGroup, cli_settings, console, parse_duration_ns


@click.group("compare", cls=ErrorGroup)
def compare_group() -> None:
    """Shadow-compare results (hybrid mode's ``shadow_compare`` table)."""


@compare_group.command("summary")
@click.option("--since", default="24h", show_default=True, help="How far back (e.g. 30m, 24h, 7d).")
@click.option("--bucket", default="1h", show_default=True, help="Time bucket (QuestDB interval: 10m, 1h, 1d).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def compare_summary(ctx: click.Context, since: str, bucket: str, as_json: bool) -> None:
    """Agreement between the buffer and QuestDB over time: windows compared, with differences, and why."""
    import json

    from ..models import now_ns
    from ..store.compare import agreement
    from ..store.pg import connect

    settings = cli_settings(ctx)
    since_ns = now_ns() - parse_duration_ns(since, "--since")
    try:
        with connect(settings) as conn:
            buckets = agreement(conn, settings, since_ns=since_ns, bucket=bucket)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bucket") from None
    if as_json:
        click.echo(json.dumps([b.__dict__ | {"agreement": b.agreement} for b in buckets], indent=2))
        return

    table = Table(title=f"shadow compare since {iso(since_ns)} (per {bucket})")
    for col in ("bucket", "venue windows", "with differences", "agreement", "rows buffer", "rows QuestDB"):
        table.add_column(col, justify="left" if col == "bucket" else "right")
    for col in ("missing", "extra", "mismatched"):
        table.add_column(col, justify="right")
    for b in buckets:
        colour = "green" if b.with_differences == 0 else "red"
        table.add_row(
            iso(b.ts_ns), f"{b.compared:,}", f"[{colour}]{b.with_differences:,}[/]", f"{b.agreement:.2%}",
            f"{b.rows_a:,}", f"{b.rows_b:,}", f"{b.missing:,}", f"{b.extra:,}", f"{b.mismatched:,}",
        )  # fmt: skip
    console.print(table)
    if not buckets:
        console.print("no compares recorded in this period (run with --hybrid-mode --compare)")
