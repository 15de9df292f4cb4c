"""Consistent online backups of the managed QuestDB server, and their restore.

QuestDB OSS has no backup command of its own; its documented procedure is ``CHECKPOINT CREATE`` →
copy the server root → ``CHECKPOINT RELEASE``, and a restore is the copy plus an empty ``_restore``
trigger file in the root when the server starts. While the checkpoint is held QuestDB keeps taking
writes (housekeeping waits), so ingestion never stops; the release runs in a ``finally`` on a fresh
connection, also when the copy fails, because a checkpoint left held stops QuestDB's clean-up and
the disk fills.

**What the manifest's numbers mean, exactly.** CHECKPOINT CREATE writes, for every table, the
``_txn`` of the state a reader sees at that instant (WAL transaction *T* applied) into
``.checkpoint/db/<table>/_txn``, and the sequencer's last committed transaction *L* ≥ *T* into
``.checkpoint/db/<table>/txn_seq/_txn``. At restore QuestDB rolls each table back to that ``_txn`` and
then re-applies *T+1..L* from the copied WAL segments: rows writers committed in the last instant
before the checkpoint that QuestDB had not applied yet. How many rows those add is unknowable without
applying them (DEDUP may merge them with stored ones), and counting with SQL is no better — SQL also
sees everything written after the checkpoint. So a backup **pins every table at T**: the copy's
``txn_seq/_txn`` holds *T*, the restored table is exactly the checkpoint's ``_txn``, and the manifest's
row count and min/max timestamp are read from that file (QuestDB's ``TableUtils`` layout, pinned
release). Rows committed but not applied at the checkpoint (typically well under a second) are in
the live database, not in this backup. A table whose structure changed between *T* and *L* cannot be
pinned (the restored table would miss the ALTER), so that backup fails and is simply taken again.
Materialized views are not pinned: they replay their own WAL and refresh from their base table after
a restore, so their rows are recorded but not claimed exact.

Layout: ``<dest>/<name>/manifest.json`` plus ``data/`` (the server root's files, zero runs written as
holes: QuestDB pre-allocates column files, mostly zeros) or one ``data.tar.gz`` / ``data.tar.zst``.
``<name>`` is ``questdb-YYYYmmddTHHMMSSZ`` (the checkpoint's UTC time). A backup is written under
``<dest>/.<name>.partial`` and renamed when complete, so a listed backup is always whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import io
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from psycopg import sql

from ..config import QuestDBSettings, Settings
from ..errors import BackupError, BackupVerifyError, BackupVersionError, RestoreTargetError
from ..resources import questdb_pin
from ..timefmt import iso
from .alerts import Alert, AlertSink
from .backup_files import (
    CHUNK,
    RESTORE_TRIGGER,
    DestLock,
    Padded,
    archive_reader,
    archive_writer,
    check_compression,
    copy_file,
    copy_sparse,
    read_txn,
    sha256_file,
    walk_root,
    zstandard_module,
)
from .loop import Periodic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DATA_DIR = "data"
ARCHIVES = {"gzip": "data.tar.gz", "zstd": "data.tar.zst"}
CHECKPOINT_DIR = ".checkpoint"
NAME_PREFIX = "questdb-"
LONG_MIN = -(1 << 63)
LONG_MAX = (1 << 63) - 1

Progress = Callable[[int, int], None]  # (bytes done, bytes in total)


# --------------------------------------------------------------------------- manifest
@dataclass(frozen=True)
class TableState:
    """One table as the backup holds it (``rows``/``min_ts``/``max_ts`` read from its checkpoint ``_txn``)."""

    name: str
    directory: str
    kind: str  # "table" | "materialized_view"
    wal: bool
    rows: int
    min_ts: str | None  # ISO-8601 UTC, to the table's precision
    max_ts: str | None
    min_ts_raw: int | None  # in ts_unit since the epoch (``SELECT max(ts)::long``)
    max_ts_raw: int | None
    ts_unit: str  # "ns" | "us"
    applied_txn: int  # WAL transaction the checkpoint holds (T)
    sequencer_txn: int  # last committed WAL transaction at the checkpoint (L >= T)
    pinned: bool  # the backup ends this table at applied_txn (see the module docstring)
    exact: bool  # a restore yields exactly ``rows`` (tables: yes; materialized views: refreshed later)


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the server root, POSIX separators
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds; ``manifest.json`` in the backup's directory."""

    name: str
    created_at: str  # the checkpoint's UTC time, ISO-8601
    questdb_version: str
    compress: str
    source_root: str
    tables: list[TableState]
    files: list[FileEntry]
    dirs: list[str]
    archive: dict[str, Any] = field(default_factory=dict)  # {"file", "size", "sha256"} when compressed
    vanished: list[str] = field(default_factory=list)  # files QuestDB removed while they were copied
    checkpoint_held_s: float = 0.0
    format: int = MANIFEST_FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def created_ts(self) -> float:
        return dt.datetime.fromisoformat(self.created_at.replace("Z", "+00:00")).timestamp()

    def table(self, name: str) -> TableState:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_json(self) -> str:
        data = asdict(self)
        data["total_bytes"] = self.total_bytes
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            if data.get("format") != MANIFEST_FORMAT:
                raise BackupError(f"{where}: manifest format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
            data.pop("total_bytes", None)
            data["tables"] = [TableState(**t) for t in data["tables"]]
            data["files"] = [FileEntry(**f) for f in data["files"]]
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise BackupError(f"{where}: not a valid backup manifest ({exc})") from None


def read_manifest(backup: Path) -> Manifest:
    path = backup / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(f"{backup} is not a backup: no {MANIFEST}") from None
    return Manifest.from_json(text, str(path))


def _summary(name: str, path: Path, m: Manifest) -> dict[str, Any]:
    """What ``backup list`` and ``backup create`` both report of a backup."""
    return {
        "name": name,
        "path": str(path),
        "created_at": m.created_at,
        "questdb_version": m.questdb_version,
        "compress": m.compress,
        "files": len(m.files),
        "bytes": m.total_bytes,
    }


@dataclass(frozen=True)
class BackupInfo:
    """A complete backup found under a destination."""

    name: str
    path: Path
    manifest: Manifest

    @property
    def size_on_disk(self) -> int:
        return sum(p.stat().st_blocks * 512 for p in self.path.rglob("*") if p.is_file())

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            **_summary(self.name, self.path, m),
            "bytes_on_disk": self.size_on_disk,
            "rows": {t.name: t.rows for t in m.tables},
        }


