"""``pumpwatch bench …``: the benchmarks (a table on the terminal, JSON where ``--json`` says)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from ..config import Settings
from ..sender.router import default_workers
from .support import COUNT, NON_NEGATIVE, POSITIVE_RATE, RATE, SECONDS, WORKERS, ErrorGroup, cli_settings, console


def _bench_workers(workers: int, settings: Settings) -> int:
    """``--workers``, else ``sender.workers``, else one per two cores (0 means "choose")."""
    return workers or settings.sender.workers or default_workers()


def _write_report(json_path: str, body: str) -> None:
    """A benchmark's JSON result, where ``--json`` says (its directory created)."""
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(body, encoding="utf-8")
    console.print(f"wrote {json_path}")


@click.group(cls=ErrorGroup)
def bench() -> None:
    """Benchmarks (print a table, write JSON)."""


@bench.command("insert")
@click.option("--records", type=COUNT, default=1_000_000, show_default=True)
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
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
    from ..bench.insert import print_report, run_insert_benchmark

    settings = cli_settings(ctx)
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
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
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
    from ..bench.stream import run_stream_benchmark, with_flush_interval

    settings = with_flush_interval(cli_settings(ctx), flush_interval)
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
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/lag.json")
@click.pass_context
def bench_lag(
    ctx: click.Context, rate: float, seconds: float, names: str | None, symbols: int, workers: int, json_path: str
) -> None:
    """Where the delay goes: exchange timestamp → handed to the sender → taken by a worker →
    confirmed, p50/p99 per stage through the replay server's sockets; exit 1 if p99 misses
    flush_interval + min_linger + 250 ms."""
    from ..bench.lag import bench_lag as run_lag
    from ..connectors.registry import select

    settings = cli_settings(ctx)
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
    help="Trades in the parser benchmark's frame mix (split over connectors).",
)
@click.option("--connectors", "names", help="Parser benchmark: comma list (default: all 14).")
@click.option(
    "--contest-trades", type=COUNT, default=300_000, show_default=True, help="Binance @trade frames in the contest."
)
@click.option("--contest-symbols", type=COUNT, default=200, show_default=True, help="Symbols in the contest's frames.")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option("--repeat", type=COUNT, default=3, show_default=True, help="Contest rounds per contender (median).")
@click.option(
    "--pipeline/--no-pipeline", default=True, show_default=True, help="Also run the QuestDB contest and end to end."
)
@click.option("--e2e/--no-e2e", default=True, show_default=True, help="The product through the replay sockets too.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/connectors.json")
@click.pass_context
def bench_connectors(
    ctx: click.Context,
    trades: int,
    names: str | None,
    contest_trades: int,
    contest_symbols: int,
    workers: int,
    repeat: int,
    pipeline: bool,
    e2e: bool,
    json_path: str,
) -> None:
    """Parser trades/s per venue on one core; then the pipeline contest on Binance @trade frames: the
    product (parser → sender) against the simple single-process handler (msgspec → numpy →
    ``Sender.dataframe``, 50k-row requests; with and without DEDUP) and the raw client on pre-built
    columns, every contender timed until ``count()`` shows all rows, with a per-stage CPU table; and the
    product end to end through the replay server's sockets, as a ratio to the same simple baseline."""
    from ..bench.connectors import run_connector_benchmark
    from ..connectors.registry import select

    settings = cli_settings(ctx)
    result = run_connector_benchmark(
        settings,
        select(names or "all"),
        trades=trades,
        workers=_bench_workers(workers, settings),
        repeat=repeat,
        pipeline=pipeline,
        console=console,
        contest_trades=contest_trades,
        contest_symbols=contest_symbols,
        e2e=e2e,
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
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
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
    from ..bench.connectors import bench_e2e as run_e2e
    from ..connectors.registry import select

    settings = cli_settings(ctx)
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
    from ..timefmt import duration_s

    return duration_s(value, "--timerange")


@bench.command("query")
@click.option("--timerange", default="40s", show_default=True, help="Window length (±half around the trigger).")
@click.option("--symbols", type=COUNT, default=10, show_default=True, help="Base assets queried (random, seeded).")
@click.option("--rounds", type=COUNT, default=50, show_default=True, help="Windows per symbol, at random triggers.")
@click.option(
    "--trades", type=COUNT, default=10_000_000, show_default=True, help="Trades loaded (12 venues, last hour)."
)
@click.option("--universe", type=COUNT, default=300, show_default=True, help="Distinct symbols in the loaded trades.")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/query.json")
@click.pass_context
def bench_query(
    ctx: click.Context, timerange: str, symbols: int, rounds: int, trades: int, universe: int, workers: int,
    json_path: str,
) -> None:  # fmt: skip
    """Listing-window query latency, QuestDB against the ring buffer, over the same loaded trades."""
    from ..bench.query import query_table, run_query_bench

    settings = cli_settings(ctx)
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

    from ..bench.ring import run_ring_bench

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
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/hybrid.json")
@click.pass_context
def bench_hybrid(
    ctx: click.Context, seconds: float, names: str | None, symbols: int, rate: float, burst_rate: float,
    burst_every: float, burst_seconds: float, listing_every: float, compare_every: float, workers: int,
    json_path: str,
) -> None:  # fmt: skip
    """Compare mode under the seed's load with listings injected: zero differences, zero loss."""
    from ..bench.hybrid import run_hybrid_bench
    from ..connectors.registry import select

    result = run_hybrid_bench(
        cli_settings(ctx),
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


@bench.command("api")
@click.option("--rate", type=POSITIVE_RATE, default=5000.0, show_default=True, help="Replay trades/s (steady).")
@click.option("--phase-seconds", type=SECONDS, default=10.0, show_default=True, help="Length of each phase.")
@click.option("--rounds", type=COUNT, default=3, show_default=True, help="Quiet/loaded pairs (order alternates).")
@click.option("--concurrency", type=COUNT, default=8, show_default=True, help="API clients during a burst.")
@click.option("--symbols", type=COUNT, default=10, show_default=True, help="Symbols per venue on the replay server.")
@click.option(
    "--workers", type=WORKERS, default=0, show_default=True, help="Sender worker processes (0 = one per two cores)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/api.json")
@click.pass_context
def bench_api(
    ctx: click.Context, rate: float, phase_seconds: float, rounds: int, concurrency: int, symbols: int, workers: int,
    json_path: str,
) -> None:  # fmt: skip
    """The HTTP API under a burst of requests: the feeds' trades/s and tick lateness with and without,
    and latency per endpoint; exit 1 when trades/s under load falls below 95 % of without."""
    from ..bench.api import bench_api as run_bench

    settings = cli_settings(ctx)
    result = run_bench(
        settings, rate=rate, phase_s=phase_seconds, rounds=rounds, concurrency=concurrency,
        workers=_bench_workers(workers, settings), symbols=symbols, console=console,
    )  # fmt: skip
    _write_report(json_path, result.to_json())
    if not result.met:
        sys.exit(1)


@bench.command("archive")
@click.option("--ticks", type=COUNT, default=10_000_000, show_default=True, help="Scalp ticks in the corpus.")
@click.option("--files", type=COUNT, default=200, show_default=True, help="Files they are spread over.")
@click.option("--rounds", type=COUNT, default=2, show_default=True, help="Rounds, order alternating; medians reported.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default="benchmarks/results/archive.json")
@click.pass_context
def bench_archive(ctx: click.Context, ticks: int, files: int, rounds: int, json_path: str) -> None:
    """The archive runner against a single-process msgspec → Sender.dataframe script on the same
    corpus (ticks/s, time per 1,000 records, peak RSS, CPU, bytes read), each in its own process."""
    from ..bench.archive import print_archive, run_archive_benchmark

    settings = cli_settings(ctx)
    result = run_archive_benchmark(settings, ticks=ticks, files=files, rounds=rounds, console=console)
    print_archive(result, console)
    _write_report(json_path, result.to_json())
