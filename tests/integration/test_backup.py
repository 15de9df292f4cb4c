"""Backups of a real QuestDB while a writer keeps writing, restored into a second server: it holds
exactly the rows the manifest records (count, min and max timestamp per table; count and sum of the
known trades and of the writer's batches), the checkpoint is always released, the scheduled job
alerts, and scripts/backup-questdb.sh creates and prunes."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from questdb import Sender, TimestampNanos

from questdb_ingest.cli import main
from questdb_ingest.config import Settings, load_settings
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import BackupError, QuestDBNotInstalledError
from questdb_ingest.ops import backup as bk
from questdb_ingest.ops.alerts import ListSink
from questdb_ingest.ops.backup_files import zstd_available
from questdb_ingest.server import QuestDBProcess, find_install
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
DAY_NS = 86_400 * 10**9
KNOWN = 3_000  # trades written before the backup: price 1..KNOWN, over two day partitions
BATCH = 50  # the writer's rows per flush (one WAL transaction each)
WRITER_PRICE = 1_000_000  # the writer's j-th row has price WRITER_PRICE + j


def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.05)


def wal_state(settings: Settings) -> tuple[bool, int, int]:
    """(suspended, applied, committed) WAL transactions of ``trades``."""
    with connect(settings) as conn:
        query = "SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = 'trades'"
        row = conn.execute(query).fetchone()
    assert row is not None
    return bool(row[0]), int(row[1]), int(row[2])


def count(settings: Settings, where: str = "") -> int:
    with connect(settings) as conn:
        row = conn.execute(f"SELECT count() FROM trades {where}").fetchone()
    return int(row[0]) if row else 0


class Writer(threading.Thread):
    """Writes batches of BATCH trades (one flush, one WAL transaction each) while ``go`` is set;
    ``batches`` counts the ones QuestDB confirmed. ``write_batch`` lets the test add one itself."""

    def __init__(self, settings: Settings, start_ns: int) -> None:
        super().__init__(daemon=True, name="test-writer")
        self.conf = f"http::addr=127.0.0.1:{settings.questdb.http_port};auto_flush=off;"
        self.start_ns = start_ns
        self.batches = 0
        self.go = threading.Event()
        self.idle = threading.Event()
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def write_batch(self, sender: Sender) -> None:
        with self.lock:
            for k in range(BATCH):
                j = self.batches * BATCH + k
                trade(sender, f"w{j}", WRITER_PRICE + j, self.start_ns + j * 1_000_000)
            sender.flush()
            self.batches += 1

    def pause(self) -> None:
        self.go.clear()
        wait_for("the writer to pause", self.idle.is_set)

    def run(self) -> None:
        try:
            with Sender.from_conf(self.conf) as sender:
                while not self.halt.is_set() and self.batches < 10_000:
                    if not self.go.is_set():
                        self.idle.set()
                        self.go.wait(0.05)
                        continue
                    self.idle.clear()
                    self.write_batch(sender)
                    time.sleep(0.01)
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc


def trade(sender: Sender, trade_id: str, price: float, ts_ns: int) -> None:
    sender.row(
        "trades",
        symbols={"exchange": "BINANCE", "market_type": "SPOT", "symbol": "BTC-USDT", "side": "buy"},
        columns={"price": float(price), "quantity": 1.0, "trade_id": trade_id, "sequence_number": 0},
        at=TimestampNanos(ts_ns),
    )


@dataclass
class Taken:
    settings: Settings
    result: bk.BackupResult
    visible_before: int  # rows applied when WAL apply was suspended: exactly what the checkpoint holds
    live_rows_after: int


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A migrated QuestDB of this module's own, in dev mode: the one way SQL can hold WAL apply
    back (``ALTER TABLE … SUSPEND WAL``), which the backup-while-writing test needs."""
    try:
        find_install()
    except QuestDBNotInstalledError as exc:
        if IN_CI:
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    ports = {name: free_port() for name in ("http_port", "pg_port", "ilp_tcp_port", "health_port")}
    data_dir = str(tmp_path_factory.mktemp("source") / "qdb")
    backups = str(tmp_path_factory.mktemp("backups"))
    settings = load_settings(
        env={}, overrides={"questdb": {"data_dir": data_dir, **ports}, "backup": {"dir": backups},
                           "state": {"dir": str(tmp_path_factory.mktemp("state"))}},
    )  # fmt: skip
    server = QuestDBProcess(settings.questdb)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QDB_DEV_MODE_ENABLED", "true")  # the server's environment is read at start
        server.start()
    try:
        with connect(settings) as conn:
            migrate(conn, settings)
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="module")
def taken(source: Settings) -> Taken:
    """Known trades, then a backup taken while the writer writes — also while the checkpoint is
    held: the copy waits in its first progress call until the writer confirmed another batch."""
    day0 = (time.time_ns() // DAY_NS - 1) * DAY_NS  # yesterday 00:00 UTC: two day partitions
    with Sender.from_conf(f"http::addr=127.0.0.1:{source.questdb.http_port};auto_flush=off;") as sender:
        for i in range(1, KNOWN + 1):
            trade(sender, f"k{i}", i, day0 + i * 40 * 10**9)
        sender.flush()
    wait_for("the known trades", lambda: count(source) == KNOWN)

    writer = Writer(source, day0 + (KNOWN + 1) * 40 * 10**9)
    writer.go.set()
    writer.start()
    wait_for("a first writer batch", lambda: count(source) >= KNOWN + BATCH)
    # Under load a checkpoint finds WAL transactions committed but not applied yet, which the backup
    # must leave out (they are pinned away). Make it so here: with the writer paused and QuestDB
    # caught up, suspend WAL apply (dev mode), then commit three batches that wait in the WAL.
    writer.pause()
    wait_for("QuestDB to apply every batch", lambda: (st := wal_state(source))[1] == st[2])
    with connect(source) as conn:
        conn.execute("ALTER TABLE trades SUSPEND WAL")
    visible_before = count(source)
    with Sender.from_conf(writer.conf) as sender:
        for _ in range(3):
            writer.write_batch(sender)
    suspended, applied, committed = wal_state(source)
    assert suspended and committed >= applied + 3, (suspended, applied, committed)
    resumed: list[int] = []

    def progress(done: int, total: int) -> None:  # called by the copy: the checkpoint is held
        if not resumed:
            resumed.append(writer.batches)
            writer.go.set()
            wait_for("a batch written while the checkpoint is held", lambda: writer.batches > resumed[0])

    try:
        result = bk.create_backup(source, progress=progress)
    finally:
        writer.halt.set()
        writer.join(30)
        with connect(source) as conn:
            conn.execute("ALTER TABLE trades RESUME WAL")
    assert writer.error is None, writer.error
    wait_for("every writer batch", lambda: count(source) == KNOWN + writer.batches * BATCH)
    return Taken(source, result, visible_before, count(source))


def test_manifest_holds_the_checkpointed_state(taken: Taken) -> None:
    m = taken.result.manifest
    assert m.questdb_version == bk.questdb_pin().version
    assert m.name.startswith("questdb-") and taken.result.path.name == m.name
    trades = m.table("trades")
    assert trades.exact and trades.kind == "table" and trades.ts_unit == "ns"
    assert trades.pinned and trades.sequencer_txn >= trades.applied_txn + 3  # the unapplied batches are cut
    assert trades.rows == taken.visible_before >= KNOWN + BATCH
    assert trades.rows < taken.live_rows_after  # what was written while it was held is not in it
    assert {"exchange_health", "gaps", "schema_migrations", "candles_1m"} <= {t.name for t in m.tables}
    assert m.table("candles_1m").kind == "materialized_view"
    assert any(f.path.startswith(".checkpoint/db/") for f in m.files)
    assert not any(f.path in ("questdb.pid", "questdb.log") for f in m.files)
    report = bk.verify_backup(taken.result.path)
    assert report.ok, report.problems
    with connect(taken.settings) as conn:
        assert not bk.checkpoint_in_progress(conn)


def test_restore_into_a_second_server_holds_exactly_the_manifest(taken: Taken, tmp_path: Path) -> None:
    m = taken.result.manifest
    target = tmp_path / "restored"
    target.mkdir()
    (target / "leftover").write_text("an older server's file")
    restore = ["backup", "restore", str(taken.result.path), "--data-dir", str(target)]
    refused = CliRunner().invoke(main, restore)
    assert refused.exit_code == 2 and "not empty" in refused.output, refused.output
    done = CliRunner().invoke(main, [*restore, "--force"])
    assert done.exit_code == 0, done.output
    assert (target / bk.RESTORE_TRIGGER).exists() and not (target / "leftover").exists()

    ports = {name: free_port() for name in ("http_port", "pg_port", "ilp_tcp_port", "health_port")}
    restored = dataclasses.replace(
        taken.settings, questdb=dataclasses.replace(taken.settings.questdb, data_dir=str(target), **ports)
    )
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in ports.items()]
    start = CliRunner().invoke(main, ["questdb", "start", f"--data-dir={target}", *flags])
    server = QuestDBProcess(restored.questdb)
    try:
        assert start.exit_code == 0, start.output
        assert not (target / bk.RESTORE_TRIGGER).exists()  # QuestDB restored the checkpoint and removed it
        with connect(restored) as conn:
            designated = dict(conn.execute("SELECT table_name, designatedTimestamp FROM tables()").fetchall())
            for t in m.tables:
                if not t.exact:
                    continue
                ts = designated[t.name]
                query = f'SELECT count(), min("{ts}")::long, max("{ts}")::long FROM "{t.name}"'
                rows, lo, hi = conn.execute(query).fetchone() or (0, None, None)
                assert (rows, lo if rows else None, hi if rows else None) == (t.rows, t.min_ts_raw, t.max_ts_raw), t
            known = conn.execute(f"SELECT count(), sum(price) FROM trades WHERE price <= {KNOWN}").fetchone()
            assert known == (KNOWN, KNOWN * (KNOWN + 1) / 2)
            k = m.table("trades").rows - KNOWN  # the writer's rows in the backup: whole batches, the first ones
            assert k % BATCH == 0 and KNOWN + k == taken.visible_before
            mine = conn.execute(f"SELECT count(), sum(price) FROM trades WHERE price >= {WRITER_PRICE}").fetchone()
            assert mine == (k, k * WRITER_PRICE + k * (k - 1) / 2)
            wal = conn.execute("SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = 'trades'")
            assert wal.fetchone() == (False, *(m.table("trades").applied_txn,) * 2)  # pinned: nothing replayed
    finally:
        server.stop()


