"""``pumpwatch verify``: what the sender confirmed against what QuestDB holds, per exchange, market
and minute, and the connector gaps in the range (exit 1 on rows missing after confirmation)."""

from __future__ import annotations

import json
import time

import click
from rich.table import Table

from .support import ErrorCommand, cli_settings, console, parse_time_ns


@click.command("verify", cls=ErrorCommand)
@click.option("--since", default="1h", show_default=True, help="Start: a duration ago (1h), ISO-8601 or ns.")
@click.option("--until", help="End (default: now): a duration ago, ISO-8601 or ns.")
@click.option("--exchange", help="Only this exchange (lower case, as stored: binance, okx, …).")
@click.option("--demo", is_flag=True, help="Check the demo tables (replayed/synthetic runs) instead.")
@click.option("--strict", is_flag=True, help="Also fail when QuestDB holds rows the ledger does not know.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(
    ctx: click.Context, since: str, until: str | None, exchange: str | None, demo: bool, strict: bool, as_json: bool
) -> None:
    """Per exchange/market and minute: rows the sender's workers saw QuestDB confirm (their ledger)
    against rows QuestDB holds; lists the gaps recorded in the range. Exit 0 when every minute
    matches, 1 when QuestDB holds fewer rows than were confirmed (or, with --strict, more)."""
    from ..ops.verify import verify as run_verify

    settings = cli_settings(ctx)
    if demo:
        settings = settings.for_demo()
    since_ns = parse_time_ns(since, "--since")
    until_ns = parse_time_ns(until, "--until") if until else time.time_ns()
    if until_ns <= since_ns:
        raise click.BadParameter("must be after --since", param_hint="--until")
    report = run_verify(settings, since_ns, until_ns, exchange=exchange.lower() if exchange else None, strict=strict)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table(title=f"{report.table}: {report.since} .. {report.until}")
        for col in ("exchange", "market", "minutes", "confirmed", "resent", "stored", "missing", "unledgered"):
            table.add_column(col, justify="left" if col in ("exchange", "market") else "right")
        for (ex, mt), t in sorted(report.totals().items()):
            miss = f"[bold red]{t['missing']}[/]" if t["missing"] else "0"
            table.add_row(ex, mt, f"{t['minutes']:,}", f"{t['confirmed']:,}", f"{t['resent']:,}", f"{t['stored']:,}",
                          miss, f"{t['unledgered']:,}")  # fmt: skip
        console.print(table)
        for m in report.missing[:50]:
            console.print(
                f"[red]MISSING[/] {m.exchange}/{m.market_type} {m.minute}: confirmed {m.confirmed:,} "
                f"(resent {m.resent:,}), QuestDB holds {m.stored:,}"
            )
        for g in report.gaps:
            console.print(
                f"gap {g['exchange']}/{g['market_type']} {g['scope']} {g['start']} .. {g['end']} ({g['gap_ms']} ms, "
                f"{g['reason']}; {'back-filled ' + str(g['backfilled_trades']) if g['filled'] else 'not filled'})"
            )
        verdict = "[green]every minute matches[/]" if report.ok else "[bold red]MISMATCH[/]"
        console.print(
            f"{verdict}: {len(report.minutes):,} minute(s), {len(report.missing)} missing, "
            f"{len(report.unledgered)} unledgered, {len(report.gaps)} gap(s)"
        )
    ctx.exit(0 if report.ok else 1)
