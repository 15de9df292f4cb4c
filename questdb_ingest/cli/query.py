"""``pumpwatch query``: the market reads of ``store.market`` as commands (rich tables or ``--json``).

Registered in ``cli.py`` with ``main.add_command(query)``; it also runs standalone (tests use
``CliRunner().invoke(query, ...)``), taking the config path from ``ctx.obj["config"]`` when the
main group set one, else from $PUMPWATCH_CONFIG / ./pumpwatch.toml / the environment.
The heavy imports (numpy, pandas, psycopg via ``store.market``) happen inside the commands so
``pumpwatch --help`` stays fast and ``cli.py`` can import this module without a cycle.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..timefmt import iso_ns
from .support import ErrorGroup, cli_settings, parse_duration_ns, parse_time_ns

if TYPE_CHECKING:
    import psycopg


def _console() -> Console:
    # Pipes and CI logs get a fixed width that fits the widest table (ns timestamps) unwrapped.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _settings(ctx: click.Context) -> Settings:
    """Settings as the other commands load them: the main group's --config, then env and files."""
    return cli_settings(ctx)


@contextmanager
def _connection(ctx: click.Context) -> Iterator[tuple[psycopg.Connection[Any], Settings]]:
    from ..store.pg import connect

    settings = _settings(ctx)
    with connect(settings) as conn:
        yield conn, settings


def _emit_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2))


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def _normalised(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that puts a filter in stored case with ``store.market.<name>`` while the
    arguments are parsed, so a bad one is a usage error (exit 2) before any connection is made."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        from ..store import market

        normal: Callable[[object], str] = getattr(market, name)
        try:
            if value is None:
                return None
            if isinstance(value, tuple):  # a repeated option
                return tuple(normal(v) for v in value)
            return normal(value)
        except market.QueryArgumentError as exc:
            raise click.BadParameter(f"{exc.value!r}: {exc.reason}", ctx=ctx, param=param) from None

    return callback


def _exchange_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--exchange", callback=_normalised("normal_exchange"), help="Only this exchange (any case).")(f)


def _market_type_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--market-type", callback=_normalised("normal_market_type"), help="Only this market type (spot, futures)."
    )(f)


# --------------------------------------------------------------------------- commands
@click.group(cls=ErrorGroup)
def query() -> None:
    """Read trades back: listing window, recent trades, candles, latest prices."""


@query.command("window")
@click.argument("symbol", callback=_normalised("normal_symbol"))
@click.option("--at", "at_iso", help="Trigger time, ISO-8601 (UTC unless an offset is given), ns precision.")
@click.option("--at-ns", type=click.IntRange(0, 2**63 - 1), help="Trigger time in ns since the epoch.")
@click.option("--before", default="20s", show_default=True, help="Window start before the trigger.")
@click.option("--after", default="20s", show_default=True, help="Window end after the trigger.")
@_json_option
@click.pass_context
def window_cmd(
    ctx: click.Context, symbol: str, at_iso: str | None, at_ns: int | None, before: str, after: str, as_json: bool
) -> None:
    """Trades of SYMBOL (BASE-QUOTE, or a bare base for every quote) around a trigger, per venue."""
    from ..store.market import listing_window, trade_records

    if (at_iso is None) == (at_ns is None):
        raise click.UsageError("give exactly one of --at or --at-ns")
    trigger = at_ns if at_ns is not None else parse_time_ns(at_iso or "", "--at")
    start = trigger - parse_duration_ns(before, "--before")
    end = trigger + parse_duration_ns(after, "--after")
    with _connection(ctx) as (conn, settings):
        venues = listing_window(conn, settings, symbol, start, end)
    if as_json:
        _emit_json(
            {
                "symbol": symbol,
                "trigger_ns": trigger,
                "start_ns": start,
                "end_ns": end,
                "total_trades": sum(len(b) for b in venues.values()),
                "venues": {venue: {"trades": len(b), "rows": trade_records(b)} for venue, b in venues.items()},
            }
        )
        return
    table = Table(title=f"{symbol}: {iso_ns(start)} .. {iso_ns(end)}")
    for name in ("venue", "trades", "first", "last", "low", "high", "volume"):
        table.add_column(name, justify="left" if name in ("venue", "first", "last") else "right", no_wrap=True)
    for venue, b in venues.items():
        table.add_row(
            venue,
            str(len(b)),
            iso_ns(int(b.ts_ns[0])),
            iso_ns(int(b.ts_ns[-1])),
            repr(float(b.price.min())),
            repr(float(b.price.max())),
            repr(float(b.quantity.sum())),
        )
    console = _console()
    console.print(table)
    console.print(f"{sum(len(b) for b in venues.values())} trades on {len(venues)} venue(s)", highlight=False)


