"""``pumpwatch query``: the market reads of ``store.market`` and the archive reads of ``store.archive``
(``bars``, ``ticks``, ``gaps``) as commands (rich tables or ``--json``).

Registered in ``cli.py`` with ``main.add_command(query)``; it also runs standalone (tests use
``CliRunner().invoke(query, ...)``), taking the config path from ``ctx.obj["config"]`` when the
main group set one, else from $PUMPWATCH_CONFIG / ./pumpwatch.toml / the environment.
The heavy imports (numpy, pandas, psycopg via ``store.market``) happen inside the commands so
``pumpwatch --help`` stays fast and ``cli.py`` can import this module without a cycle.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
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

    from ..store.archive import ArchiveBar


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
    """Read trades back (listing window, recent trades, candles, latest prices) and the archive
    tables (bars, ticks, gaps)."""


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


# --------------------------------------------------------------------------- archive tables
def _checked(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback running ``store.archive.<name>`` on the value while the arguments are
    parsed, so a bad symbol, interval or source is a usage error (exit 2) before any connection."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        from ..store import archive
        from ..store.market import QueryArgumentError

        if value is None:
            return None
        try:
            getattr(archive, name)(value)
        except QueryArgumentError as exc:
            raise click.BadParameter(f"{exc.value!r}: {exc.reason}", ctx=ctx, param=param) from None
        return value

    return callback


def _range_ns(start: str | None, end: str | None) -> tuple[int, int] | None:
    """``--start``/``--end`` as ``[start, end)`` ns (``--end`` defaults to now), or None for neither."""
    import time

    if start is None:
        if end is not None:
            raise click.UsageError("--end needs --start")
        return None
    start_ns = parse_time_ns(start, "--start")
    end_ns = time.time_ns() if end is None else parse_time_ns(end, "--end")
    if end_ns < start_ns:
        raise click.BadParameter(f"{iso_ns(end_ns)} is before --start {iso_ns(start_ns)}", param_hint="--end")
    return start_ns, end_ns


def _opt(value: object, fmt: Callable[[Any], str] = repr) -> str:
    return "-" if value is None else fmt(value)


def _range_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--end", help="Range end (exclusive), as --start; default now.")(f)
    return click.option("--start", help="Range start (inclusive): ISO-8601, ns since the epoch or a duration ago.")(f)


_LIMIT = click.IntRange(1, 1_000_000)


@query.command("bars")
@click.argument("symbol", callback=_checked("check_symbol"))
@click.option(
    "--interval",
    default="10m",
    show_default=True,
    callback=_checked("check_interval"),
    help="10m (swing bars), 1m (scalp bars) or any whole number of minutes (5m, 1h, 1d) built from 1m.",
)
@_range_options
@click.option("--limit", type=_LIMIT, help="Without --start: the newest N bars (default 100); with it: the first N.")
@_json_option
@click.pass_context
def bars_cmd(
    ctx: click.Context,
    symbol: str,
    interval: str,
    start: str | None,
    end: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Archive bars of SYMBOL (as the archive wrote it, e.g. 005930 or BTC-USDT).

    Without --start: the newest swing 10-minute bars, newest first. With --start/--end: the bars
    starting in [start, end), oldest first.
    """
    from ..store.archive import MinuteBar, SwingBar, bar_records, get_bars_in_range, get_latest_bars

    window = _range_ns(start, end)
    if window is None and interval != "10m":
        raise click.UsageError(f"--interval {interval} needs --start (the newest bars are the swing 10m bars)")
    with _connection(ctx) as (conn, settings):
        if window is None:
            rows: Sequence[ArchiveBar] = get_latest_bars(conn, settings, symbol, 100 if limit is None else limit)
        else:
            rows = get_bars_in_range(conn, settings, symbol, *window, interval, limit=limit)
    if as_json:
        _emit_json(bar_records(rows))
        return
    extra: tuple[str, ...] = ("ticks",)
    if interval == "10m":
        extra = ("source", "dataset", "bid", "ask", "quality")
    elif interval == "1m":
        extra = ("ticks", "coverage", "quality")
    title = f"{symbol} {interval} bars ({len(rows)})" + ("" if window else ", newest first")
    table = Table(title=title)
    for name in ("time", "session", "open", "high", "low", "close", "volume", *extra):
        table.add_column(
            name, justify="left" if name in ("time", "session", "source", "dataset", "quality") else "right"
        )
    for b in rows:
        cells = [iso_ns(b.bar_time_ns), _opt(getattr(b, "session_id", None), str)]
        cells += [_opt(v) for v in (b.open, b.high, b.low, b.close)] + [_opt(b.volume, str)]
        if isinstance(b, SwingBar):
            cells += [_opt(b.source, str), _opt(b.dataset, str), _opt(b.bid_price), _opt(b.ask_price)]
            cells.append(_opt(b.quality_flag, str))
        elif isinstance(b, MinuteBar):
            cells += [_opt(b.ticks, str), _opt(b.coverage_ratio, lambda v: f"{v:.3f}"), _opt(b.quality_flag, str)]
        else:
            cells.append(_opt(b.ticks, str))
        table.add_row(*cells)
    _console().print(table)


