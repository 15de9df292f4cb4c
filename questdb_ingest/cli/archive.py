"""``pumpwatch archive ingest|status|rollback``: historical files into QuestDB (``questdb_ingest.archive``).

``ingest`` shows files, rows, MB/s and the ETA while it runs and ends with one line per file
(``--json``: the whole report); exit 1 when a file failed (the others are in). ``status`` is the
``ingest_state`` ledger as a table. ``rollback`` removes exactly one file's or one session's rows
and marks the state, so the next ingest takes the file again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ..archive.sources import FORMATS
from ..timefmt import iso_ns
from .support import COUNT, ErrorGroup, cli_settings, console

_FORMAT_HELP = (
    "swing | scalp | gaps (observer JSONL), binance_trades (data-dump CSV/zip), recording (pumpwatch record "
    "output), csv_trades | parquet_trades (any trades table, with --map); default: told from each file's name "
    "or first record"
)


@click.group("archive", cls=ErrorGroup)
def archive() -> None:
    """Historical data in: observer JSONL, recordings and trade dumps, exactly once, resumable."""


class _Bars:
    """The rich progress of a run: files done of all, bytes (MB/s, ETA), rows so far."""

    def __init__(self, files: list[Path]) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        sizes = {str(f): f.stat().st_size for f in files}
        self.sizes = sizes
        self.done_bytes: dict[str, int] = {}
        self.files = self.progress.add_task("files", total=len(files), rows=0)
        self.bytes = self.progress.add_task("bytes", total=sum(sizes.values()) or 1, rows=0)
        self.rows = 0

    def __call__(self, event: Any) -> None:
        if event.kind == "rows":
            self.rows += event.rows
            self.progress.update(self.files, rows=self.rows)
        elif event.kind == "done":
            left = self.sizes.get(event.path, 0) - self.done_bytes.get(event.path, 0)
            self.progress.update(self.bytes, advance=max(0, left))
            self.progress.update(self.files, advance=1)
        if event.bytes and event.kind == "rows":
            budget = self.sizes.get(event.path, 0) - self.done_bytes.get(event.path, 0)
            step = min(budget, event.bytes)
            self.done_bytes[event.path] = self.done_bytes.get(event.path, 0) + step
            self.progress.update(self.bytes, advance=step)


def _mapping(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str]:
    from ..archive.formats import parse_mapping

    if not value:
        return {}
    try:
        return parse_mapping(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@archive.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), help=_FORMAT_HELP)
@click.option(
    "--market-type",
    type=click.Choice(["spot", "futures"]),
    help="binance_trades: the market of every file (default: futures when the path has /futures/); "
    "csv/parquet trades: of every row when no market_type column is mapped (default spot).",
)
@click.option("--connector", help="recording: the connector whose parser reads the frames (default: the file stem).")
@click.option(
    "--map",
    "mapping",
    callback=_mapping,
    help="csv_trades / parquet_trades: OURS=THEIRS column pairs, e.g. ts=time,price=px,quantity=qty,side=side,"
    "trade_id=id[,symbol=sym,exchange=ex,market_type=mt].",
)
@click.option("--exchange", help="csv/parquet trades: the exchange of every row when none is mapped.")
@click.option("--symbol", help="csv/parquet trades: the symbol (BASE-QUOTE) of every row when none is mapped.")
@click.option(
    "--ts-unit",
    type=click.Choice(["auto", "s", "ms", "us", "ns", "iso"]),
    default="auto",
    show_default=True,
    help="csv/parquet trades: the mapped time column's unit (auto: by magnitude, or ISO-8601 text).",
)
@click.option("--reprocess", is_flag=True, help="Ingest files again even when this exact content is complete.")
@click.option("--dry-run", is_flag=True, help="Parse and validate only: count rows and rejects, write nothing.")
@click.option("--parallel", type=click.IntRange(1, 256), help="Files at once (default: archive.parallel_files).")
@click.option("--batch-rows", type=COUNT, help="Lines per request and watermark step (default: archive.batch_rows).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
@click.pass_context
def ingest_cmd(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str | None,
    market_type: str | None,
    connector: str | None,
    mapping: dict[str, str],
    exchange: str | None,
    symbol: str | None,
    ts_unit: str,
    reprocess: bool,
    dry_run: bool,
    parallel: int | None,
    batch_rows: int | None,
    as_json: bool,
) -> None:
    """Ingest PATHS (files, or directories searched for archive files)."""
    from ..archive.formats import Options
    from ..archive.runner import ArchiveRunner
    from ..archive.sources import expand
    from ..store.migrations import require_schema
    from ..store.pg import connect

    options = Options(
        market_type=market_type or "", connector=connector or "", mapping=mapping, exchange=exchange or "",
        symbol=symbol or "", ts_unit=ts_unit,
    )  # fmt: skip
    settings = cli_settings(ctx)
    with connect(settings) as conn:
        require_schema(conn, settings)
    files = expand(list(paths))
    bars = _Bars(files)
    runner = ArchiveRunner(
        settings,
        fmt=fmt or "",
        options=options,
        reprocess=reprocess,
        dry_run=dry_run,
        parallel=parallel,
        batch_rows=batch_rows,
        on_progress=bars,
    )
    try:
        with bars.progress:
            report = runner.run(files)
    except KeyboardInterrupt:
        runner.stop()
        raise
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print_run(report)
    if report.failed:
        sys.exit(1)


def _print_run(report: Any) -> None:
    table = Table(title=f"archive ingest {report.run_id}{' (dry run)' if report.dry_run else ''}")
    for col in ("file", "format", "action", "rows read", "written", "rejected", "seconds"):
        table.add_column(col, justify="right" if col in ("rows read", "written", "rejected", "seconds") else "left")
    for f in report.files:
        colour = {"failed": "red", "skipped": "dim"}.get(f.action, "")
        action = f"[{colour}]{f.action}[/]" if colour else f.action
        table.add_row(
            escape(f.path),
            f.format,
            action,
            f"{f.rows_read:,}",
            f"{f.rows_written:,}",
            f"{f.rows_rejected:,}",
            f"{f.seconds:.2f}",
        )
    console.print(table)
    counts = ", ".join(f"{n} {a}" for a, n in report.to_dict()["actions"].items())
    console.print(
        f"{len(report.files)} file(s): {counts}; {report.rows_written:,} rows written, {report.rows_rejected:,} "
        f"rejected, in {report.seconds:.1f}s"
        + (
            f"; 1-minute bars: {report.bars:,} in the minutes touched, {report.low_coverage_bars:,} low coverage"
            if report.bars
            else ""
        )
    )
    for f in report.files:
        if f.rows_rejected and f.reject_log:
            console.print(f"[yellow]rejects[/] of {escape(f.path)}: {escape(f.reject_log)}")
        if f.error:
            console.print(f"[red]failed[/] {escape(f.path)}: {escape(f.error)}")


@archive.command("status")
@click.option("--path", "path", help="Only this file (as ingested: an absolute path).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def status_cmd(ctx: click.Context, path: str | None, as_json: bool) -> None:
    """The ingest ledger: every file's latest state, counts and watermark."""
    from ..archive.state import StateStore
    from ..store.migrations import require_schema
    from ..store.pg import connect

    settings = cli_settings(ctx)
    with connect(settings) as conn:
        require_schema(conn, settings)
        states = sorted(StateStore(conn, settings).latest(path).values(), key=lambda s: s.path)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in states], indent=2))
        return
    table = Table(title=f"ingest_state ({len(states)} file(s))")
    for col in ("file", "format", "status", "rows read", "written", "rejected", "watermark", "updated", "error"):
        table.add_column(col, justify="right" if col in ("rows read", "written", "rejected", "watermark") else "left")
    for s in states:
        table.add_row(
            escape(s.path),
            s.format,
            s.status,
            f"{s.rows_read:,}",
            f"{s.rows_written:,}",
            f"{s.rows_rejected:,}",
            f"{s.watermark:,}",
            iso_ns(s.ts_us * 1000),
            escape(s.error),
        )
    console.print(table)


@archive.command("rollback")
@click.option("--session", help="Remove every archive row of this session_id.")
@click.option("--file", "file", help="Remove every row this file wrote (its path as `archive status` shows it).")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def rollback_cmd(ctx: click.Context, session: str | None, file: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove exactly what one file or one session wrote; its state is marked so a rerun re-ingests it."""
    from ..archive.rollback import rollback
    from ..store.migrations import require_schema
    from ..store.pg import connect

    if (session is None) == (file is None):
        raise click.UsageError("give exactly one of --session or --file")
    settings = cli_settings(ctx)
    target = str(Path(file).resolve()) if file is not None else None
    with connect(settings) as conn:
        require_schema(conn, settings)
        report = rollback(conn, settings, file=target, session=session, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"rollback {report.target}{' (dry run)' if dry_run else ''}")
    for col in ("table", "partitions", "removed", "kept in those partitions"):
        table.add_column(col, justify="left" if col in ("table", "partitions") else "right")
    for t in report.tables:
        if t.partitions:
            table.add_row(t.table, ", ".join(t.partitions), f"{t.removed:,}", f"{t.kept:,}")
    console.print(table)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {report.removed:,} row(s); files marked for re-ingest: {len(report.files)}")