def test_a_corrupted_file_fails_verify_naming_it(taken: Taken, tmp_path: Path) -> None:
    copy = tmp_path / taken.result.path.name
    for f in taken.result.manifest.files:  # hard links: the shared backup stays intact
        (copy / "data" / f.path).parent.mkdir(parents=True, exist_ok=True)
        os.link(taken.result.path / "data" / f.path, copy / "data" / f.path)
    os.link(taken.result.path / bk.MANIFEST, copy / bk.MANIFEST)
    victim = next(f.path for f in taken.result.manifest.files if f.path.endswith("/price.d"))
    data = bytearray((copy / "data" / victim).read_bytes())
    data[0] ^= 0x01
    (copy / "data" / victim).unlink()
    (copy / "data" / victim).write_bytes(bytes(data))

    result = CliRunner().invoke(main, ["backup", "verify", str(copy)])
    assert result.exit_code == 1, result.output
    assert victim in result.output and "sha256" in result.output
    assert bk.verify_backup(taken.result.path).ok


def test_the_checkpoint_is_released_when_the_copy_fails(
    source: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = bk.copy_file
    copied: list[Path] = []

    def disk_full_after_two(src: Path, dst: Path, on_bytes: object) -> tuple[int, str]:
        copied.append(src)
        if len(copied) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, on_bytes)  # type: ignore[arg-type]

    monkeypatch.setattr(bk, "copy_file", disk_full_after_two)
    with pytest.raises(BackupError, match="No space left on device"):
        bk.create_backup(source, dest=tmp_path)
    assert len(copied) == 3
    with connect(source) as conn:
        assert not bk.checkpoint_in_progress(conn)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # the partial copy is gone
    monkeypatch.setattr(bk, "copy_file", real)
    with connect(source) as conn:  # and a new checkpoint can be taken
        conn.execute("CHECKPOINT CREATE")
        conn.execute("CHECKPOINT RELEASE")


