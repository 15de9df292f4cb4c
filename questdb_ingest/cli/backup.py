"""``pumpwatch backup create|list|verify|prune|restore``: consistent online backups of the managed
QuestDB (``ops.backup``) from the command line, each with ``--json``.

Registered in ``cli.py`` with ``main.add_command(backup)``. Exit codes: 0 done; 1 a backup failed or
did not verify (every bad file is named); 2 a restore refused (target not empty without ``--force``,
a server running on it, or a QuestDB version other than the pinned one) and invalid settings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ..config import BACKUP_COMPRESSIONS
from ..errors import BackupVersionError, RestoreTargetError
from .support import NON_NEGATIVE_INT, ErrorGroup, cli_settings, console, err_console

_DEST = click.option(
    "--dest",
    type=click.Path(file_okay=False),
    help="Directory holding the backups (default backup.dir: <state root>/backups).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@contextmanager
def _progress(description: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A byte progress bar on stderr (none with ``--json`` or without a terminal)."""
    if quiet or not err_console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _emit(data: dict[str, Any] | list[dict[str, Any]]) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _gb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


@click.group(cls=ErrorGroup)
def backup() -> None:
    """Consistent online backups of QuestDB: CHECKPOINT, copy, release; verify, prune, restore."""


@backup.command("create")
@_DEST
@click.option(
    "--compress",
    type=click.Choice(BACKUP_COMPRESSIONS),
    help="none: a directory of files; gzip/zstd: one tar archive (default backup.compress).",
)
@click.option("--upload", metavar="s3://BUCKET/PREFIX", help="Also copy it there (default backup.upload).")
@_JSON
@click.pass_context
def backup_create(
    ctx: click.Context, dest: str | None, compress: str | None, upload: str | None, as_json: bool
) -> None:
    """Back up the managed server (questdb.data_dir) while it keeps taking writes."""
    from ..ops.backup import create_backup

    settings = cli_settings(ctx, backup={"compress": compress, "upload": upload})
    with _progress("copying", as_json) as progress:
        result = create_backup(settings, dest=dest, upload=settings.backup.upload or None, progress=progress)
    if as_json:
        _emit(result.as_dict())
        return
    m = result.manifest
    where = f" ({m.archive['file']}, {_gb(m.archive['size'])} compressed)" if m.archive else ""
    console.print(
        f"[green]backup {m.name}[/]: {len(m.files):,} files, {_gb(m.total_bytes)}{where} in {result.seconds:.1f}s "
        f"(checkpoint held {m.checkpoint_held_s:.1f}s), QuestDB {m.questdb_version}",
        highlight=False,
    )
    console.print(f"  {escape(str(result.path))}", highlight=False)
    for t in m.tables:
        if t.rows:
            note = "" if t.exact else " (materialized view: refreshed from its base table after a restore)"
            rows = f"{t.rows:,} row{'' if t.rows == 1 else 's'}"
            console.print(f"  {t.name}: {rows} up to {t.max_ts}{note}", highlight=False)
    if result.uploaded_to:
        console.print(f"  uploaded to {escape(result.uploaded_to)}", highlight=False)


@backup.command("list")
@_DEST
@_JSON
@click.pass_context
def backup_list(ctx: click.Context, dest: str | None, as_json: bool) -> None:
    """The complete backups, oldest first."""
    from ..ops.backup import backup_dir, list_backups

    settings = cli_settings(ctx)
    found = list_backups(settings, dest)
    if as_json:
        _emit([b.as_dict() for b in found])
        return
    if not found:
        console.print(f"no backups in {escape(str(backup_dir(settings, dest)))}", highlight=False)
        return
    table = Table(title=f"backups in {backup_dir(settings, dest)}")
    for col in ("name", "created (UTC)", "QuestDB", "compress", "files", "size", "on disk", "rows"):
        table.add_column(col, justify="left" if col in ("name", "created (UTC)", "compress") else "right")
    for b in found:
        m = b.manifest
        rows = sum(t.rows for t in m.tables if t.exact)
        table.add_row(
            b.name, m.created_at[:19].replace("T", " "), m.questdb_version, m.compress, f"{len(m.files):,}",
            _gb(m.total_bytes), _gb(b.size_on_disk), f"{rows:,}",
        )  # fmt: skip
    console.print(table)


@backup.command("verify")
@click.argument("name")
@_DEST
@_JSON
@click.pass_context
def backup_verify(ctx: click.Context, name: str, dest: str | None, as_json: bool) -> None:
    """Re-read every file of backup NAME (a name from `backup list`, or a path) against its sha256;
    exit 1 naming each missing, altered or unexpected file."""
    from ..ops.backup import resolve_backup, verify_backup

    path = resolve_backup(cli_settings(ctx), name, dest)
    with _progress("checking", as_json) as progress:
        report = verify_backup(path, progress)
    if as_json:
        _emit(report.as_dict())
    elif report.ok:
        console.print(
            f"[green]backup {report.name} verified[/]: {report.files_checked:,} files, {_gb(report.bytes_checked)}",
            highlight=False,
        )
    else:
        err_console.print(
            f"[bold red]error:[/] backup {escape(report.name)} failed verification: {len(report.problems)} problem(s)",
            highlight=False,
        )
        for where, why in report.problems:
            err_console.print(f"  {escape(where)}: {escape(why)}", highlight=False)
    if not report.ok:
        sys.exit(1)


@backup.command("prune")
@click.option("--keep-days", type=NON_NEGATIVE_INT, help="Keep backups this many days (default backup.keep_days).")
@_DEST
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@_JSON
@click.pass_context
def backup_prune(ctx: click.Context, keep_days: int | None, dest: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove backups older than --keep-days; the newest one is always kept."""
    from ..ops.backup import prune_backups

    settings = cli_settings(ctx, backup={"keep_days": keep_days})
    removed = prune_backups(settings, dest=dest, dry_run=dry_run)
    if as_json:
        _emit({"dry_run": dry_run, "keep_days": settings.backup.keep_days, "removed": [b.name for b in removed]})
        return
    verb = "would remove" if dry_run else "removed"
    names = ", ".join(b.name for b in removed) or "nothing"
    console.print(f"{verb} {names} (keeping {settings.backup.keep_days} days)", highlight=False)


@backup.command("restore")
@click.argument("name")
@click.option(
    "--data-dir", required=True, type=click.Path(file_okay=False), help="Server root to restore into (db, conf)."
)
@click.option("--force", is_flag=True, help="Replace what the target directory holds.")
@_DEST
@_JSON
@click.pass_context
def backup_restore(ctx: click.Context, name: str, data_dir: str, force: bool, dest: str | None, as_json: bool) -> None:
    """Lay backup NAME out in --data-dir with QuestDB's _restore trigger; then
    `pumpwatch questdb start --data-dir DIR` restores and serves it."""
    from ..ops.backup import resolve_backup, restore_backup

    path = resolve_backup(cli_settings(ctx), name, dest)
    try:
        with _progress("restoring", as_json) as progress:
            result = restore_backup(path, Path(data_dir), force=force, progress=progress)
    except (RestoreTargetError, BackupVersionError) as exc:  # a refusal the operator resolves: exit 2
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    if as_json:
        _emit(result.as_dict())
        return
    console.print(
        f"[green]restored {result.name}[/] into {escape(str(result.data_dir))}: {result.files:,} files, "
        f"{_gb(result.bytes)}; QuestDB restores it at its next start:",
        highlight=False,
    )
    console.print(f"  pumpwatch questdb start --data-dir {escape(str(result.data_dir))}", highlight=False)
