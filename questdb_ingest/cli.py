"""``pumpwatch``: the command line (click + rich).

Every command loads settings once (file, env, flags) so a bad key fails before any work starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .cli_support import (
    COUNT,
    NON_NEGATIVE,
    PORT,
    POSITIVE_RATE,
    RATE,
    SECONDS,
    WORKERS,
    ErrorGroup,
    cli_settings,
    console,
)
from .config import Settings
from .errors import PumpwatchError
from .resources import questdb_pin


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
    from .server import QuestDBProcess

    return QuestDBProcess(_settings(ctx, questdb=flags).questdb)


@questdb.command("install")
def questdb_install() -> None:
    """Fetch the pinned release from Maven Central (idempotent)."""
    from .server import install

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
    from .store.migrations import migrate
    from .store.pg import connect

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
    from .store.migrations import applied_versions, discover, schema_dir, ttl_changes
    from .store.pg import connect

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
    from .cli_support import err_console

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

    from .store.migrations import migrate
    from .store.pg import connect

    if not demo_prefix_used:
        return
    try:
        with connect(settings) as conn:
            migrate(conn, settings, reconcile_ttl=False)
    except psycopg.OperationalError as exc:
        from .cli_support import err_console

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
    from .connectors import CONNECTORS, SyntheticMarket
    from .ingest import TradeWriter
    from .store import queries
    from .store.pg import connect

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
            _fmt_ns(row.first_ts_ns) if row else "-",
            _fmt_ns(row.last_ts_ns) if row else "-",
        )
    console.print(out)
    total_landed = sum(r.trades for r in landed)
    console.print(
        f"{total_landed:,}/{trades:,} trades visible in {total_s:.2f}s "
        f"({trades / sent_s:,.0f} rows/s confirmed by QuestDB)"
    )
    if not ok or total_landed != trades:
        raise PumpwatchError("landed counts differ from what was sent")


def _fmt_ns(ns: int) -> str:
    """``HH:MM:SS.mmmuuu`` (UTC, microseconds) — the day is in the table title."""
    return time.strftime("%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000 // 1000:06d}"


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
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
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
    import json

    from .load import LoadPattern, run_load
    from .sender import ShardedSender
    from .sender.view import books_line, exchange_table, live_view, worker_table

    settings, separate = _demo_settings(ctx, demo_prefix)
    _create_demo_tables(settings, separate)
    pattern = LoadPattern(base_rate, burst_rate, burst_every, burst_seconds)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sender = ShardedSender(settings, workers=workers or None, transport=transport).start()
    last = 0.0
    with _Display(settings.log.status_interval) as display:

        def refresh(stats: Any) -> None:
            nonlocal last
            if stats.elapsed - last >= 0.25:
                last = stats.elapsed
                m = sender.metrics()
                display.update(
                    lambda: live_view(
                        m, elapsed=stats.elapsed, duration=duration, rate=stats.rate_now, submitted=stats.submitted
                    ),
                    lambda: _status_line(f"load {stats.elapsed:,.0f}s", stats.rate_now, stats.submitted, m),
                )

        try:
            stats = run_load(sender, pattern, duration=duration, symbols=symbols, stop=stop, on_tick=refresh)
        finally:
            display.say("draining: flushing every queued row to QuestDB or the spool…")
            metrics = sender.close()
    why = "stopped by signal" if stop.is_set() else "done"
    console.print(f"{why}: submitted {stats.submitted:,} trades in {stats.elapsed:.1f}s")
    console.print(exchange_table(metrics, "per exchange (final)"))
    console.print(worker_table(metrics))
    console.print(books_line(metrics))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        report = {"submitted": stats.submitted, "elapsed_s": stats.elapsed, "stopped_by_signal": stop.is_set()}
        Path(json_path).write_text(json.dumps(report | {"metrics": metrics.to_dict()}, indent=2), encoding="utf-8")


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
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
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
    run creates; live trades to the production ones."""
    import asyncio
    import json

    from rich.console import Group

    from .app import Capture, CaptureOptions
    from .connectors.view import RateMeter, feeds_table
    from .errors import DataLossError
    from .sender.view import books_line, worker_table

    if compare and not hybrid_mode:
        raise click.UsageError("--compare needs --hybrid-mode")
    if rollout_config and not hybrid_mode:
        raise click.UsageError("--rollout-config needs --hybrid-mode")
    if replay_url:
        source = "replay"
    if source == "live":
        if demo_prefix is not None:
            raise click.UsageError("--demo-prefix is for --source replay|synthetic")
        settings = _connector_settings(ctx, names, None)
    else:  # generated data: its own tables, created here (production ones only by db migrate / --migrate)
        settings, separate = _demo_settings(ctx, demo_prefix, connectors={"enabled": names})
        apply_migrations = apply_migrations or separate
    print_paths(settings)
    options = CaptureOptions(
        source=source, replay_url=replay_url, replay_symbols=replay_symbols, rate=rate, burst_rate=burst_rate,
        workers=workers or None, hybrid=hybrid_mode, compare=compare, rollout_config=rollout_config,
        migrate=apply_migrations,
    )  # fmt: skip
    meter = RateMeter()
    # Until the feeds' event loop takes the signals over, SIGINT/SIGTERM (during start-up) stop it cleanly.
    stop_requested = threading.Event()

    def view(c: Capture, head: str) -> Any:
        parts: list[Any] = []
        if c.pipeline is not None:
            meter.sample(c.pipeline)
            parts.append(feeds_table(c.pipeline, head, meter.rates))
        elif c.synthetic is not None:
            run = c.synthetic
            parts.append(Text(f"{head}: {run.trades:,} trades, {run.rate_now:,.0f} trades/s now"))
        assert c.sender is not None
        parts.append(books_line(c.sender.metrics()))
        parts += [Text(f"ALARM {alarm}", style="bold red") for alarm in c.alarms()]
        if c.runtime is not None:
            from .hybrid.view import hybrid_table

            parts.append(hybrid_table(c.runtime))
        return Group(*parts)

    def line(c: Capture) -> str:
        elapsed = time.monotonic() - c.started
        received = c.received
        rate = (received - last[1]) / max(elapsed - last[0], 1e-9)  # since the previous line
        last[0], last[1] = elapsed, received
        assert c.sender is not None
        feeds = ""
        if c.pipeline is not None:
            up = sum(f.status == "connected" for f in c.pipeline.feeds)
            feeds = f"feeds {up}/{len(c.pipeline.feeds)} connected"
        alarms = "; ".join(f"ALARM {a}" for a in c.alarms())
        extra = "; ".join(x for x in (feeds, alarms) if x)
        return _status_line(f"{source} {elapsed:,.0f}s", rate, received, c.sender.metrics(), extra)

    last: list[float] = [0.0, 0.0]  # elapsed and received at the previous status line
    with _on_signals(stop_requested), Capture(settings, options, stop_requested=stop_requested) as capture:
        with _Display(settings.log.status_interval) as display:

            def refresh(c: Capture) -> None:
                display.update(lambda: view(c, f"{source} — {time.monotonic() - c.started:,.0f}s"), lambda: line(c))

            try:
                asyncio.run(capture.run(seconds, on_tick=refresh))
            finally:
                display.say("draining: every parsed trade to QuestDB or the spool… (signal again to stop now)")
                abort = threading.Event()
                with _on_signals(abort):
                    outcome = capture.stop(abort=abort)
        console.print(view(capture, f"{source} (final)"))
        console.print(worker_table(outcome.metrics))
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
        if capture.runtime is not None:
            report["hybrid"] = _hybrid_report(capture.runtime)
        if capture.synthetic is not None:
            report["synthetic"] = {"trades": capture.synthetic.trades, "elapsed_s": capture.synthetic.elapsed}
        if capture.pipeline is not None:
            report["feeds"] = {
                f.name: {
                    "status": f.status,
                    "instruments": len(f.instruments),
                    "connections": len(f.connections),
                    "messages": f.stats.messages,
                    "trades": f.stats.trades,
                    "unsent": f.stats.unsent,
                    "dead_letters": f.stats.dead_letters,
                    "venue_errors": f.stats.venue_errors,
                    "unknown_events": f.stats.unknown_events,
                    "gaps": f.stats.gaps,
                    "backfilled": f.stats.backfilled,
                    "lag_ms": f.stats.lag_ms.summary(),
                }
                for f in capture.pipeline.feeds
            }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    if outcome.lost:
        cause = f" — intake stopped because {outcome.failure}" if outcome.failure else ""
        raise DataLossError(
            f"{outcome.lost:,} trade(s) were received but not stored: {outcome.describe()}{cause}", outcome.lost
        )
    if outcome.failure:
        raise PumpwatchError(f"intake stopped early: {outcome.failure}")


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
    from .cli_support import err_console

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

    from .connectors.pipeline import MemoryEvents, MemorySink
    from .connectors.registry import select
    from .connectors.replay.session import SessionWriter
    from .connectors.run import run_feeds
    from .connectors.view import RateMeter, feeds_table

    settings = _connector_settings(ctx, names, base_url)
    chosen = select(settings.connectors.enabled)
    writer = SessionWriter(out_dir)
    meter = RateMeter()
    with _Display(settings.log.status_interval) as display:

        def refresh(pipeline: Any, elapsed: float) -> None:
            meter.sample(pipeline)
            frames = sum(f.stats.messages for f in pipeline.feeds)
            display.update(
                lambda: feeds_table(pipeline, f"recording to {out_dir} — {elapsed:,.0f}/{seconds:,.0f}s", meter.rates),
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
        finally:
            writer.close()
    console.print(feeds_table(pipeline, f"recorded to {out_dir}"))


# --------------------------------------------------------------------------- bench
def _bench_workers(workers: int, settings: Settings) -> int:
    """``--workers``, else ``sender.workers``, else one per core (0 means "choose")."""
    return workers or settings.sender.workers or os.cpu_count() or 1


def _write_report(json_path: str, body: str) -> None:
    """A benchmark's JSON result, where ``--json`` says (its directory created)."""
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(body, encoding="utf-8")
    console.print(f"wrote {json_path}")


@main.group()
def bench() -> None:
    """Benchmarks (print a table, write JSON)."""


@bench.command("insert")
@click.option("--records", type=COUNT, default=1_000_000, show_default=True)
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option("--transport", type=click.Choice(["http", "ws", "tcp"]), default="http", show_default=True)
@click.option(
    "--batch-rows", type=COUNT, default=100_000, show_default=True, help="Rows per flush for every contender."
)
@click.option("--repeat", type=COUNT, default=3, show_default=True, help="Rotating rounds; the median is reported.")
@click.option("--per-row/--no-per-row", default=True, show_default=True, help="Include the per-row TCP baseline.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/insert.json")
@click.pass_context
def bench_insert(
    ctx: click.Context,
    records: int,
    workers: int,
    transport: str,
    batch_rows: int,
    repeat: int,
    per_row: bool,
    json_path: str,
) -> None:
    """The sharded sender vs the raw client (same transport) and a per-row f-string TCP baseline,
    each timed until count() shows every row."""
    from .bench.insert import print_report, run_insert_benchmark

    settings = _settings(ctx)
    result = run_insert_benchmark(
        settings,
        records=records,
        batch_rows=batch_rows,
        repeat=repeat,
        workers=_bench_workers(workers, settings),
        transport=transport,
        per_row=per_row,
        console=console,
    )
    print_report(result, console)
    _write_report(json_path, result.to_json())


@bench.command("stream")
@click.option("--rate", type=POSITIVE_RATE, default=5000.0, show_default=True, help="Trades/s, steady.")
@click.option("--seconds", type=SECONDS, default=20.0, show_default=True)
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option(
    "--flush-interval", type=click.FloatRange(0, 3600, min_open=True), help="Override ingest.flush_interval (seconds)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/stream.json")
@click.pass_context
def bench_stream(
    ctx: click.Context, rate: float, seconds: float, workers: int, flush_interval: float | None, json_path: str
) -> None:
    """Delay from trade creation to SQL visibility (p50/p99) and peak RSS of the sender at a steady rate."""
    from .bench.stream import run_stream_benchmark, with_flush_interval

    settings = with_flush_interval(_settings(ctx), flush_interval)
    result = run_stream_benchmark(
        settings,
        rate=rate,
        seconds=seconds,
        workers=_bench_workers(workers, settings),
        console=console,
    )
    _write_report(json_path, result.to_json())


@bench.command("lag")
@click.option("--rate", type=POSITIVE_RATE, default=1000.0, show_default=True, help="Replay trades/s (no bursts).")
@click.option("--seconds", type=SECONDS, default=60.0, show_default=True, help="How long the replay server sends.")
@click.option("--connectors", "names", help="Comma list (default: all 14).")
@click.option("--symbols", type=COUNT, default=10, show_default=True, help="Instruments per connector.")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/lag.json")
@click.pass_context
def bench_lag(
    ctx: click.Context, rate: float, seconds: float, names: str | None, symbols: int, workers: int, json_path: str
) -> None:
    """Where the delay goes: exchange timestamp → handed to the sender → taken by a worker →
    confirmed, p50/p99 per stage through the replay server's sockets; exit 1 if p99 misses
    flush_interval + min_linger + 250 ms."""
    from .bench.lag import bench_lag as run_lag
    from .connectors.registry import select

    settings = _settings(ctx)
    result = run_lag(
        settings,
        select(names or "all"),
        rate=rate,
        seconds=seconds,
        workers=_bench_workers(workers, settings),
        symbols=symbols,
        console=console,
    )
    _write_report(json_path, result.to_json())
    if not result.met:
        sys.exit(1)


@bench.command("connectors")
@click.option(
    "--trades",
    type=COUNT,
    default=1_400_000,
    show_default=True,
    help="Trades in the frame mix (split over connectors).",
)
@click.option("--connectors", "names", help="Comma list (default: all 14).")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option(
    "--repeat", type=COUNT, default=3, show_default=True, help="Pipeline rounds per contender (median reported)."
)
@click.option("--pipeline/--no-pipeline", default=True, show_default=True, help="Also run the QuestDB pipeline rounds.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/connectors.json")
@click.pass_context
def bench_connectors(
    ctx: click.Context, trades: int, names: str | None, workers: int, repeat: int, pipeline: bool, json_path: str
) -> None:
    """Parser trades/s per venue on one core, and frames → parsers → router → sender → QuestDB vs a
    single-process baseline (same frames, same parsers, ``Sender.dataframe``)."""
    from .bench.connectors import run_connector_benchmark
    from .connectors.registry import select

    settings = _settings(ctx)
    result = run_connector_benchmark(
        settings,
        select(names or "all"),
        trades=trades,
        workers=_bench_workers(workers, settings),
        repeat=repeat,
        pipeline=pipeline,
        console=console,
    )
    _write_report(json_path, result.to_json())


@bench.command("e2e")
@click.option(
    "--trades", type=COUNT, default=1_000_000, show_default=True, help="Trades the replay server generates in all."
)
@click.option("--rate", type=POSITIVE_RATE, default=150_000.0, show_default=True, help="Replay trades/s (no bursts).")
@click.option("--connectors", "names", help="Comma list (default: all 14).")
@click.option("--symbols", type=COUNT, default=10, show_default=True, help="Instruments per connector.")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option(
    "--playback/--generate",
    default=True,
    show_default=True,
    help="playback: the server plays a session of pre-encoded frames paced at --rate (its cost is the socket "
    "writes); generate: it generates and encodes trades while the clock runs.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/connectors_e2e.json")
@click.pass_context
def bench_e2e(
    ctx: click.Context, trades: int, rate: float, names: str | None, symbols: int, workers: int, playback: bool,
    json_path: str,
) -> None:  # fmt: skip
    """Replay server sockets → connectors → sender → QuestDB: trades/s until ``count()`` shows them all."""
    from .bench.connectors import bench_e2e as run_e2e
    from .connectors.registry import select

    settings = _settings(ctx)
    result = run_e2e(
        settings,
        select(names or "all"),
        trades=trades,
        rate=rate,
        workers=_bench_workers(workers, settings),
        symbols=symbols,
        console=console,
        playback=playback,
    )
    _write_report(json_path, result.to_json())


def _seconds(value: str) -> float:
    """``40s``, ``2m``, ``500ms`` or a plain number of seconds."""
    from .hybrid.rollout import parse_duration

    return parse_duration(value, "--timerange")


@bench.command("query")
@click.option("--timerange", default="40s", show_default=True, help="Window length (±half around the trigger).")
@click.option("--symbols", type=COUNT, default=10, show_default=True, help="Base assets queried (random, seeded).")
@click.option("--rounds", type=COUNT, default=50, show_default=True, help="Windows per symbol, at random triggers.")
@click.option(
    "--trades", type=COUNT, default=10_000_000, show_default=True, help="Trades loaded (12 venues, last hour)."
)
@click.option("--universe", type=COUNT, default=300, show_default=True, help="Distinct symbols in the loaded trades.")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/query.json")
@click.pass_context
def bench_query(
    ctx: click.Context, timerange: str, symbols: int, rounds: int, trades: int, universe: int, workers: int,
    json_path: str,
) -> None:  # fmt: skip
    """Listing-window query latency, QuestDB against the ring buffer, over the same loaded trades."""
    from .bench.query import query_table, run_query_bench

    settings = _settings(ctx)
    result = run_query_bench(
        settings,
        trades=trades,
        universe=universe,
        timerange_s=_seconds(timerange),
        symbols=symbols,
        rounds=rounds,
        workers=workers or None,
    )
    console.print(query_table(result))
    console.print(
        f"load {result.load_s:.1f}s (visible {result.visible_s:.1f}s); buffer {result.buffer_bytes / 2**20:,.0f} MiB "
        f"(process RSS +{result.buffer_rss_mib:,.0f} MiB); rows per window median "
        f"{result.rows_per_window['median']:,.0f} (max {result.rows_per_window['max']:,.0f}); "
        f"disagreements between the sources: {result.disagreements}"
    )
    _write_report(json_path, result.to_json())
    if result.disagreements:
        sys.exit(1)


@bench.command("ring")
@click.option(
    "--trades", type=COUNT, default=18_000_000, show_default=True, help="Trades to fill (1 h at 5,000/s = 18 M)."
)
@click.option("--venues", type=COUNT, default=14, show_default=True)
@click.option("--symbols", type=COUNT, default=300, show_default=True, help="Base assets.")
@click.option(
    "--queries", type=COUNT, default=1000, show_default=True, help="±20 s windows timed per kind (asset, pair)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/ring.json")
def bench_ring(trades: int, venues: int, symbols: int, queries: int, json_path: str) -> None:
    """The ring buffer alone: RSS for an hour of trades and ±20 s window latency (no QuestDB)."""
    import json

    from .bench.ring import run_ring_bench

    r = run_ring_bench(trades, venues, symbols, queries, seed=7)
    table = Table(title=f"ring buffer: {r['trades']:,} trades, {r['venues']} venues, {symbols} assets")
    for col in ("RSS MiB", "arrays MiB", "bytes/trade", "fill trades/s", "query", "p50 µs", "p99 µs", "max µs"):
        table.add_column(col, justify="right")
    for kind in ("query_base", "query_pair"):
        q = r[kind]
        table.add_row(
            f"{r['rss_bytes'] / 2**20:,.0f}", f"{r['allocated_bytes'] / 2**20:,.0f}",
            f"{r['allocated_bytes_per_row']:.1f}", f"{r['fill_rate_per_s']:,.0f}", kind.removeprefix("query_"),
            f"{q['p50_us']:,.0f}", f"{q['p99_us']:,.0f}", f"{q['max_us']:,.0f}",
        )  # fmt: skip
    console.print(table)
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(r, indent=2), encoding="utf-8")
    console.print(f"wrote {json_path}")


