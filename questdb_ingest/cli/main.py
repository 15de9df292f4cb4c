"""``pumpwatch``: the command line (click + rich).

Every command loads settings once (file, env, flags) so a bad key fails before any work starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .. import __version__
from ..config import Settings
from ..errors import DataLossError, PumpwatchError
from ..resources import questdb_pin
from ..timefmt import iso, iso_ns
from .support import (
    COUNT,
    NON_NEGATIVE,
    PORT,
    PORT_OR_ANY,
    RATE,
    SECONDS,
    WORKERS,
    ErrorGroup,
    cli_settings,
    console,
)
from .views.sender import worker_table
from .views.service import service_view


def _settings(ctx: click.Context, **sections: dict[str, Any]) -> Settings:
    """Settings from the global --config/--state-dir plus this command's flags (``None`` flags are ignored)."""
    return cli_settings(ctx, **sections)


@click.group(cls=ErrorGroup)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML settings file (default: $PUMPWATCH_CONFIG, ./pumpwatch.toml, ~/.config/pumpwatch/pumpwatch.toml, "
    "/etc/pumpwatch/pumpwatch.toml — the first that exists).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="Root of every file pumpwatch keeps (QuestDB data, spool, dead letters, rollout state, exports); "
    "default $PUMPWATCH_STATE_DIR, [state] dir, or ~/.local/share/pumpwatch.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log lines at this level and above, every process (default log.level: info).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    help="text, or one JSON object per line for journald/Loki (default log.format: text).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    help="Also append log lines here (default log.file: none; relative to the state root in the config).",
)
@click.version_option(__version__, prog_name="pumpwatch")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    state_dir: str | None,
    log_level: str | None,
    log_format: str | None,
    log_file: str | None,
) -> None:
    """Capture every public crypto trade into QuestDB, losslessly."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path
    ctx.obj["state_dir"] = state_dir
    log_path = str(Path(log_file).resolve()) if log_file else None  # a flag is relative to where it was typed
    ctx.obj["log"] = {"level": log_level, "format": log_format, "file": log_path}


# --------------------------------------------------------------------------- questdb
def _server_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option("--data-dir", type=click.Path(file_okay=False), help="Server root (db, conf, log, pid)."),
            click.option("--http-port", type=PORT, help="HTTP / ILP-over-HTTP port (9000)."),
            click.option("--pg-port", type=PORT, help="PGWire port (8812)."),
            click.option("--ilp-tcp-port", type=PORT, help="ILP/TCP port (9009)."),
            click.option("--health-port", type=PORT, help="Health endpoint port (9003)."),
        ]
    ):
        f = opt(f)
    return f


@main.group()
def questdb() -> None:
    """Install and run the pinned QuestDB server on 127.0.0.1."""


def _process(ctx: click.Context, **flags: Any) -> Any:
    from ..server import QuestDBProcess

    return QuestDBProcess(_settings(ctx, questdb=flags).questdb)


@questdb.command("install")
def questdb_install() -> None:
    """Fetch the pinned release from Maven Central (idempotent)."""
    from ..server import install

    inst = install()
    console.print(f"QuestDB {inst.version}: {inst.jar} (java: {inst.java})")


@questdb.command("start")
@_server_options
@click.pass_context
def questdb_start(ctx: click.Context, /, **flags: Any) -> None:
    """Start the server and wait until it answers."""
    proc = _process(ctx, **flags)
    with console.status(f"starting QuestDB {questdb_pin().version} in {proc.root} ..."):
        st = proc.start()
    console.print(
        f"[green]QuestDB {questdb_pin().version} running[/] pid {st.pid}: http 127.0.0.1:{st.http_port}, "
        f"pg {st.pg_port}, ilp/tcp {st.ilp_tcp_port}, health {st.health_port}; log {st.log_file}"
    )


@questdb.command("stop")
@_server_options
@click.pass_context
def questdb_stop(ctx: click.Context, /, **flags: Any) -> None:
    """Stop the server gracefully (SIGTERM, then SIGKILL after 60 s)."""
    proc = _process(ctx, **flags)
    console.print("stopped" if proc.stop() else "not running")


@questdb.command("status")
@_server_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def questdb_status(ctx: click.Context, /, as_json: bool, **flags: Any) -> None:
    """Show whether a server answers the health endpoint of questdb.host (ours, or one started
    elsewhere); exit 3 when none does."""
    import json

    st = _process(ctx, **flags).status()
    if as_json:
        click.echo(json.dumps({"version": questdb_pin().version, **st.as_dict()}, indent=2))
    else:
        console.print(f"QuestDB {questdb_pin().version}: {st.describe()}", highlight=False)
    if not st.ok:
        sys.exit(3)


# --------------------------------------------------------------------------- db
def _schema_options(f: Any) -> Any:
    f = click.option("--schema-dir", type=click.Path(file_okay=False), help="Directory of NNN_*.sql files.")(f)
    f = click.option("--table-prefix", help="Prefix for every table name.")(f)
    f = click.option("--ttl-days", type=click.IntRange(1, 36500), help="TTL of the data tables (days).")(f)
    return f


@main.group()
def db() -> None:
    """Schema migrations."""


@db.command("migrate")
@_schema_options
@click.option(
    "--allow-ttl-decrease",
    is_flag=True,
    help="Apply a schema.ttl_days lower than a table's TTL (QuestDB then drops the older partitions listed).",
)
@click.pass_context
def db_migrate(ctx: click.Context, /, allow_ttl_decrease: bool, **flags: Any) -> None:
    """Apply pending migrations and set table TTLs to schema.ttl_days (idempotent; refuses edited
    applied migrations, and a TTL decrease unless --allow-ttl-decrease, printing what it would drop)."""
    from ..store.migrations import migrate
    from ..store.pg import connect

    settings = _settings(ctx, schema=flags)
    with connect(settings) as conn:
        report = migrate(
            conn,
            settings,
            on_apply=lambda m: console.print(f"applying {m.path.name} ..."),
            allow_ttl_decrease=allow_ttl_decrease,
        )
    for change in report.ttl_changed:
        console.print(f"TTL changed: {change.describe()}")
    console.print(f"[green]schema up to date[/]: {len(report.applied)} applied, {len(report.already)} already applied")


@db.command("status")
@_schema_options
@click.pass_context
def db_status(ctx: click.Context, /, **flags: Any) -> None:
    """List migrations and whether each is applied."""
    from ..store.migrations import applied_versions, discover, schema_dir, ttl_changes
    from ..store.pg import connect

    settings = _settings(ctx, schema=flags)
    with connect(settings) as conn:
        done = applied_versions(conn, settings, create=False)
        ttl = ttl_changes(conn, settings)
    table = Table("version", "name", "state")
    for mig in discover(schema_dir(settings)):
        if mig.version not in done:
            state = "[yellow]pending[/]"
        elif done[mig.version][1] == mig.checksum:
            state = "[green]applied[/]"
        else:
            state = "[red]EDITED after apply[/]"
        table.add_row(f"{mig.version:03d}", mig.name, state)
    console.print(table)
    for change in ttl:
        console.print(f"[yellow]TTL differs from schema.ttl_days[/]: {change.describe()} (applied by db migrate)")


# --------------------------------------------------------------------------- demo
def _demo_option(f: Any) -> Any:
    return click.option(
        "--demo-prefix",
        help="Table prefix of the generated/replayed trades, after schema.table_prefix "
        "(default schema.demo_prefix, demo_; '' writes the production tables).",
    )(f)


def _demo_settings(ctx: click.Context, demo_prefix: str | None, **sections: dict[str, Any]) -> tuple[Settings, bool]:
    """Settings whose tables are the demo ones (``Settings.for_demo``) and whether they differ from
    the production ones; says on stderr where the rows go."""
    from .support import err_console

    sections["schema"] = {**sections.get("schema", {}), "demo_prefix": demo_prefix}
    base = _settings(ctx, **sections)
    settings = base.for_demo()
    if base.schema.demo_prefix:
        note = f"generated data; query it with PUMPWATCH_SCHEMA_TABLE_PREFIX={settings.schema.table_prefix}"
    else:
        note = "generated data into the PRODUCTION tables"
    err_console.print(f"[dim]{'trades table':>13}:[/] {settings.table('trades')} ({note})", highlight=False)
    return settings, bool(base.schema.demo_prefix)


def _create_demo_tables(settings: Settings, demo_prefix_used: bool) -> None:
    """Demo tables are created (never a TTL change) so generated rows get the real DDL and DEDUP;
    production tables are only ever changed by ``pumpwatch db migrate``. QuestDB being down is not
    an error here: the sender spools until it answers."""
    import psycopg

    from ..store.migrations import migrate
    from ..store.pg import connect

    if not demo_prefix_used:
        return
    try:
        with connect(settings) as conn:
            migrate(conn, settings, reconcile_ttl=False)
    except psycopg.OperationalError as exc:
        from .support import err_console

        err_console.print(f"[yellow]QuestDB not reachable ({str(exc).strip()}); demo tables not created yet[/]")


@main.command("demo")
@click.option("--trades", type=COUNT, default=100_000, show_default=True, help="Synthetic trades to write.")
@click.option("--symbols", type=COUNT, default=200, show_default=True, help="Distinct symbols.")
@click.option("--batch-rows", type=COUNT, help="Rows per flush (default: ingest.batch_rows).")
@_demo_option
@click.pass_context
def demo(ctx: click.Context, trades: int, symbols: int, batch_rows: int | None, demo_prefix: str | None) -> None:
    """Write a synthetic burst across the 14 feeds and show what landed, read back with SQL
    (into the demo tables, ``demo_trades`` by default)."""
    from ..connectors import CONNECTORS, SyntheticMarket
    from ..ingest import TradeWriter
    from ..store import queries
    from ..store.pg import connect

    settings, separate = _demo_settings(ctx, demo_prefix, ingest={"batch_rows": batch_rows})
    _create_demo_tables(settings, separate)
    market = SyntheticMarket(symbols=symbols)
    run_id = market.run_id
    chunk = max(1, min(trades, 10_000))
    expected: dict[tuple[str, str], int] = {}
    started = time.perf_counter()
    with TradeWriter.from_settings(settings) as writer, _progress() as progress:
        task = progress.add_task("writing trades", total=trades)
        span = 60_000_000_000
        t0 = time.time_ns() - span
        for done in range(0, trades, chunk):
            rows = min(chunk, trades - done)
            batch = market.batch(rows, start_ns=t0 + span * done // trades, span_ns=max(span * rows // trades, rows))
            for key in zip(batch.exchange.tolist(), batch.market_type.tolist(), strict=True):
                expected[key] = expected.get(key, 0) + 1
            writer.write(batch)
            progress.update(task, advance=rows)
    sent_s = time.perf_counter() - started
    table_name = settings.table("trades")
    with connect(settings) as conn:
        queries.wait_visible(conn, table_name)
        landed = queries.trade_counts_by_exchange(conn, table_name, f"{run_id}-")
    total_s = time.perf_counter() - started

    day = time.strftime("%Y-%m-%d", time.gmtime(t0 // 1_000_000_000))
    out = Table(title=f"trades landed in {table_name} on {day} (run {run_id})")
    for col in ("connector", "sent", "landed", "volume", "first trade UTC", "last trade UTC"):
        out.add_column(col, justify="right" if col in ("sent", "landed", "volume") else "left")
    by_key = {(r.exchange, r.market_type): r for r in landed}
    ok = True
    for conn_def in CONNECTORS:
        key = (conn_def.exchange, conn_def.market_type)
        row = by_key.get(key)
        n_landed = row.trades if row else 0
        ok &= n_landed == expected.get(key, 0)
        out.add_row(
            conn_def.name,
            f"{expected.get(key, 0):,}",
            f"{n_landed:,}",
            f"{row.volume:,.2f}" if row else "-",
            iso_ns(row.first_ts_ns) if row else "-",
            iso_ns(row.last_ts_ns) if row else "-",
        )
    console.print(out)
    total_landed = sum(r.trades for r in landed)
    console.print(
        f"{total_landed:,}/{trades:,} trades visible in {total_s:.2f}s "
        f"({trades / sent_s:,.0f} rows/s confirmed by QuestDB)"
    )
    if not ok or total_landed != trades:
        raise PumpwatchError("landed counts differ from what was sent")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


# --------------------------------------------------------------------------- load
@main.command("load")
@click.option("--duration", type=SECONDS, default=60.0, show_default=True, help="Seconds to generate for.")
@click.option("--base-rate", type=RATE, default=1000.0, show_default=True, help="Trades/s between pumps.")
@click.option("--burst-rate", type=RATE, default=5000.0, show_default=True, help="Trades/s during a pump.")
@click.option("--burst-every", type=SECONDS, default=60.0, show_default=True, help="Seconds between pump starts.")
@click.option("--burst-seconds", type=NON_NEGATIVE, default=10.0, show_default=True, help="Length of a pump.")
@click.option("--symbols", type=COUNT, default=300, show_default=True)
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option("--transport", type=click.Choice(["http", "ws"]), default="http", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the final metrics here.")
@_demo_option
@click.pass_context
def load(
    ctx: click.Context,
    duration: float,
    base_rate: float,
    burst_rate: float,
    burst_every: float,
    burst_seconds: float,
    symbols: int,
    workers: int,
    transport: str,
    json_path: str | None,
    demo_prefix: str | None,
) -> None:
    """Synthetic load (the seed's pattern: a base rate with pumps over 12 feeds) through the
    sharded sender into QuestDB's demo tables, with a live view. SIGINT/SIGTERM stop intake, drain
    and exit 0."""
    import asyncio

    from ..app import Service, ServiceOptions
    from .views.sender import books_line, exchange_table, live_view, worker_table

    settings, separate = _demo_settings(ctx, demo_prefix)
    _create_demo_tables(settings, separate)
    options = ServiceOptions(
        source="synthetic", rate=base_rate, burst_rate=burst_rate, burst_every=burst_every,
        burst_seconds=burst_seconds, symbols=symbols, workers=workers or None, transport=transport, api=False,
        operations=False,
    )  # fmt: skip
    stop_requested = threading.Event()
    with _on_signals(stop_requested), Service(settings, options, stop_requested=stop_requested) as service:
        source: Any = service.source
        with _Display(settings.log.status_interval) as display:

            def refresh(snap: Any) -> None:
                display.update(
                    lambda: live_view(
                        snap.sender, elapsed=snap.uptime_s, duration=duration, rate=source.rate_now,
                        submitted=snap.received,
                    ),
                    lambda: _status_line(f"load {snap.uptime_s:,.0f}s", source.rate_now, snap.received, snap.sender),
                )  # fmt: skip

            service.on_tick(refresh)
            try:
                if not stop_requested.is_set():
                    asyncio.run(service.run(duration))
            finally:
                display.say("draining: flushing every queued row to QuestDB or the spool…")
                outcome = service.stop()
        elapsed = service.snapshot().uptime_s
    metrics = outcome.metrics
    by_signal = stop_requested.is_set() or service.stop_reason == "stopped"
    why = "stopped by signal" if by_signal else "done"
    console.print(f"{why}: submitted {outcome.received:,} trades in {elapsed:.1f}s")
    console.print(exchange_table(metrics, "per exchange (final)"))
    console.print(worker_table(metrics))
    console.print(books_line(metrics))
    if json_path:
        report = {"submitted": outcome.received, "elapsed_s": elapsed, "stopped_by_signal": by_signal}
        _write_json(json_path, report | {"metrics": metrics.to_dict()})
    if outcome.lost:
        raise DataLossError(
            f"{outcome.lost:,} trade(s) were generated but not stored: {outcome.describe()}", outcome.lost
        )


# --------------------------------------------------------------------------- connectors
def _connector_settings(ctx: click.Context, names: str | None, base_url: str | None) -> Settings:
    return _settings(ctx, connectors={"enabled": names, "base_url": base_url})


class _Display:
    """The live view on a terminal; without one (a pipe, systemd, CI) rich would print nothing until
    exit, so a status line is logged every ``log.status_interval`` seconds instead."""

    def __init__(self, interval: float) -> None:
        from rich.live import Live

        self.terminal = console.is_terminal
        self.live = Live(console=console, refresh_per_second=2, transient=True) if self.terminal else None
        self.interval = interval
        self._next = time.monotonic() + interval
        self._log = logging.getLogger("questdb_ingest.status")

    def __enter__(self) -> _Display:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, view: Callable[[], Any], line: Callable[[], str]) -> None:
        if self.live is not None:
            self.live.update(view())
        elif self.interval and time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            self._log.info("%s", line())

    def say(self, text: str) -> None:
        if self.live is not None:
            self.live.update(Text(text))
        else:
            self._log.info("%s", text)


def _status_line(head: str, rate: float, received: int, m: Any, extra: str = "") -> str:
    """One line for logs: what the live view shows, in numbers."""
    b = m.books
    line = (
        f"{head}: {received:,} trades received ({rate:,.0f}/s), {b.confirmed + b.replayed:,} confirmed, "
        f"{b.spooled_now:,} in the spool, {b.in_flight:,} in memory, {b.dead_lettered:,} dead-lettered"
    )
    return line + (f"; {extra}" if extra else "")


@main.command("run")
@click.option(
    "--source",
    type=click.Choice(["live", "replay", "synthetic"]),
    default="live",
    show_default=True,
    help="live: the venues' real endpoints; replay: a local replay server (started unless --replay-url); "
    "synthetic: generated trades straight into the sender (no sockets, no listing detection).",
)
@click.option("--replay-url", help="A running replay server, e.g. http://127.0.0.1:8765 (implies --source replay).")
@click.option("--connectors", "names", help="Comma list of connectors (default: connectors.enabled).")
@click.option(
    "--replay-symbols", type=COUNT, default=10, show_default=True, help="Symbols per venue on a started replay server."
)
@click.option("--rate", type=RATE, default=1000.0, show_default=True, help="Base trades/s (replay server, synthetic).")
@click.option(
    "--burst-rate", type=RATE, default=5000.0, show_default=True, help="Burst trades/s (replay server, synthetic)."
)
@click.option("--seconds", type=SECONDS, help="Stop after this long (default: run until Ctrl-C / SIGTERM).")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option(
    "--hybrid-mode/--no-hybrid-mode",
    default=False,
    show_default=True,
    help="Keep a ring buffer of recent trades next to QuestDB, read listing windows per the rollout stage, "
    "run the rollback manager and the listing detector.",
)
@click.option("--compare", is_flag=True, help="Hybrid: read every window from both sources and record the diffs.")
@click.option(
    "--rollout-config", type=click.Path(dir_okay=False), help="Rollout YAML (default: hybrid.rollout_config)."
)
@click.option(
    "--migrate",
    "apply_migrations",
    is_flag=True,
    help="Apply pending schema migrations (never a TTL change). Without it, run refuses an out-of-date schema.",
)
@click.option(
    "--api/--no-api", default=None, help="Serve the HTTP API and /metrics (default: api.enabled, on 127.0.0.1)."
)
@click.option("--api-port", type=PORT_OR_ANY, help="API port (default: api.port; 0 = any free port).")
@click.option(
    "--list-coin", metavar="BASE", help="Replay: list this new coin on every venue (Upbit KRW last) during the run."
)
@click.option(
    "--list-after", type=SECONDS, default=10.0, show_default=True, help="Seconds after the start for --list-coin."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write final per-connector stats here.")
@_demo_option
@click.pass_context
def run(
    ctx: click.Context,
    source: str,
    replay_url: str | None,
    names: str | None,
    replay_symbols: int,
    rate: float,
    burst_rate: float,
    seconds: float | None,
    workers: int,
    hybrid_mode: bool,
    compare: bool,
    rollout_config: str | None,
    apply_migrations: bool,
    api: bool | None,
    api_port: int | None,
    list_coin: str | None,
    list_after: float,
    json_path: str | None,
    demo_prefix: str | None,
) -> None:  # fmt: skip
    """Capture trades: connectors → sharded sender → QuestDB, with health and gap rows and a live view.

    QuestDB need not be up: trades are spooled until it answers, and the schema is checked then
    (run never changes the schema; --migrate applies pending migrations). If the sender fails, intake
    stops at once and the exit code is 4 with the count of trades received but not stored.
    With --hybrid-mode every trade also goes to the ring buffer, new Upbit KRW listings are detected
    and their ±20 s window collected, exported and recorded, and QuestDB's health is checked for
    automatic rollback. SIGINT/SIGTERM close the sockets, hand every parsed trade to the sender and
    drain it within sender.drain_timeout (a second signal stops at once); exit 0.
    Replayed and synthetic trades go to the demo tables (schema.demo_prefix, ``demo_trades``), which
    run creates; live trades to the production ones. The HTTP API (health, status, metrics, trades,
    listings, gaps, feeds, alerts) and Prometheus /metrics are served on api.host:api.port."""
    from ..app import Service, ServiceOptions
    from .support import err_console
    from .views.service import service_view

    if compare and not hybrid_mode:
        raise click.UsageError("--compare needs --hybrid-mode")
    if rollout_config and not hybrid_mode:
        raise click.UsageError("--rollout-config needs --hybrid-mode")
    if replay_url:
        source = "replay"
    if list_coin and source != "replay":
        raise click.UsageError("--list-coin needs --source replay (it lists the coin on the replay server)")
    if source == "live":
        if demo_prefix is not None:
            raise click.UsageError("--demo-prefix is for --source replay|synthetic")
        settings = _connector_settings(ctx, names, None)
    else:  # generated data: its own tables, created here (production ones only by db migrate / --migrate)
        settings, separate = _demo_settings(ctx, demo_prefix, connectors={"enabled": names})
        apply_migrations = apply_migrations or separate
    if api_port is not None:
        settings = replace(settings, api=replace(settings.api, port=api_port))
    print_paths(settings)
    options = ServiceOptions(
        source=source, replay_url=replay_url, replay_symbols=replay_symbols, rate=rate, burst_rate=burst_rate,
        workers=workers or None, hybrid=hybrid_mode, compare=compare, rollout_config=rollout_config,
        migrate=apply_migrations, api=api, list_coin=list_coin or "", list_after=list_after,
    )  # fmt: skip
    # Until the feeds' event loop takes the signals over, SIGINT/SIGTERM (during start-up) stop it cleanly.
    stop_requested = threading.Event()
    with _on_signals(stop_requested), Service(settings, options, stop_requested=stop_requested) as service:
        if service.api is not None:
            url = service.api.url
            err_console.print(f"[dim]{'api':>13}:[/] {url}/api/health  (Prometheus: {url}/metrics)", highlight=False)
        _capture(service, source, seconds)
        outcome = service.stop()
        final = service.snapshot()
        console.print(service_view(final, f"{source} (final)"))
        console.print(worker_table(outcome.metrics))
        _print_landed(service)
        if service.runtime is not None:
            _print_listings(service.runtime)
    console.print(outcome.describe())
    if json_path:
        report: dict[str, Any] = {
            "outcome": {
                "received": outcome.received, "unsent": outcome.unsent, "unstored": outcome.unstored,
                "lost": outcome.lost, "failure": outcome.failure, "unstored_by_exchange": outcome.unstored_by_exchange,
            },
            "paths": settings.paths(),
            "sender": outcome.metrics.to_dict(),
        }  # fmt: skip
        if service.runtime is not None:
            report["hybrid"] = _hybrid_report(service.runtime)
        if source == "synthetic":
            report["synthetic"] = {"trades": outcome.received, "elapsed_s": final.uptime_s}
        else:
            report["feeds"] = {f.name: _feed_report(f) for f in final.feeds}
        _write_json(json_path, report)
    if outcome.lost:
        cause = f" — intake stopped because {outcome.failure}" if outcome.failure else ""
        raise DataLossError(
            f"{outcome.lost:,} trade(s) were received but not stored: {outcome.describe()}{cause}", outcome.lost
        )
    if outcome.failure:
        raise PumpwatchError(f"intake stopped early: {outcome.failure}")


def _capture(service: Any, label: str, seconds: float | None) -> None:
    """Run the started service with the live view (or status lines), then drain it (a second
    signal cuts the drain short)."""
    import asyncio

    last: list[float] = [0.0, 0.0]  # uptime and received at the previous status line

    def line(snap: Any) -> str:
        rate = (snap.received - last[1]) / max(snap.uptime_s - last[0], 1e-9)  # since the previous line
        last[0], last[1] = snap.uptime_s, snap.received
        feeds = f"feeds {sum(f.connected for f in snap.feeds)}/{len(snap.feeds)} connected" if snap.feeds else ""
        extra = "; ".join(x for x in (feeds, *(f"ALARM {a}" for a in snap.alarms)) if x)
        return _status_line(f"{label} {snap.uptime_s:,.0f}s", rate, snap.received, snap.sender, extra)

    with _Display(service.settings.log.status_interval) as display:

        def refresh(snap: Any) -> None:
            display.update(lambda: service_view(snap, f"{label} — {snap.uptime_s:,.0f}s"), lambda: line(snap))

        service.on_tick(refresh)
        try:
            asyncio.run(service.run(seconds))
        finally:
            display.say("draining: every parsed trade to QuestDB or the spool… (signal again to stop now)")
            abort = threading.Event()
            with _on_signals(abort):
                service.stop(abort=abort)


def _print_landed(service: Any) -> None:
    """What QuestDB holds of this run, per venue (read back over SQL once the WAL is applied)."""
    import psycopg

    from ..store.pg import connect
    from ..store.queries import trade_counts_by_exchange, wait_visible

    table_name = service.settings.table("trades")
    try:
        with connect(service.settings, connect_timeout=3) as conn:
            wait_visible(conn, table_name, timeout=30)
            rows = trade_counts_by_exchange(conn, table_name, since_ns=service.started_ns - 60 * 10**9)
    except (PumpwatchError, OSError, TimeoutError, psycopg.Error) as exc:
        console.print(f"[yellow]could not read back what landed: {exc}[/]")
        return
    table = Table(title=f"landed in QuestDB ({table_name}) during this run, per venue")
    for col in ("exchange", "market", "trades", "first", "last"):
        table.add_column(col, justify="right" if col == "trades" else "left")
    for r in rows:
        table.add_row(r.exchange, r.market_type, f"{r.trades:,}", iso_ns(r.first_ts_ns), iso_ns(r.last_ts_ns))
    table.add_row("all", "", f"{sum(r.trades for r in rows):,}", "", "", style="bold")
    console.print(table)


def _print_listings(runtime: Any) -> None:
    """Every listing the detector collected in this run: its ±window trades per venue and export."""
    history = runtime.detector.history if runtime.detector is not None else []
    if not history:
        console.print("no listing detected in this run")
        return
    h = runtime.settings.hybrid
    table = Table(title=f"listings: trades in the window (trigger -{h.window_before:g} s .. +{h.window_after:g} s)")
    for col in ("listing", "trigger", "status", "read from", "per venue", "export"):
        table.add_column(col, overflow="fold")
    for c in history:
        counts = ", ".join(f"{v} {n:,}" for v, n in sorted(c.counts.items())) or "no trades"
        export = str(c.export.directory) if c.export is not None else "-"
        table.add_row(c.trigger.market, iso(c.trigger.trigger_ns), c.status, c.source, counts, export)
    console.print(table)


def _feed_report(f: Any) -> dict[str, Any]:
    return {
        "status": f.status, "instruments": f.instruments, "connections": f.connections, "messages": f.messages,
        "trades": f.trades, "unsent": f.unsent, "dead_letters": f.dead_letters, "venue_errors": f.venue_errors,
        "unknown_events": f.unknown_events, "gaps": f.gaps, "backfilled": f.backfilled,
        "lag_ms": {"p50": f.lag_p50_ms, "p99": f.lag_p99_ms},
    }  # fmt: skip


def _write_json(path: str, report: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


@contextlib.contextmanager
def _on_signals(event: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``event`` for the duration (the previous handlers come back after)."""
    previous = {sig: signal.signal(sig, lambda *_: event.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_paths(settings: Settings) -> None:
    """Where this run reads its config and keeps its files (stderr, so stdout stays the report)."""
    from .support import err_console

    for name, path in settings.paths().items():
        err_console.print(f"[dim]{name:>13}:[/] {path}", highlight=False)


def _hybrid_report(runtime: Any) -> dict[str, Any]:
    """What hybrid mode did, for ``--json``: reads, compares, rollout changes and listings."""
    from dataclasses import asdict

    detector = runtime.detector
    return {
        "rollout": runtime.rollout.status(),
        "reads": asdict(runtime.manager.stats),
        "buffer": asdict(runtime.ring.stats()),
        "rollback_checks": runtime.rollback.checks,
        "rollout_changes": [c.as_dict() for c in runtime.rollback.events],
        "listings": [
            {
                "base": c.trigger.base,
                "market": c.trigger.market,
                "status": c.status,
                "source": c.source,
                "counts": c.counts,
                "export": str(c.export.directory) if c.export is not None else None,
                "written": c.written,
            }
            for c in (detector.history if detector is not None else [])
        ],
    }


@main.command("record")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Session directory to write.")
@click.option("--connectors", "names", help="Comma list of connectors (default: connectors.enabled).")
@click.option("--seconds", type=SECONDS, default=60.0, show_default=True, help="How long to record.")
@click.option("--base-url", help="Record from this server instead of the venues (e.g. a replay server).")
@click.pass_context
def record(ctx: click.Context, out_dir: str, names: str | None, seconds: float, base_url: str | None) -> None:
    """Record raw frames from the venues (one JSONL per connector) for the replay server's --session."""
    import asyncio

    from ..app.snapshot import RateTracker, feed_snapshot
    from ..connectors.pipeline import MemoryEvents, MemorySink
    from ..connectors.registry import select
    from ..connectors.replay.session import SessionWriter
    from ..connectors.run import run_feeds
    from .views.feeds import feeds_table

    settings = _connector_settings(ctx, names, base_url)
    chosen = select(settings.connectors.enabled)
    writer = SessionWriter(out_dir)
    rates = RateTracker()

    def snapshots(pipeline: Any) -> list[Any]:
        per_feed = rates.rates()[1]
        return [feed_snapshot(f, per_feed.get(f.name, 0.0)) for f in pipeline.feeds]

    with _Display(settings.log.status_interval) as display:

        def refresh(pipeline: Any, elapsed: float) -> None:
            for feed in pipeline.feeds:  # the sidecar a later `archive ingest` of this recording parses with
                writer.instruments(feed.name, feed.instruments.values())
            rates.sample(0, {f.name: f.stats.trades for f in pipeline.feeds})
            frames = sum(f.stats.messages for f in pipeline.feeds)
            display.update(
                lambda: feeds_table(snapshots(pipeline), f"recording to {out_dir} — {elapsed:,.0f}/{seconds:,.0f}s"),
                lambda: f"record {elapsed:,.0f}/{seconds:,.0f}s: {frames:,} frames to {out_dir}",
            )

        try:
            pipeline = asyncio.run(
                run_feeds(
                    settings,
                    chosen,
                    sink=MemorySink(keep=False),
                    events=MemoryEvents(),
                    duration=seconds,
                    on_tick=refresh,
                    tap=writer.write,
                )
            )
            for feed in pipeline.feeds:
                writer.instruments(feed.name, feed.instruments.values())
        finally:
            writer.close()
    console.print(feeds_table(snapshots(pipeline), f"recorded to {out_dir}"))


# --------------------------------------------------------------------------- bench
