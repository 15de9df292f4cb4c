"""``pumpwatch``: the command line (click + rich).

Every command loads settings once (file, env, flags) so a bad key fails before any work starts.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .config import Settings, load_settings
from .errors import PumpwatchError
from .resources import questdb_pin

# Pipes and CI logs get a width that fits the tables instead of rich's 80-column fallback.
console = Console() if sys.stdout.isatty() else Console(width=120)
err_console = Console(stderr=True, soft_wrap=True)


def _settings(ctx: click.Context, **sections: dict[str, Any]) -> Settings:
    """Settings from the global --config plus this command's flags (``None`` flags are ignored)."""
    return load_settings(ctx.obj.get("config"), overrides=sections)


class _Group(click.Group):
    """Turns our typed errors into one red line and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PumpwatchError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(1)
        except psycopg.OperationalError as exc:
            err_console.print(
                f"[bold red]error:[/] cannot reach QuestDB over PGWire: {exc}".rstrip()
                + "\n(start it with `pumpwatch questdb start`)",
                highlight=False,
            )
            sys.exit(1)


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.version_option(__version__, prog_name="pumpwatch")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Capture every public crypto trade into QuestDB, losslessly."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path


# --------------------------------------------------------------------------- questdb
def _server_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option("--data-dir", type=click.Path(file_okay=False), help="Server root (db, conf, log, pid)."),
            click.option("--http-port", type=int, help="HTTP / ILP-over-HTTP port (9000)."),
            click.option("--pg-port", type=int, help="PGWire port (8812)."),
            click.option("--ilp-tcp-port", type=int, help="ILP/TCP port (9009)."),
            click.option("--health-port", type=int, help="Health endpoint port (9003)."),
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
@click.pass_context
def questdb_status(ctx: click.Context, /, **flags: Any) -> None:
    """Show whether the server runs and answers; exit 3 when it does not."""
    st = _process(ctx, **flags).status()
    state = "running" if st.running else "stopped"
    health = "healthy" if st.healthy else "not answering"
    console.print(f"QuestDB {questdb_pin().version}: {state} (pid {st.pid}), {health}; data {st.data_dir}")
    if not (st.running and st.healthy):
        sys.exit(3)


# --------------------------------------------------------------------------- db
def _schema_options(f: Any) -> Any:
    f = click.option("--schema-dir", type=click.Path(file_okay=False), help="Directory of NNN_*.sql files.")(f)
    f = click.option("--table-prefix", help="Prefix for every table name.")(f)
    f = click.option("--ttl-days", type=int, help="TTL of the data tables (days).")(f)
    return f


@main.group()
def db() -> None:
    """Schema migrations."""


@db.command("migrate")
@_schema_options
@click.pass_context
def db_migrate(ctx: click.Context, /, **flags: Any) -> None:
    """Apply pending migrations (idempotent; refuses edited applied ones)."""
    from .store.migrations import migrate
    from .store.pg import connect

    settings = _settings(ctx, schema=flags)
    with connect(settings) as conn:
        report = migrate(conn, settings, on_apply=lambda m: console.print(f"applying {m.path.name} ..."))
    for table in report.ttl_changed:
        console.print(f"TTL of {table} set to {settings.schema.ttl_days} days")
    console.print(f"[green]schema up to date[/]: {len(report.applied)} applied, {len(report.already)} already applied")


@db.command("status")
@_schema_options
@click.pass_context
def db_status(ctx: click.Context, /, **flags: Any) -> None:
    """List migrations and whether each is applied."""
    from .store.migrations import applied_versions, discover, schema_dir
    from .store.pg import connect

    settings = _settings(ctx, schema=flags)
    with connect(settings) as conn:
        done = applied_versions(conn, settings)
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


# --------------------------------------------------------------------------- demo
@main.command("demo")
@click.option("--trades", default=100_000, show_default=True, help="Synthetic trades to write.")
@click.option("--symbols", default=200, show_default=True, help="Distinct symbols.")
@click.option("--batch-rows", type=int, help="Rows per flush (default: ingest.batch_rows).")
@click.pass_context
def demo(ctx: click.Context, trades: int, symbols: int, batch_rows: int | None) -> None:
    """Write a synthetic burst across the 14 feeds and show what landed, read back with SQL."""
    from .connectors import CONNECTORS, SyntheticMarket
    from .ingest import TradeWriter
    from .store import queries
    from .store.pg import connect

    settings = _settings(ctx, ingest={"batch_rows": batch_rows})
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
@click.option("--duration", default=60.0, show_default=True, help="Seconds to generate for.")
@click.option("--base-rate", default=1000.0, show_default=True, help="Trades/s between pumps.")
@click.option("--burst-rate", default=5000.0, show_default=True, help="Trades/s during a pump.")
@click.option("--burst-every", default=60.0, show_default=True, help="Seconds between pump starts.")
@click.option("--burst-seconds", default=10.0, show_default=True, help="Length of a pump.")
@click.option("--symbols", default=300, show_default=True)
@click.option("--workers", default=0, show_default=True, help="Sender worker processes (0 = one per core).")
@click.option("--transport", type=click.Choice(["http", "ws"]), default="http", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the final metrics here.")
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
) -> None:
    """Synthetic load (the seed's pattern: a base rate with pumps over 12 feeds) through the
    sharded sender into QuestDB, with a live view. SIGINT/SIGTERM stop intake, drain and exit 0."""
    import json
    import signal
    import threading

    from rich.live import Live

    from .load import LoadPattern, run_load
    from .sender import ShardedSender
    from .sender.view import books_line, exchange_table, live_view, worker_table

    settings = _settings(ctx)
    pattern = LoadPattern(base_rate, burst_rate, burst_every, burst_seconds)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sender = ShardedSender(settings, workers=workers or None, transport=transport).start()
    last = 0.0
    with Live(console=console, refresh_per_second=4, transient=True) as live:

        def refresh(stats: Any) -> None:
            nonlocal last
            if stats.elapsed - last >= 0.25:
                last = stats.elapsed
                live.update(
                    live_view(
                        sender.metrics(),
                        elapsed=stats.elapsed,
                        duration=duration,
                        rate=stats.rate_now,
                        submitted=stats.submitted,
                    )
                )

        try:
            stats = run_load(sender, pattern, duration=duration, symbols=symbols, stop=stop, on_tick=refresh)
        finally:
            live.update(Text("draining: flushing every queued row to QuestDB or the spool…"))
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


@main.command("run")
@click.option(
    "--source",
    type=click.Choice(["live", "replay"]),
    default="live",
    show_default=True,
    help="live: the venues' real endpoints; replay: a local replay server (started unless --replay-url).",
)
@click.option("--replay-url", help="A running replay server, e.g. http://127.0.0.1:8765 (implies --source replay).")
@click.option("--connectors", "names", help="Comma list of connectors (default: connectors.enabled).")
@click.option("--replay-symbols", default=10, show_default=True, help="Symbols per venue on a started replay server.")
@click.option("--rate", default=1000.0, show_default=True, help="Replay base trades/s (started server only).")
@click.option("--burst-rate", default=5000.0, show_default=True, help="Replay burst trades/s (started server only).")
@click.option("--seconds", type=float, help="Stop after this long (default: run until Ctrl-C / SIGTERM).")
@click.option("--workers", default=0, show_default=True, help="Sender worker processes (0 = one per core).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write final per-connector stats here.")
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
    json_path: str | None,
) -> None:  # fmt: skip
    """Capture trades: connectors → sharded sender → QuestDB, with health and gap rows and a live view.

    SIGINT/SIGTERM close the sockets, hand every parsed trade to the sender and drain it; exit 0."""
    import asyncio
    import contextlib
    import json

    from rich.console import Group
    from rich.live import Live

    from .connectors.pipeline import SenderSink, WriterEvents
    from .connectors.registry import select
    from .connectors.replay_process import ReplayProcess
    from .connectors.run import run_feeds
    from .connectors.view import RateMeter, feeds_table
    from .sender import ShardedSender
    from .sender.view import books_line, worker_table
    from .store.migrations import migrate
    from .store.pg import connect

    replay: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if source == "replay" and not replay_url:
        replay = ReplayProcess(
            ["--symbols", str(replay_symbols), "--rate", str(rate), "--burst-rate", str(burst_rate)]
            + (["--connectors", names] if names else [])
        )
    with replay as server:
        base_url = replay_url or (server.base_url if server is not None else None)
        settings = _connector_settings(ctx, names, base_url)
        chosen = select(settings.connectors.enabled)
        with connect(settings) as conn:
            migrate(conn, settings)
        sender = ShardedSender(settings, workers=workers or None).start()
        events = WriterEvents(settings)
        meter = RateMeter()
        with Live(console=console, refresh_per_second=2, transient=True) as live:

            def refresh(pipeline: Any, elapsed: float) -> None:
                meter.sample(pipeline)
                metrics = sender.metrics()
                live.update(
                    Group(
                        feeds_table(pipeline, f"connectors — {elapsed:,.0f}s ({source})", meter.rates),
                        books_line(metrics),
                    )
                )

            try:
                pipeline = asyncio.run(
                    run_feeds(
                        settings, chosen, sink=SenderSink(sender), events=events, duration=seconds, on_tick=refresh
                    )
                )
            finally:
                live.update(Text("draining: every parsed trade to QuestDB or the spool…"))
                metrics = sender.close()
                events.close()
    console.print(feeds_table(pipeline, "connectors (final)"))
    console.print(worker_table(metrics))
    console.print(books_line(metrics))
    if json_path:
        report = {
            f.name: {
                "status": f.status,
                "instruments": len(f.instruments),
                "connections": len(f.connections),
                "messages": f.stats.messages,
                "trades": f.stats.trades,
                "dead_letters": f.stats.dead_letters,
                "gaps": f.stats.gaps,
                "backfilled": f.stats.backfilled,
            }
            for f in pipeline.feeds
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({"feeds": report, "sender": metrics.to_dict()}, indent=2))


@main.command("record")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Session directory to write.")
@click.option("--connectors", "names", help="Comma list of connectors (default: connectors.enabled).")
@click.option("--seconds", type=float, default=60.0, show_default=True, help="How long to record.")
@click.option("--base-url", help="Record from this server instead of the venues (e.g. a replay server).")
@click.pass_context
def record(ctx: click.Context, out_dir: str, names: str | None, seconds: float, base_url: str | None) -> None:
    """Record raw frames from the venues (one JSONL per connector) for the replay server's --session."""
    import asyncio

    from rich.live import Live

    from .connectors.pipeline import MemoryEvents, MemorySink
    from .connectors.registry import select
    from .connectors.replay.session import SessionWriter
    from .connectors.run import run_feeds
    from .connectors.view import RateMeter, feeds_table

    settings = _connector_settings(ctx, names, base_url)
    chosen = select(settings.connectors.enabled)
    writer = SessionWriter(out_dir)
    meter = RateMeter()
    with Live(console=console, refresh_per_second=2, transient=True) as live:

        def refresh(pipeline: Any, elapsed: float) -> None:
            meter.sample(pipeline)
            live.update(feeds_table(pipeline, f"recording to {out_dir} — {elapsed:,.0f}/{seconds:,.0f}s", meter.rates))

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
@main.group()
def bench() -> None:
    """Benchmarks (print a table, write JSON)."""


@bench.command("insert")
@click.option("--records", default=1_000_000, show_default=True)
@click.option("--workers", default=0, show_default=True, help="Sender worker processes (0 = one per core).")
@click.option("--transport", type=click.Choice(["http", "ws", "tcp"]), default="http", show_default=True)
@click.option("--batch-rows", default=100_000, show_default=True, help="Rows per flush for every contender.")
@click.option("--repeat", default=3, show_default=True, help="Rotating rounds; the median is reported.")
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
        workers=workers or settings.sender.workers or os.cpu_count() or 1,
        transport=transport,
        per_row=per_row,
        console=console,
    )
    print_report(result, console)
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(result.to_json(), encoding="utf-8")
    console.print(f"wrote {json_path}")