@bench.command("hybrid")
@click.option(
    "--seconds", type=SECONDS, default=300.0, show_default=True, help="How long to run (the seed's test: 5 minutes)."
)
@click.option("--connectors", "names", help="Comma list (default: all 14).")
@click.option(
    "--symbols", type=COUNT, default=10, show_default=True, help="Instruments per connector on the replay server."
)
@click.option("--rate", type=POSITIVE_RATE, default=1000.0, show_default=True, help="Base trades/s.")
@click.option("--burst-rate", type=RATE, default=5000.0, show_default=True, help="Trades/s during bursts.")
@click.option("--burst-every", type=SECONDS, default=60.0, show_default=True, help="Seconds between bursts.")
@click.option("--burst-seconds", type=NON_NEGATIVE, default=10.0, show_default=True, help="Burst length.")
@click.option(
    "--listing-every", type=SECONDS, default=30.0, show_default=True, help="Seconds between injected listings."
)
@click.option(
    "--compare-every", type=SECONDS, default=5.0, show_default=True, help="Seconds between random window compares."
)
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per core)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/hybrid.json")
@click.pass_context
def bench_hybrid(
    ctx: click.Context, seconds: float, names: str | None, symbols: int, rate: float, burst_rate: float,
    burst_every: float, burst_seconds: float, listing_every: float, compare_every: float, workers: int,
    json_path: str,
) -> None:  # fmt: skip
    """Compare mode under the seed's load with listings injected: zero differences, zero loss."""
    from .bench.hybrid import run_hybrid_bench
    from .connectors.registry import select

    result = run_hybrid_bench(
        _settings(ctx),
        select(names or "all"),
        seconds=seconds,
        symbols=symbols,
        rate=rate,
        burst_rate=burst_rate,
        burst_every=burst_every,
        burst_seconds=burst_seconds,
        listing_every=listing_every,
        compare_every=compare_every,
        workers=workers or None,
        console=console,
    )
    _write_report(json_path, result.to_json())
    if not result.passed:
        sys.exit(1)