def _iso(raw: int | None, unit: str) -> str | None:
    """A ``_txn`` timestamp (ns or µs, as the table keeps it) in the one time format, all its digits."""
    if raw is None:
        return None
    return iso(raw, 9) if unit == "ns" else iso(raw * 1000, 6)


# --------------------------------------------------------------------------- helpers
def backup_dir(settings: Settings, dest: str | Path | None = None) -> Path:
    return Path(dest).resolve() if dest else Path(settings.backup.dir)


def resolve_backup(settings: Settings, name: str, dest: str | Path | None = None) -> Path:
    """A backup by name under the destination, or a path to a backup directory."""
    candidate = backup_dir(settings, dest) / name
    if (candidate / MANIFEST).is_file():
        return candidate
    direct = Path(name)
    if (direct / MANIFEST).is_file():
        return direct.resolve()
    raise BackupError(f"no backup {name!r} in {backup_dir(settings, dest)} (see `pumpwatch backup list`)")


def list_backups(settings: Settings, dest: str | Path | None = None) -> list[BackupInfo]:
    """Complete backups, oldest first (partial ones, being written or left by a crash, are not listed)."""
    root = backup_dir(settings, dest)
    found: list[BackupInfo] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not (entry / MANIFEST).is_file():
            continue
        try:
            found.append(BackupInfo(entry.name, entry, read_manifest(entry)))
        except BackupError as exc:
            log.warning("skipping %s: %s", entry, exc)
    return sorted(found, key=lambda b: (b.manifest.created_at, b.name))


# --------------------------------------------------------------------------- create
@dataclass(frozen=True)
class BackupResult:
    """A backup just written (and where it was uploaded, if it was)."""

    path: Path
    manifest: Manifest
    seconds: float
    uploaded_to: str = ""

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            **_summary(m.name, self.path, m),
            "archive": m.archive,
            "checkpoint_held_s": m.checkpoint_held_s,
            "seconds": round(self.seconds, 3),
            "uploaded_to": self.uploaded_to,
            "tables": [asdict(t) for t in m.tables],
        }