@query.command("recent")
@_exchange_option
@_market_type_option
@click.option("--symbol", callback=_normalised("normal_symbol"), help="BASE-QUOTE, or a bare base for every quote.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=20, show_default=True)
@_json_option
@click.pass_context
def recent_cmd(
    ctx: click.Context,
    exchange: str | None,
    market_type: str | None,
    symbol: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The newest trades, newest first."""
    from ..store.market import recent_trades, trade_records

    with _connection(ctx) as (conn, settings):
        batch = recent_trades(conn, settings, exchange=exchange, market_type=market_type, symbol=symbol, limit=limit)
    if as_json:
        _emit_json(trade_records(batch))
        return
    table = Table(title=f"{len(batch)} most recent trade(s)")
    for name in ("time", "exchange", "market", "symbol", "side", "price", "quantity", "trade_id"):
        table.add_column(name, justify="right" if name in ("price", "quantity") else "left", no_wrap=True)
    for row in trade_records(batch):
        table.add_row(
            row["ts"],
            row["exchange"],
            row["market_type"],
            row["symbol"],
            row["side"],
            repr(row["price"]),
            repr(row["quantity"]),
            row["trade_id"],
        )
    _console().print(table)


@query.command("candles")
@click.argument("symbol", callback=_normalised("normal_symbol"))
@click.option("--from", "start", required=True, help="Start: ISO-8601 or ns since the epoch.")
@click.option("--to", "end", required=True, help="End: ISO-8601 or ns since the epoch.")
@click.option("--interval", default="1m", show_default=True, help="Bucket: <n>s|m|h|d.")
@_exchange_option
@_market_type_option
@click.option("--no-view", is_flag=True, help="Aggregate trades with SAMPLE BY even for 1m (skip candles_1m).")
@_json_option
@click.pass_context
def candles_cmd(
    ctx: click.Context,
    symbol: str,
    start: str,
    end: str,
    interval: str,
    exchange: str | None,
    market_type: str | None,
    no_view: bool,
    as_json: bool,
) -> None:
    """OHLCV candles of SYMBOL per venue for every bucket overlapping --from .. --to."""
    from ..store.market import candles

    start_ns, end_ns = parse_time_ns(start, "--from"), parse_time_ns(end, "--to")
    with _connection(ctx) as (conn, settings):
        rows = candles(
            conn,
            settings,
            symbol,
            start_ns,
            end_ns,
            interval=interval,
            exchange=exchange,
            market_type=market_type,
            use_view=not no_view,
        )
    if as_json:
        _emit_json([{"ts": iso_ns(c.ts_ns), **asdict(c)} for c in rows])
        return
    table = Table(title=f"{symbol} {interval} candles ({len(rows)})")
    for name in ("time", "exchange", "market", "symbol", "open", "high", "low", "close", "volume", "trades"):
        table.add_column(name, justify="left" if name in ("time", "exchange", "market", "symbol") else "right")
    for c in rows:
        table.add_row(
            iso_ns(c.ts_ns),
            c.exchange,
            c.market_type,
            c.symbol,
            *(repr(v) for v in (c.open, c.high, c.low, c.close, c.volume)),
            str(c.trades),
        )
    _console().print(table)


@query.command("latest")
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    callback=_normalised("normal_symbol"),
    help="BASE-QUOTE or bare base; repeat for several.",
)
@_exchange_option
@_market_type_option
@click.option("--within", help="Only keys that traded in this recent span, e.g. 1h (bounds the scan).")
@_json_option
@click.pass_context
def latest_cmd(
    ctx: click.Context,
    symbols: tuple[str, ...],
    exchange: str | None,
    market_type: str | None,
    within: str | None,
    as_json: bool,
) -> None:
    """The last trade price per exchange, market type and symbol.

    Without --within, QuestDB scans back until it has seen every key: the whole table when a
    key has gone quiet.
    """
    import time

    from ..store.market import latest_prices

    since = None if within is None else time.time_ns() - parse_duration_ns(within, "--within")
    with _connection(ctx) as (conn, settings):
        prices = latest_prices(
            conn, settings, list(symbols) or None, exchange=exchange, market_type=market_type, since_ns=since
        )
    if as_json:
        _emit_json([{"ts": iso_ns(p.ts_ns), **asdict(p)} for p in prices])
        return
    table = Table(title=f"latest prices ({len(prices)})")
    for name in ("exchange", "market", "symbol", "price", "quantity", "side", "time"):
        table.add_column(name, justify="right" if name in ("price", "quantity") else "left", no_wrap=True)
    for p in prices:
        table.add_row(p.exchange, p.market_type, p.symbol, repr(p.price), repr(p.quantity), p.side, iso_ns(p.ts_ns))
    _console().print(table)