@bench.command("stream")
@click.option("--rate", default=5000.0, show_default=True, help="Trades/s, steady.")
@click.option("--seconds", default=20.0, show_default=True)
@click.option("--workers", default=0, show_default=True, help="Sender worker processes (0 = one per core).")
@click.option("--flush-interval", type=float, help="Override ingest.flush_interval (seconds).")
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
        workers=workers or settings.sender.workers or os.cpu_count() or 1,
        console=console,
    )
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(result.to_json(), encoding="utf-8")
    console.print(f"wrote {json_path}")


@bench.command("connectors")
@click.option("--trades", default=1_400_000, show_default=True, help="Trades in the frame mix (split over connectors).")
@click.option("--connectors", "names", help="Comma list (default: all 14).")
@click.option("--workers", default=0, show_default=True, help="Sender worker processes (0 = one per core).")
@click.option("--repeat", default=3, show_default=True, help="Pipeline rounds per contender (median reported).")
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
        workers=workers or settings.sender.workers or os.cpu_count() or 1,
        repeat=repeat,
        pipeline=pipeline,
        console=console,
    )
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(result.to_json(), encoding="utf-8")
    console.print(f"wrote {json_path}")


@bench.command("e2e")
@click.option("--trades", default=1_000_000, show_default=True, help="Trades the replay server generates in all.")
@click.option("--rate", default=150_000.0, show_default=True, help="Replay trades/s (no bursts).")
@click.option("--connectors", "names", help="Comma list (default: all 14).")
@click.option("--symbols", default=10, show_default=True, help="Instruments per connector.")
@click.option("--workers", default=0, show_default=True, help="Sender worker processes (0 = one per core).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/connectors_e2e.json")
@click.pass_context
def bench_e2e(
    ctx: click.Context, trades: int, rate: float, names: str | None, symbols: int, workers: int, json_path: str
) -> None:
    """Replay server sockets → connectors → sender → QuestDB: trades/s until ``count()`` shows them all."""
    from .bench.connectors import bench_e2e as run_e2e
    from .connectors.registry import select

    settings = _settings(ctx)
    result = run_e2e(
        settings,
        select(names or "all"),
        trades=trades,
        rate=rate,
        workers=workers or settings.sender.workers or os.cpu_count() or 1,
        symbols=symbols,
        console=console,
    )
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(result.to_json(), encoding="utf-8")
    console.print(f"wrote {json_path}")


def _register_replay() -> None:
    from .connectors.replay.cli import replay_server

    main.add_command(replay_server)


_register_replay()

if __name__ == "__main__":  # pragma: no cover
    main()