def test_a_checkpoint_held_by_someone_else_is_refused_and_left_held(source: Settings, tmp_path: Path) -> None:
    with connect(source) as conn:
        conn.execute("CHECKPOINT CREATE")
        try:
            with pytest.raises(BackupError, match="refused CHECKPOINT CREATE"):
                bk.create_backup(source, dest=tmp_path)
            assert bk.checkpoint_in_progress(conn)  # not ours to release
        finally:
            conn.execute("CHECKPOINT RELEASE")


def test_scheduler_backs_up_and_raises_an_info_alert(source: Settings, tmp_path: Path) -> None:
    sink = ListSink()
    scheduler = bk.BackupScheduler(source, sink, interval=3600, dest=tmp_path, keep_days=7)
    scheduler.start()
    try:
        wait_for("the scheduled backup", lambda: sink.alerts, timeout=60)
    finally:
        scheduler.stop()
    alert = sink.alerts[0]
    assert (alert.kind, alert.severity) == ("backup.created", "info"), alert
    backups = bk.list_backups(source, tmp_path)
    assert [b.name for b in backups] == [alert.details["name"]]
    assert scheduler.next_due is not None and scheduler.next_due > time.time() + 3000


def script_env(settings: Settings, tmp_path: Path, **backup: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPWATCH_") and k != "QDB_CLIENT_CONF"}
    q = settings.questdb
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        PUMPWATCH_STATE_DIR=str(tmp_path / "state"),
        PUMPWATCH_QUESTDB_DATA_DIR=q.data_dir,
        PUMPWATCH_QUESTDB_HTTP_PORT=str(q.http_port),
        PUMPWATCH_QUESTDB_PG_PORT=str(q.pg_port),
        PUMPWATCH_QUESTDB_ILP_TCP_PORT=str(q.ilp_tcp_port),
        PUMPWATCH_QUESTDB_HEALTH_PORT=str(q.health_port),
    )
    env.update({f"PUMPWATCH_BACKUP_{k.upper()}": v for k, v in backup.items()})
    return env


