"""Backups without a server: the archive and directory layouts round-trip byte for byte and as sparse
files, verify names what was altered, prune keeps what it must, restore refuses what it must (exit
2), uploads say clearly what is missing, and QuestDB's ``_txn`` layout is read as the server writes it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from questdb_ingest.cli import main
from questdb_ingest.config import load_settings
from questdb_ingest.errors import BackupError, ConfigError
from questdb_ingest.ops import backup as bk
from questdb_ingest.ops.alerts import ListSink
from questdb_ingest.ops.backup_files import zstd_available
from questdb_ingest.resources import questdb_pin

from .cli_env import isolate

MIB = 1 << 20


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def fake_root(root: Path) -> dict[str, bytes]:
    """A small server root: data, a pre-allocated mostly-zero column file, an empty directory,
    and the files a backup must leave out."""
    files = {
        "db/trades~7/_txn": os.urandom(300),
        "db/trades~7/2026-12-01/price.d": os.urandom(5000) + bytes(3 * MIB),  # data, then a zero tail
        "db/trades~7/2026-12-01/ts.d": bytes(4 * MIB),
        ".checkpoint/db/trades~7/txn_seq/_txn": struct.pack("<q", 42),
        "conf/server.conf": b"http.bind.to=127.0.0.1:9000\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "db" / "trades~7" / "wal1").mkdir()
    for skipped in ("questdb.pid", "questdb.log", "_restore"):
        (root / skipped).write_text("not state\n")
    (root / "public").mkdir()
    (root / "public" / "index.html").write_text("<html/>")
    return files


def make_backup(
    dest: Path,
    root: Path,
    *,
    compress: str = "none",
    created: dt.datetime | None = None,
    version: str | None = None,
    pins: dict[str, bytes] | None = None,
) -> Path:
    """A backup of ``root`` as ``create_backup`` lays it out (without the checkpoint around it)."""
    created = created or dt.datetime.now(dt.UTC)
    name = bk.NAME_PREFIX + created.strftime("%Y%m%dT%H%M%SZ")
    path = dest / name
    path.mkdir(parents=True)
    manifest = bk._copy_root(root, path, compress, pins or {}, None, None)
    manifest = dataclasses.replace(
        manifest, name=name, created_at=created.isoformat().replace("+00:00", "Z"),
        questdb_version=version or questdb_pin().version,
    )  # fmt: skip
    (path / bk.MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return path


def compressions() -> list[str]:
    found = ["none", "gzip"]
    if zstd_available():
        found.append("zstd")
    return found


@pytest.mark.parametrize("compress", compressions())
def test_backup_round_trips_byte_for_byte(tmp_path: Path, compress: str) -> None:
    root = tmp_path / "root"
    files = fake_root(root)
    pins = {".checkpoint/db/trades~7/txn_seq/_txn": struct.pack("<q", 40)}
    backup = make_backup(tmp_path / "backups", root, compress=compress, pins=pins)
    manifest = bk.read_manifest(backup)
    assert sorted(f.path for f in manifest.files) == sorted(files)  # pid, log, _restore, public/ left out
    assert "db/trades~7/wal1" in manifest.dirs
    assert (backup / bk.ARCHIVES[compress]).is_file() if compress != "none" else (backup / "data").is_dir()

    report = bk.verify_backup(backup)
    assert report.ok, report.problems
    assert report.files_checked == len(files)

    target = tmp_path / "restored"
    bk.restore_backup(backup, target)
    expected = files | pins  # the pinned sequencer txn replaces the live one
    for rel, data in expected.items():
        assert (target / rel).read_bytes() == data, rel
    assert (target / "db" / "trades~7" / "wal1").is_dir()
    assert (target / bk.RESTORE_TRIGGER).is_file() and (target / bk.RESTORE_TRIGGER).stat().st_size == 0
    assert not (target / "questdb.pid").exists() and not (target / "public").exists()
    zeros = target / "db/trades~7/2026-12-01/ts.d"
    assert zeros.stat().st_size == 4 * MIB and zeros.stat().st_blocks * 512 < MIB  # written as a hole


def test_verify_names_the_altered_missing_and_unexpected_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    backup = make_backup(tmp_path / "backups", root)
    data = backup / "data"
    victim = data / "db/trades~7/2026-12-01/price.d"
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    (data / "conf/server.conf").unlink()
    (data / "db/stray.d").write_bytes(b"x")

    report = bk.verify_backup(backup)
    problems = dict(report.problems)
    assert "sha256" in problems["db/trades~7/2026-12-01/price.d"]
    assert problems["conf/server.conf"] == "missing"
    assert problems["db/stray.d"] == "not in the manifest"

    result = CliRunner().invoke(main, ["backup", "verify", str(backup)])
    assert result.exit_code == 1, result.output
    assert "db/trades~7/2026-12-01/price.d" in result.output and "conf/server.conf: missing" in result.output


def _deflate_start(raw: bytes) -> int:
    """Where a gzip member's deflate data begins: after the 10-byte header and the optional fields
    its flags name (RFC 1952: extra, file name, comment, header CRC)."""
    flags, pos = raw[3], 10
    if flags & 4:
        pos += 2 + int.from_bytes(raw[pos : pos + 2], "little")
    if flags & 8:
        pos = raw.index(0, pos) + 1
    if flags & 16:
        pos = raw.index(0, pos) + 1
    if flags & 2:
        pos += 2
    return pos


def _flip_one(raw: bytes, want_zlib_error: bool) -> bytes:
    """``raw`` with its deflate data damaged: so that zlib itself fails (the first block's type
    bits set to 11, a type deflate reserves), or so that only the CRC at the end finds it (a
    flipped byte found by search: most flips inside compressed data decode to other bytes)."""
    if want_zlib_error:
        bad = bytearray(raw)
        bad[_deflate_start(raw)] |= 0b110
        with pytest.raises(zlib.error):
            gzip.decompress(bytes(bad))
        return bytes(bad)
    for pos in range(len(raw) // 4, len(raw) - 16, max(1, len(raw) // 500)):
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        try:
            gzip.decompress(bytes(bad))
            hit = False
        except zlib.error:
            hit = True
        except (OSError, EOFError):  # a CRC / length mismatch at the end, or a truncated stream
            hit = False
        if hit == want_zlib_error:
            return bytes(bad)
    raise AssertionError("no such byte")


@pytest.mark.parametrize("zlib_error", [False, True])
def test_a_corrupted_archive_fails_verify_and_restore(tmp_path: Path, zlib_error: bool) -> None:
    """A flipped byte in the compressed data — found by the CRC at the end, or one that breaks the
    deflate stream itself (``zlib.error``, not an ``OSError``) — is a problem verify lists and a
    ``BackupError`` from restore, never the decompressor's exception."""
    root = tmp_path / "root"
    fake_root(root)
    backup = make_backup(tmp_path / "backups", root, compress="gzip")
    archive = backup / bk.ARCHIVES["gzip"]
    archive.write_bytes(_flip_one(archive.read_bytes(), zlib_error))

    report = bk.verify_backup(backup)
    assert not report.ok
    assert report.problems[0][0] == "data.tar.gz" and "sha256" in report.problems[0][1]
    target = tmp_path / "restored"
    with pytest.raises(BackupError):
        bk.restore_backup(backup, target)
    assert list(target.iterdir()) == []  # a failed restore leaves nothing half-written