@query.command("ticks")
@click.argument("symbol", callback=_checked("check_symbol"))
@_range_options
@click.option("--limit", type=_LIMIT, help="Without --start: the newest N ticks (default 100); with it: the first N.")
@_json_option
@click.pass_context
def ticks_cmd(
    ctx: click.Context, symbol: str, start: str | None, end: str | None, limit: int | None, as_json: bool
) -> None:
    """Archive scalp ticks of SYMBOL: the newest (newest first), or those in [--start, --end) oldest first."""
    from ..store.archive import get_latest_ticks, get_ticks_in_range, tick_records

    window = _range_ns(start, end)
    with _connection(ctx) as (conn, settings):
        if window is None:
            ticks = get_latest_ticks(conn, settings, symbol, 100 if limit is None else limit)
        else:
            ticks = get_ticks_in_range(conn, settings, symbol, *window, limit=limit)
    if as_json:
        _emit_json(tick_records(ticks))
        return
    table = Table(title=f"{symbol} ticks ({len(ticks)})" + ("" if window else ", newest first"))
    for name in ("event time", "session", "bid", "bid size", "ask", "ask size", "last", "volume", "quality"):
        table.add_column(name, justify="left" if name in ("event time", "session", "quality") else "right")
    for t in ticks:
        table.add_row(
            iso_ns(t.event_time_ns),
            _opt(t.session_id, str),
            *(_opt(v) for v in (t.bid_price, t.bid_size, t.ask_price, t.ask_size, t.last_price, t.volume)),
            _opt(t.quality_flag, str),
        )
    _console().print(table)


@query.command("gaps")
@click.option("--scope", help="Only this scope (as stored); default every scope.")
@click.option(
    "--source",
    type=click.Choice(["archive", "live", "all"]),
    default="all",
    show_default=True,
    help="archive: scalp_gaps, live: the connectors' gaps, all: both (each row says which).",
)
@click.option("--since", help="Gaps that started this long ago or later (default 1d).")
@_range_options
@click.option(
    "--min-seconds",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Only gaps of at least this many seconds (critical gaps).",
)
@click.option("--count", "count_only", is_flag=True, help="Print how many per source instead of the gaps.")
@click.option("--limit", type=_LIMIT, default=1000, show_default=True, help="At most this many gaps, newest first.")
@_json_option
@click.pass_context
def gaps_cmd(
    ctx: click.Context,
    scope: str | None,
    source: str,
    since: str | None,
    start: str | None,
    end: str | None,
    min_seconds: float,
    count_only: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Gaps from the archive ledger and/or the live one that started in a range, newest first."""
    import time

    from ..store.archive import check_source, count_gaps, gap_count_record, gap_records, get_critical_gaps

    if since is not None and start is not None:
        raise click.UsageError("give --since or --start/--end, not both")
    window = _range_ns(start, end)
    if window is None:
        now = time.time_ns()
        window = (now - parse_duration_ns(since or "1d", "--since"), now)
    kind = check_source(source)
    with _connection(ctx) as (conn, settings):
        if count_only:
            counts = count_gaps(conn, settings, scope, *window, kind, min_seconds=min_seconds)
        else:
            gaps = get_critical_gaps(conn, settings, min_seconds, *window, kind, scope, limit=limit)
    span = f"started in [{iso_ns(window[0])}, {iso_ns(window[1])})"
    if count_only:
        record = gap_count_record(counts)
        if as_json:
            _emit_json(record)
            return
        table = Table(title="gaps per source" + (f" (>= {min_seconds:g}s)" if min_seconds else ""))
        table.add_column("source")
        table.add_column("gaps", justify="right")
        for name, value in record.items():
            if value is not None:
                table.add_row(name, str(value))
        console = _console()
        console.print(table)
        console.print(f"gaps {span}", highlight=False)
        return
    if as_json:
        _emit_json(gap_records(gaps))
        return
    table = Table(title=f"{len(gaps)} gap(s), newest first")
    for name in ("source", "start", "end", "seconds", "scope", "reason", "session"):
        table.add_column(name, justify="right" if name == "seconds" else "left")
    for g in gaps:
        table.add_row(
            g.source, iso_ns(g.start_ns), _opt(g.end_ns, iso_ns), _opt(g.seconds, str), _opt(g.scope, str),
            _opt(g.reason, str), _opt(g.session_id, str),
        )  # fmt: skip
    console = _console()
    console.print(table)
    console.print(f"gaps {span}", highlight=False)