def test_backup_script_creates_an_archive_and_prunes(source: Settings, tmp_path: Path) -> None:
    compress = "zstd" if zstd_available() else "gzip"
    dest = tmp_path / "nightly"
    old = dest / "questdb-20200101T000000Z"
    old.mkdir(parents=True)
    stale = bk.Manifest("questdb-20200101T000000Z", "2020-01-01T00:00:00Z", "9.3.4", "none", "", [], [], [])
    (old / bk.MANIFEST).write_text(stale.to_json())
    env = script_env(source, tmp_path, dir=str(dest), compress=compress, keep_days="7")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "backup-questdb.sh")], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    backups = bk.list_backups(source, dest)
    assert len(backups) == 1 and backups[0].manifest.compress == compress  # the 2020 one was pruned
    assert (backups[0].path / bk.ARCHIVES[compress]).is_file() and not (backups[0].path / "data").exists()
    assert bk.verify_backup(backups[0].path).ok
    result = bk.restore_backup(backups[0].path, tmp_path / "from-archive")  # checks every member as written
    assert result.files == len(backups[0].manifest.files) and (tmp_path / "from-archive" / bk.RESTORE_TRIGGER).exists()

    env["PUMPWATCH_QUESTDB_PG_PORT"] = str(free_port())  # nothing answers there
    failed = subprocess.run(["bash", str(ROOT / "scripts" / "backup-questdb.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert failed.returncode != 0 and "error:" in failed.stderr, failed.stdout + failed.stderr