def test_restore_refuses_a_non_empty_target_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    backup = make_backup(tmp_path / "backups", root)
    target = tmp_path / "target"
    target.mkdir()
    (target / "old-data").write_text("precious")

    result = CliRunner().invoke(main, ["backup", "restore", str(backup), "--data-dir", str(target)])
    assert result.exit_code == 2, result.output
    assert "not empty" in result.output and "--force" in result.output and "old-data" in result.output
    assert (target / "old-data").exists()

    args = ["backup", "restore", str(backup), "--data-dir", str(target), "--force", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == 5
    assert not (target / "old-data").exists() and (target / bk.RESTORE_TRIGGER).exists()


def test_restore_refuses_another_questdb_version_naming_both(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    backup = make_backup(tmp_path / "backups", root, version="8.2.3")
    result = CliRunner().invoke(main, ["backup", "restore", str(backup), "--data-dir", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    assert "QuestDB 8.2.3" in result.output and f"QuestDB {questdb_pin().version}" in result.output
    assert not (tmp_path / "t").exists()


def test_restore_refuses_a_target_that_holds_the_backup(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    backup = make_backup(tmp_path / "state" / "backups", root)
    with pytest.raises(bk.RestoreTargetError, match="contains the backup"):
        bk.restore_backup(backup, tmp_path / "state", force=True)
    assert (backup / bk.MANIFEST).exists()


def test_prune_keeps_recent_backups_and_always_the_newest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    dest = tmp_path / "backups"
    now = dt.datetime.now(dt.UTC)
    for days in (10, 8, 3, 1):
        make_backup(dest, root, created=now - dt.timedelta(days=days))
    (dest / ".questdb-20200101T000000Z.partial").mkdir()  # left by a crash
    settings = load_settings(overrides={"backup": {"dir": str(dest)}})
    names = [b.name for b in bk.list_backups(settings)]
    assert len(names) == 4

    dry = bk.prune_backups(settings, keep_days=7, dry_run=True)
    assert [b.name for b in dry] == names[:2] and len(bk.list_backups(settings)) == 4
    result = CliRunner().invoke(main, ["backup", "prune", "--keep-days", "7", "--dest", str(dest), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == names[:2]
    assert [b.name for b in bk.list_backups(settings)] == names[2:]
    assert not (dest / ".questdb-20200101T000000Z.partial").exists()

    assert [b.name for b in bk.prune_backups(settings, keep_days=0)] == names[2:3]
    assert [b.name for b in bk.list_backups(settings)] == names[3:]  # the newest stays, however old


def test_upload_without_boto3_or_aws_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backup = tmp_path / "questdb-20261201T000000Z"
    backup.mkdir()
    (backup / bk.MANIFEST).write_text("{}")
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BackupError, match=r"needs boto3 .* or the aws CLI on PATH"):
        bk.upload_backup(backup, "s3://bucket/prefix")


def test_upload_with_the_aws_cli_copies_the_backup_under_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = tmp_path / "questdb-20261201T000000Z"
    backup.mkdir()
    (backup / bk.MANIFEST).write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    aws = bin_dir / "aws"
    aws.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    aws.chmod(0o755)
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.setenv("PATH", str(bin_dir))
    where = bk.upload_backup(backup, "s3://bucket/nightly/")
    assert where == "s3://bucket/nightly/questdb-20261201T000000Z/"
    assert calls.read_text().split() == ["s3", "cp", "--recursive", "--only-show-errors", str(backup), where]


@pytest.mark.parametrize(
    ("key", "value"),
    [("compress", "lz4"), ("interval", 10.0), ("keep_days", -1), ("upload", "https://bucket"), ("dir", "")],
)
def test_invalid_backup_settings_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"backup.{key}"):
        load_settings(overrides={"backup": {key: value}})


def test_backup_dir_lives_under_the_state_root(tmp_path: Path) -> None:
    settings = load_settings(overrides={"state": {"dir": str(tmp_path / "st")}})
    assert settings.backup.dir == str((tmp_path / "st" / "backups").resolve())


def txn_file(version: int, rows: tuple[int, int], seq_txn: int) -> bytes:
    """A ``_txn`` with its record in area A (even version) or B (odd), as QuestDB writes it."""
    header = bytearray(64)
    struct.pack_into("<q", header, 0, version)
    struct.pack_into("<i", header, 8 if version % 2 == 0 else 32, 64)
    record = bytearray(160)
    transient, fixed = rows
    struct.pack_into("<qqqqq", record, 0, version, transient, fixed, 1_000, 9_000)
    struct.pack_into("<q", record, 80, seq_txn)
    return bytes(header + record)


@pytest.mark.parametrize("version", [4, 33])
def test_read_txn_takes_the_area_the_version_names(tmp_path: Path, version: int) -> None:
    path = tmp_path / "_txn"
    path.write_bytes(txn_file(version, (700, 11_300), 38))
    state = bk.read_txn(path)
    assert (state.rows, state.min_ts, state.max_ts, state.seq_txn) == (12_000, 1_000, 9_000, 38)
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(BackupError, match="_txn"):
        bk.read_txn(path)


def test_a_failed_scheduled_backup_raises_a_critical_alert(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    settings = load_settings(overrides={"questdb": {"data_dir": str(root)}})  # its ports: nothing listens
    sink = ListSink()
    scheduler = bk.BackupScheduler(settings, sink, dest=tmp_path / "backups")
    assert scheduler.run_once() is None
    [alert] = sink.alerts
    assert (alert.kind, alert.severity, alert.key) == ("backup.failed", "critical", str(tmp_path / "backups"))
    assert "failed" in alert.message and scheduler.status()["last_error"]


def test_the_first_scheduled_backup_is_due_an_interval_after_the_newest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    dest = tmp_path / "backups"
    settings = load_settings()
    now = time.time()
    assert bk.BackupScheduler(settings, ListSink(), dest=dest, interval=86_400).first_due(now) == now
    created = dt.datetime.fromtimestamp(int(now) - 3600, dt.UTC)
    make_backup(dest, root, created=created)
    due = bk.BackupScheduler(settings, ListSink(), dest=dest, interval=86_400).first_due(now)
    assert due == pytest.approx(created.timestamp() + 86_400)


def test_scheduled_backups_are_off_at_interval_zero() -> None:
    scheduler = bk.BackupScheduler(load_settings(overrides={"backup": {"interval": 0}}), ListSink())
    scheduler.start()
    assert not scheduler.running
    scheduler.stop()