@main.group("compare")
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

    from .hybrid.rollout import parse_duration
    from .models import now_ns
    from .store.compare import agreement
    from .store.pg import connect

    settings = _settings(ctx)
    since_ns = now_ns() - int(parse_duration(since, "--since") * 1e9)
    try:
        with connect(settings) as conn:
            buckets = agreement(conn, settings, since_ns=since_ns, bucket=bucket)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bucket") from None
    if as_json:
        click.echo(json.dumps([b.__dict__ | {"agreement": b.agreement} for b in buckets], indent=2))
        return

    def day_time(ns: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ns // 1_000_000_000)) + " UTC"

    table = Table(title=f"shadow compare since {day_time(since_ns)} (per {bucket})")
    for col in ("bucket", "venue windows", "with differences", "agreement", "rows buffer", "rows QuestDB"):
        table.add_column(col, justify="left" if col == "bucket" else "right")
    for col in ("missing", "extra", "mismatched"):
        table.add_column(col, justify="right")
    for b in buckets:
        colour = "green" if b.with_differences == 0 else "red"
        table.add_row(
            day_time(b.ts_ns), f"{b.compared:,}", f"[{colour}]{b.with_differences:,}[/]", f"{b.agreement:.2%}",
            f"{b.rows_a:,}", f"{b.rows_b:,}", f"{b.missing:,}", f"{b.extra:,}", f"{b.mismatched:,}",
        )  # fmt: skip
    console.print(table)
    if not buckets:
        console.print("no compares recorded in this period (run with --hybrid-mode --compare)")


def _register_groups() -> None:
    from .connectors.replay.cli import replay_server
    from .hybrid.rollout_cli import rollout
    from .store.query_cli import query

    main.add_command(replay_server)
    main.add_command(rollout)
    main.add_command(query)


_register_groups()

from .cli_backup import backup  # noqa: E402 - a group of its own module, registered like the others

main.add_command(backup)

if __name__ == "__main__":  # pragma: no cover
    main()