def server_version(conn: psycopg.Connection[Any]) -> str:
    """The release of the server behind ``conn`` (from ``build()``)."""
    row = conn.execute("SELECT build()").fetchone()
    match = re.search(r"QuestDB (\d+(?:\.\d+)+)", str(row[0]) if row else "")
    if match is None:
        raise BackupError(f"cannot tell the QuestDB version from build(): {row!r}")
    return match[1]


def checkpoint_in_progress(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT in_progress FROM checkpoint_status()").fetchone()
    return bool(row and row[0])


def _release(settings: Settings, attempts: int = 5) -> None:
    """CHECKPOINT RELEASE on a fresh connection (the one that created it may have timed out during a
    long copy), retried with backoff; raises BackupError when QuestDB stays unreachable."""
    from ..store.pg import connect

    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with connect(settings) as conn:
                conn.execute("CHECKPOINT RELEASE")
            return
        except psycopg.Error as exc:
            if attempt == attempts:
                raise BackupError(
                    f"CHECKPOINT RELEASE failed {attempts} times ({exc}); the checkpoint is still held and "
                    "QuestDB's housekeeping stays paused: run `CHECKPOINT RELEASE` as soon as it answers"
                ) from exc
            time.sleep(delay)
            delay *= 2


def _tables(conn: psycopg.Connection[Any], root: Path) -> tuple[list[TableState], dict[str, bytes]]:
    """Every table in the checkpoint with its state from the checkpoint's ``_txn``, and the pinned
    ``txn_seq/_txn`` contents to write into the copy (see the module docstring)."""
    ckpt = root / CHECKPOINT_DIR / "db"
    rows = conn.execute("SELECT table_name, directoryName, walEnabled, matView FROM tables()").fetchall()
    states: list[TableState] = []
    pins: dict[str, bytes] = {}
    for name, directory, wal, mat_view in sorted(rows):
        name, directory = str(name), str(directory)
        txn_file = ckpt / directory / "_txn"
        if not txn_file.is_file():
            continue  # created after the checkpoint: QuestDB drops it at restore
        txn = read_txn(txn_file)
        cols = conn.execute(
            sql.SQL('SELECT type FROM table_columns({}) WHERE "designated"').format(sql.Literal(name))
        ).fetchall()
        unit = "ns" if cols and str(cols[0][0]).upper() == "TIMESTAMP_NS" else "us"
        has_ts = bool(cols) and txn.rows > 0 and txn.max_ts not in (LONG_MIN, LONG_MAX)
        sequencer_txn = txn.seq_txn
        pinned = False
        if wal:
            seq_file = ckpt / directory / "txn_seq" / "_txn"
            (sequencer_txn,) = struct.unpack("<q", seq_file.read_bytes()[:8])
            if not mat_view and sequencer_txn > txn.seq_txn:
                _check_no_structure_change(conn, name, txn.seq_txn, sequencer_txn)
                pins[(seq_file.relative_to(root)).as_posix()] = struct.pack("<q", txn.seq_txn)
                pinned = True
        states.append(
            TableState(
                name=name,
                directory=directory,
                kind="materialized_view" if mat_view else "table",
                wal=bool(wal),
                rows=txn.rows,
                min_ts=_iso(txn.min_ts, unit) if has_ts else None,
                max_ts=_iso(txn.max_ts, unit) if has_ts else None,
                min_ts_raw=txn.min_ts if has_ts else None,
                max_ts_raw=txn.max_ts if has_ts else None,
                ts_unit=unit,
                applied_txn=txn.seq_txn,
                sequencer_txn=sequencer_txn,
                pinned=pinned,
                exact=not mat_view,  # a view catches up with its base table after a restore
            )
        )
    return states, pins


def _check_no_structure_change(conn: psycopg.Connection[Any], table: str, applied: int, last: int) -> None:
    """Pinning at ``applied`` drops the WAL transactions up to ``last``: fine for data, wrong for an ALTER."""
    found = dict(
        conn.execute(
            sql.SQL(
                "SELECT sequencerTxn, structureVersion FROM wal_transactions({}) WHERE sequencerTxn IN ({}, {})"
            ).format(sql.Literal(table), sql.SQL(str(int(applied))), sql.SQL(str(int(last))))
        ).fetchall()
    )
    before, after = found.get(applied, 0) if applied > 0 else 0, found.get(last)
    if after is None or before != after:
        raise BackupError(
            f"table {table} changed structure while the checkpoint was taken (WAL transactions {applied}..{last}); "
            "the backup was abandoned, run it again"
        )


def _new_name(dest: Path, at: float) -> str:
    base = NAME_PREFIX + dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name, n = base, 0
    while (dest / name).exists() or (dest / f".{name}.partial").exists():
        n += 1
        name = f"{base}-{n}"
    return name


def create_backup(
    settings: Settings,
    *,
    dest: str | Path | None = None,
    compress: str | None = None,
    upload: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> BackupResult:
    """CHECKPOINT CREATE, copy the server root (``questdb.data_dir``) into a new backup, CHECKPOINT
    RELEASE — released whatever happens after a successful CREATE, never when CREATE failed (the
    checkpoint then belongs to someone else). ``cancel`` stops the copy between files."""
    from ..store.pg import connect

    started_clock = time.monotonic()
    compress = compress or settings.backup.compress
    check_compression(compress)
    root = Path(settings.questdb.data_dir)
    if not (root / "db").is_dir():
        raise BackupError(
            f"no QuestDB server root at {root} (no db/): a backup copies the managed server's files, so run it "
            "on the server's machine with the same questdb.data_dir"
        )
    dest_dir = backup_dir(settings, dest)
    if dest_dir == root or root in dest_dir.parents:
        raise BackupError(f"backup destination {dest_dir} is inside the server root {root}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with DestLock(dest_dir):
        with connect(settings) as conn:
            version = server_version(conn)
            created = time.time()
            try:
                conn.execute("CHECKPOINT CREATE")
            except psycopg.Error as exc:
                raise BackupError(
                    f"QuestDB refused CHECKPOINT CREATE ({str(exc).strip()}); if a checkpoint is held and no "
                    "backup is running (SELECT * FROM checkpoint_status()), end it with CHECKPOINT RELEASE"
                ) from exc
            held_from = time.monotonic()
            try:
                partial, manifest = _hold(settings, conn, root, dest_dir, created, compress, progress, cancel)
            except BaseException as exc:
                try:
                    _release(settings)
                except BackupError as release_exc:
                    raise BackupError(f"{exc}; and then: {release_exc}") from exc
                raise
        release_error: BackupError | None = None
        try:
            _release(settings)
        except BackupError as exc:
            release_error = exc
        manifest = replace(manifest, questdb_version=version, checkpoint_held_s=round(time.monotonic() - held_from, 3))
        (partial / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        final = dest_dir / manifest.name
        partial.rename(final)
    if release_error is not None:
        raise release_error
    log.info("backup %s: %d files, %d bytes, checkpoint held %.1fs", manifest.name, len(manifest.files),
             manifest.total_bytes, manifest.checkpoint_held_s)  # fmt: skip
    uploaded = ""
    if upload:
        try:
            uploaded = upload_backup(final, upload)
        except BackupError as exc:
            raise BackupError(f"backup {manifest.name} is complete in {final}, but its upload failed: {exc}") from exc
    return BackupResult(final, manifest, time.monotonic() - started_clock, uploaded)


def _hold(
    settings: Settings,
    conn: psycopg.Connection[Any],
    root: Path,
    dest_dir: Path,
    created: float,
    compress: str,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> tuple[Path, Manifest]:
    """What happens while the checkpoint is held: read the tables' states, copy the root."""
    meta = root / CHECKPOINT_DIR / "db" / "_checkpoint_meta.d"
    if not meta.is_file() or meta.stat().st_mtime < created - 5:
        q = settings.questdb
        raise BackupError(
            f"the QuestDB answering on {q.host}:{q.pg_port} is not the server of {root} (its checkpoint did "
            "not appear there); check questdb.data_dir and the ports"
        )
    tables, pins = _tables(conn, root)
    name = _new_name(dest_dir, created)
    partial = dest_dir / f".{name}.partial"
    partial.mkdir()
    try:
        manifest = _copy_root(root, partial, compress, pins, progress, cancel)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError):  # a full or failing destination disk
            raise BackupError(f"copying {root} into {dest_dir} failed: {exc}") from exc
        raise
    created_at = _iso(int(created * 1e6), "us") or ""
    return partial, replace(manifest, name=name, created_at=created_at, tables=tables)


def _copy_root(
    root: Path,
    into: Path,
    compress: str,
    pins: dict[str, bytes],
    progress: Progress | None,
    cancel: threading.Event | None,
) -> Manifest:
    """Copy the server root into the backup directory (``data/`` or one archive), hashing every file."""
    dirs, listed = walk_root(root)
    total = sum(size for _, size in listed)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, max(total, done))

    files: list[FileEntry] = []
    vanished: list[str] = []
    archive: dict[str, Any] = {}

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise BackupError("backup cancelled")

    if compress == "none":
        data = into / DATA_DIR
        data.mkdir()
        for d in dirs:
            (data / d).mkdir(parents=True, exist_ok=True)
        for rel, _size in listed:
            check_cancel()
            target = data / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel in pins:
                target.write_bytes(pins[rel])
                files.append(FileEntry(rel, len(pins[rel]), hashlib.sha256(pins[rel]).hexdigest()))
                continue
            try:
                size, digest = copy_file(root / rel, target, on_bytes)
            except FileNotFoundError:
                target.unlink(missing_ok=True)
                vanished.append(rel)
                continue
            files.append(FileEntry(rel, size, digest))
    else:
        archive_path = into / ARCHIVES[compress]
        with archive_writer(archive_path, compress) as tar:
            for d in dirs:
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for rel, _size in listed:
                check_cancel()
                if rel in pins:
                    info = tarfile.TarInfo(rel)
                    info.size, info.mode = len(pins[rel]), 0o644
                    tar.addfile(info, io.BytesIO(pins[rel]))
                    files.append(FileEntry(rel, len(pins[rel]), hashlib.sha256(pins[rel]).hexdigest()))
                    continue
                try:
                    f = open(root / rel, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    vanished.append(rel)
                    continue
                with f:
                    st = os.fstat(f.fileno())
                    info = tarfile.TarInfo(rel)
                    info.size, info.mode, info.mtime = st.st_size, st.st_mode & 0o777, int(st.st_mtime)
                    reader = Padded(f, st.st_size, on_bytes)
                    tar.addfile(info, reader)
                files.append(FileEntry(rel, st.st_size, reader.digest.hexdigest()))
        archive = {
            "file": archive_path.name,
            "size": archive_path.stat().st_size,
            "sha256": sha256_file(archive_path),
        }
    return Manifest(
        name="",
        created_at="",
        questdb_version="",
        compress=compress,
        source_root=str(root),
        tables=[],
        files=files,
        dirs=dirs,
        archive=archive,
        vanished=vanished,
    )


# --------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class VerifyReport:
    name: str
    files_checked: int
    bytes_checked: int
    problems: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise BackupVerifyError(self.name, self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "problems": [{"path": p, "problem": why} for p, why in self.problems],
        }


def verify_backup(backup: Path, progress: Progress | None = None) -> VerifyReport:
    """Re-read every file of a backup (every member of its archive, and the archive itself) and
    compare size and sha256 with the manifest; lists what is missing, altered or unexpected."""
    manifest = read_manifest(backup)
    expected = {f.path: f for f in manifest.files}
    total = manifest.total_bytes
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, max(total, done))

    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    if manifest.compress == "none":
        data = backup / DATA_DIR
        for entry in manifest.files:
            path = data / entry.path
            try:
                size = path.stat().st_size
                digest = sha256_file(path, on_bytes)
            except FileNotFoundError:
                problems.append((entry.path, "missing"))
                continue
            seen.add(entry.path)
            problems += _compare(entry, size, digest)
        if data.is_dir():
            for path in sorted(data.rglob("*")):
                rel = path.relative_to(data).as_posix()
                if path.is_file() and rel not in expected:
                    problems.append((rel, "not in the manifest"))
    else:
        archive = backup / str(manifest.archive.get("file", ARCHIVES.get(manifest.compress, "")))
        if not archive.is_file():
            return VerifyReport(manifest.name, 0, 0, [(archive.name, "missing")])
        digest = sha256_file(archive)
        if digest != manifest.archive.get("sha256"):
            problems.append((archive.name, f"sha256 {digest[:16]}… differs from the manifest's"))
        try:
            with archive_reader(archive, manifest.compress) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    listed = expected.get(member.name)
                    if listed is None:
                        problems.append((member.name, "not in the manifest"))
                        continue
                    src = tar.extractfile(member)
                    assert src is not None
                    h = hashlib.sha256()
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        on_bytes(len(chunk))
                    seen.add(member.name)
                    problems += _compare(listed, member.size, h.hexdigest())
        except unreadable_archive(BackupError) as exc:
            problems.append((archive.name, f"unreadable after {len(seen)} files: {exc}"))
        for entry in manifest.files:
            if entry.path not in seen and not any(p == entry.path for p, _ in problems):
                problems.append((entry.path, "missing from the archive"))
    return VerifyReport(manifest.name, len(seen), done, problems)


def unreadable_archive(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What reading a damaged archive raises: a bit flipped in gzip data is a ``zlib.error`` (not an
    ``OSError``), in zstd data a ``zstandard.ZstdError`` — verify and restore report either."""
    zstd = zstandard_module()
    extra = (zstd.ZstdError,) if zstd is not None else ()
    return (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, *extra, *more)


def _compare(entry: FileEntry, size: int, digest: str) -> list[tuple[str, str]]:
    if size != entry.size:
        return [(entry.path, f"size {size:,} bytes, the manifest says {entry.size:,}")]
    if digest != entry.sha256:
        return [(entry.path, f"sha256 {digest[:16]}… differs from the manifest's {entry.sha256[:16]}…")]
    return []


# --------------------------------------------------------------------------- prune
def prune_backups(
    settings: Settings,
    *,
    keep_days: int | None = None,
    dest: str | Path | None = None,
    now: float | None = None,
    dry_run: bool = False,
) -> list[BackupInfo]:
    """Remove backups older than ``keep_days`` (``backup.keep_days``) — never the newest one, so a
    stalled schedule never prunes the last good copy away — and partial ones left by a crash."""
    keep = settings.backup.keep_days if keep_days is None else keep_days
    cutoff = (time.time() if now is None else now) - keep * 86_400
    backups = list_backups(settings, dest)
    doomed = [b for b in backups[:-1] if b.manifest.created_ts < cutoff]
    if dry_run:
        return doomed
    for b in doomed:
        shutil.rmtree(b.path)
        log.info("pruned backup %s (created %s)", b.name, b.manifest.created_at)
    root = backup_dir(settings, dest)
    lock = DestLock(root)
    if root.is_dir() and lock.acquire():  # a backup being written holds the lock: leave its partial alone
        try:
            for stale in root.glob(".questdb-*.partial"):
                shutil.rmtree(stale, ignore_errors=True)
        finally:
            lock.release()
    return doomed


# --------------------------------------------------------------------------- restore
@dataclass(frozen=True)
class RestoreResult:
    name: str
    data_dir: Path
    files: int
    bytes: int
    manifest: Manifest

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data_dir": str(self.data_dir),
            "files": self.files,
            "bytes": self.bytes,
            "questdb_version": self.manifest.questdb_version,
            "trigger": str(self.data_dir / RESTORE_TRIGGER),
            "tables": {t.name: t.rows for t in self.manifest.tables},
        }


def _server_running(data_dir: Path) -> int | None:
    from ..server import QuestDBProcess

    return QuestDBProcess(QuestDBSettings(data_dir=str(data_dir))).pid()


def restore_backup(
    backup: Path, data_dir: str | Path, *, force: bool = False, progress: Progress | None = None
) -> RestoreResult:
    """Lay a backup out as a server root in ``data_dir`` (``db/``, ``.checkpoint/``, ``conf/``) and
    write QuestDB's ``_restore`` trigger; ``pumpwatch questdb start --data-dir DIR`` then restores it.
    Every file is checked against the manifest as it is written; a mismatch stops the restore and
    empties the target again. Refuses a backup of another QuestDB release than the pinned one, a
    non-empty target unless ``force`` (which empties it), and a target a server is running on."""
    manifest = read_manifest(backup)
    pinned = questdb_pin().version
    if manifest.questdb_version != pinned:
        raise BackupVersionError(manifest.name, manifest.questdb_version, pinned)
    target = Path(data_dir).resolve()
    backup = backup.resolve()
    if target.parent == target or target == Path.home():
        raise RestoreTargetError(str(target), f"refusing to restore into {target}; name a directory of its own")
    if target == backup or target in backup.parents:
        raise RestoreTargetError(str(target), f"the restore target {target} contains the backup {backup}")
    if target.exists() and not target.is_dir():
        raise RestoreTargetError(str(target), f"the restore target {target} is not a directory")
    if target.is_dir():
        pid = _server_running(target)
        if pid is not None:
            raise RestoreTargetError(str(target), f"QuestDB (pid {pid}) is running on {target}; stop it first")
        entries = sorted(p.name for p in target.iterdir())
        if entries and not force:
            shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
            raise RestoreTargetError(
                str(target), f"the restore target {target} is not empty ({shown}); pass --force to replace its contents"
            )
        _empty(target)
    target.mkdir(parents=True, exist_ok=True)
    total = manifest.total_bytes
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, max(total, done))

    try:
        for d in manifest.dirs:
            (target / _safe(d)).mkdir(parents=True, exist_ok=True)
        problems = (
            _restore_dir(manifest, backup / DATA_DIR, target, on_bytes)
            if manifest.compress == "none"
            else _restore_archive(manifest, backup, target, on_bytes)
        )
        if problems:
            raise BackupVerifyError(manifest.name, problems)
        (target / RESTORE_TRIGGER).touch()
    except BaseException as exc:
        _empty(target)
        if isinstance(exc, OSError):  # a full or failing target disk
            raise BackupError(f"restoring {manifest.name} into {target} failed: {exc}") from exc
        raise
    return RestoreResult(manifest.name, target, len(manifest.files), done, manifest)


def _safe(rel: str) -> str:
    """A manifest/archive path that stays inside the target (no absolute path, no ``..``)."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise BackupError(f"unsafe path in backup: {rel!r}")
    return rel


def _empty(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _restore_dir(
    manifest: Manifest, data: Path, target: Path, on_bytes: Callable[[int], None]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for entry in manifest.files:
        out = target / _safe(entry.path)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            size, digest = copy_file(data / entry.path, out, on_bytes)
        except FileNotFoundError:
            problems.append((entry.path, "missing"))
            continue
        problems += _compare(entry, size, digest)
        if problems:
            break
    return problems


def _restore_archive(
    manifest: Manifest, backup: Path, target: Path, on_bytes: Callable[[int], None]
) -> list[tuple[str, str]]:
    archive = backup / str(manifest.archive.get("file", ""))
    want = str(manifest.archive.get("sha256", ""))
    if want and sha256_file(archive) != want:  # a damaged archive may still unpack (a flipped padding byte)
        return [(archive.name, "sha256 differs from the manifest: the archive is damaged")]
    expected = {f.path: f for f in manifest.files}
    seen: set[str] = set()
    try:
        with archive_reader(archive, manifest.compress) as tar:
            for member in tar:
                if member.isdir():
                    (target / _safe(member.name)).mkdir(parents=True, exist_ok=True)
                    continue
                entry = expected.get(member.name)
                if entry is None or not member.isfile():
                    return [(member.name, "not in the manifest")]
                out = target / _safe(member.name)
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with open(out, "wb") as fout:
                    size, digest = copy_sparse(src, fout, on_bytes, member.size)
                seen.add(member.name)
                bad = _compare(entry, size, digest)
                if bad:
                    return bad
    except unreadable_archive() as exc:
        return [(archive.name, f"unreadable after {len(seen)} files: {exc}")]
    return [(f.path, "missing from the archive") for f in manifest.files if f.path not in seen]


# --------------------------------------------------------------------------- upload
def upload_backup(backup: Path, url: str) -> str:
    """Copy a backup to S3-compatible storage under ``s3://bucket/prefix/<name>/`` with boto3 when it
    is importable, else the ``aws`` CLI; credentials and ``AWS_ENDPOINT_URL`` (MinIO, R2, …) come from
    their usual environment and files."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", url)
    if match is None:
        raise BackupError(f"upload destination {url!r} is not s3://bucket[/prefix]")
    bucket, prefix = match[1], match[2].strip("/")
    key_root = f"{prefix}/{backup.name}" if prefix else backup.name
    where = f"s3://{bucket}/{key_root}/"
    try:
        boto3: Any = importlib.import_module("boto3")
    except ImportError:
        boto3 = None
    if boto3 is not None:
        client = boto3.client("s3")
        try:
            for path in sorted(p for p in backup.rglob("*") if p.is_file()):
                client.upload_file(str(path), bucket, f"{key_root}/{path.relative_to(backup).as_posix()}")
        except Exception as exc:  # boto3's errors are many and untyped here
            raise BackupError(f"upload to {where} failed: {exc}") from exc
        return where
    aws = shutil.which("aws")
    if aws is None:
        raise BackupError(
            f"uploading to {url} needs boto3 (pip install boto3) or the aws CLI on PATH; neither was found "
            "(the backup itself is complete locally)"
        )
    proc = subprocess.run([aws, "s3", "cp", "--recursive", "--only-show-errors", str(backup), where],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise BackupError(f"aws s3 cp to {where} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return where


# --------------------------------------------------------------------------- scheduler
class BackupScheduler(Periodic):
    """The service's backup job: every ``interval`` seconds create a backup, prune old ones and upload
    the new one when configured, in a thread of its own, raising ``backup.created`` (info) or
    ``backup.failed`` (critical) through ``sink``. The first run is due ``interval`` after the newest
    existing backup, so a restart does not take an extra one; after a failure it retries within
    ``retry`` seconds. ``stop`` cancels a copy in progress (its checkpoint is released)."""

    def __init__(
        self,
        settings: Settings,
        sink: AlertSink,
        *,
        interval: float | None = None,
        keep_days: int | None = None,
        dest: str | Path | None = None,
        compress: str | None = None,
        upload: str | None = None,
        retry: float = 900.0,
    ) -> None:
        b = settings.backup
        self.settings = settings
        self.sink = sink
        self.interval = b.interval if interval is None else interval
        self.keep_days = b.keep_days if keep_days is None else keep_days
        self.dest = backup_dir(settings, dest)
        self.compress = compress or b.compress
        self.upload = b.upload if upload is None else upload
        self.retry = retry
        self.last_result: BackupResult | None = None
        self.last_error: str = ""
        self.next_due: float | None = None
        super().__init__()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (nothing when ``interval`` is 0: scheduled backups are off)."""
        if self.interval <= 0 or self.running:
            return
        self.start_loop("backup-scheduler")

    def status(self) -> dict[str, Any]:
        """For the service's API: the schedule and the last outcome."""
        return {
            "interval_s": self.interval,
            "dest": str(self.dest),
            "next_due": _iso(int(self.next_due * 1e6), "us") if self.next_due else None,
            "last_backup": self.last_result.manifest.name if self.last_result else None,
            "last_error": self.last_error or None,
        }

    def first_due(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        try:
            newest = list_backups(self.settings, self.dest)
        except OSError:
            newest = []
        return max(now, newest[-1].manifest.created_ts + self.interval) if newest else now

    def _loop(self) -> None:
        due = self.next_due = self.first_due()
        while not self._stop.is_set():
            wait = due - time.time()
            if wait > 0:
                self._stop.wait(min(wait, 3600.0))
                continue
            ok = self.run_once() is not None
            due = self.next_due = time.time() + (self.interval if ok else min(self.retry, self.interval))

    def run_once(self) -> BackupResult | None:
        """One round (create, prune, upload); alerts either way, never raises."""
        key = str(self.dest)
        try:
            result = create_backup(
                self.settings, dest=self.dest, compress=self.compress, upload=self.upload or None, cancel=self._stop
            )
            pruned = prune_backups(self.settings, keep_days=self.keep_days, dest=self.dest)
        except Exception as exc:
            self.last_error = str(exc)
            if self._stop.is_set():
                log.info("scheduled backup stopped with the service: %s", exc)
                return None
            log.error("scheduled backup failed: %s", exc)
            self.sink.emit(Alert("backup.failed", "critical", f"backup to {self.dest} failed: {exc}", key=key))
            return None
        self.last_result, self.last_error = result, ""
        m = result.manifest
        self.sink.emit(
            Alert(
                "backup.created",
                "info",
                f"backup {m.name}: {len(m.files):,} files, {m.total_bytes / 1e9:.2f} GB in {result.seconds:.0f}s "
                f"(checkpoint held {m.checkpoint_held_s:.1f}s); pruned {len(pruned)}"
                + (f"; uploaded to {result.uploaded_to}" if result.uploaded_to else ""),
                key=key,
                details={
                    "name": m.name,
                    "path": str(result.path),
                    "bytes": m.total_bytes,
                    "pruned": [b.name for b in pruned],
                    "uploaded_to": result.uploaded_to,
                },
            )
        )
        return result
