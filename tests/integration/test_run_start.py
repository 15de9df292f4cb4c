"""``pumpwatch run`` at start-up: it checks the schema and never changes it, prints where its files
are, and shows losses it finds in the spool — the real command, as a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from questdb_ingest.connectors import SyntheticMarket
from questdb_ingest.resources import resource
from questdb_ingest.sender.codec import encode_batch
from questdb_ingest.sender.spool import HEADER_BYTES, Spool
from questdb_ingest.store.migrations import discover, migrate

from ..conftest import QuestDB, scoped_settings

pytestmark = pytest.mark.questdb


def _run(qdb: QuestDB, prefix: str, state: Path, *args: str, demo_prefix: str = "") -> subprocess.CompletedProcess[str]:
    """The real command; ``demo_prefix`` "" makes synthetic trades use the production tables under test."""
    env = dict(os.environ)
    env.update(
        PUMPWATCH_SCHEMA_TABLE_PREFIX=prefix,
        PUMPWATCH_SCHEMA_DEMO_PREFIX=demo_prefix,
        PUMPWATCH_STATE_DIR=str(state),
        PUMPWATCH_QUESTDB_PG_PORT=str(qdb.settings.questdb.pg_port),
        PUMPWATCH_QUESTDB_HTTP_PORT=str(qdb.settings.questdb.http_port),
        PUMPWATCH_SENDER_WORKERS="1",
    )
    cmd = [sys.executable, "-m", "questdb_ingest.cli", "run", "--source", "synthetic", "--rate", "200", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _ttl_days(qdb: QuestDB, table: str) -> tuple[int, str]:
    with qdb.conn() as conn:
        row = conn.execute("SELECT ttlValue, ttlUnit FROM tables() WHERE table_name = %s", (table,)).fetchone()
    assert row is not None
    return int(str(row[0])), str(row[1])


def test_run_refuses_an_out_of_date_schema_and_migrate_applies_it(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    refused = _run(qdb, prefix, tmp_path / "state", "--seconds", "1")
    assert refused.returncode == 1, refused.stderr
    migrations = discover(resource("schema"))
    assert f"{len(migrations)} pending migration(s)" in refused.stderr and "pumpwatch db migrate" in refused.stderr
    assert "nothing was captured" in refused.stderr and "Traceback" not in refused.stderr
    with qdb.conn() as conn:
        assert conn.execute("SELECT count() FROM tables() WHERE table_name LIKE %s", (f"{prefix}%",)).fetchone() == (0,)
    applied = _run(qdb, prefix, tmp_path / "state", "--seconds", "2", "--migrate")
    assert applied.returncode == 0, applied.stderr
    assert "applied " + ", ".join(m.path.name for m in migrations) in applied.stderr


def test_run_never_changes_a_tables_ttl(qdb: QuestDB, tmp_path: Path) -> None:
    """Started where the operator's config (ttl_days = 60) is not found, run must not fall back to
    30 days and let QuestDB drop a month of partitions."""
    prefix = qdb.new_prefix()
    with qdb.conn() as conn:
        migrate(conn, scoped_settings(prefix, schema={"ttl_days": 60}))
    assert _ttl_days(qdb, f"{prefix}trades") == (60, "DAY")
    done = _run(qdb, prefix, tmp_path / "state", "--seconds", "2")
    assert done.returncode == 0, done.stderr
    assert _ttl_days(qdb, f"{prefix}trades") == (60, "DAY")
    assert f"{prefix}trades: TTL 60 → 30 days" in done.stderr and "run does not change it" in done.stderr


def test_run_prints_its_paths_and_shows_quarantined_spool_rows(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    with qdb.conn() as conn:
        migrate(conn, scoped_settings(prefix))
    state = tmp_path / "state"
    spool = Spool(state / "spool" / "shard-0")
    market = SyntheticMarket(symbols=5, seed=8, run_id="quarantine")
    for _ in range(3):
        spool.append(encode_batch(market.batch(400)).to_pybytes(), 400)
    spool.close()
    segment = next((state / "spool" / "shard-0").glob("*.seg"))
    os.truncate(segment, segment.stat().st_size - HEADER_BYTES)  # the last record torn
    done = _run(qdb, prefix, state, "--seconds", "3", "--rate", "0", "--burst-rate", "0")
    assert done.returncode == 0, done.stderr
    assert f"spool: {state / 'spool'}" in done.stderr.replace("  ", " ")
    assert f"state: {state}" in done.stderr.replace("  ", " ")
    out = " ".join(done.stdout.split())
    assert "NOT balanced: 400 row(s) quarantined from the spool" in out
    assert "ALARM 400 spooled row(s) were quarantined as damaged and are not stored" in out
    assert "recovered 800" in out and "replayed 800" in out


def _pumpwatch(qdb: QuestDB, prefix: str, state: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Any command as a child (output piped, as under systemd), with this test's tables and state and
    the default demo prefix."""
    env = {k: v for k, v in os.environ.items() if k != "PUMPWATCH_SCHEMA_DEMO_PREFIX"}
    env.update(extra)
    env.update(
        PUMPWATCH_SCHEMA_TABLE_PREFIX=prefix,
        PUMPWATCH_STATE_DIR=str(state),
        PUMPWATCH_QUESTDB_PG_PORT=str(qdb.settings.questdb.pg_port),
        PUMPWATCH_QUESTDB_HTTP_PORT=str(qdb.settings.questdb.http_port),
        PUMPWATCH_SENDER_WORKERS="1",
    )
    cmd = [sys.executable, "-m", "questdb_ingest.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _tables(qdb: QuestDB, prefix: str) -> dict[str, int]:
    """Rows per trades-like table under ``prefix`` (a missing table is absent)."""
    with qdb.conn() as conn:
        names = [
            str(r[0])
            for r in conn.execute("SELECT table_name FROM tables() WHERE table_name LIKE %s", (f"{prefix}%trades",))
        ]
        out: dict[str, int] = {}
        for name in names:
            row = conn.execute(f'SELECT count() FROM "{name}"').fetchone()
            out[name] = int(str(row[0])) if row else 0
    return out


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--source", "synthetic", "--rate", "300", "--seconds", "2"),
        ("demo", "--trades", "2000", "--symbols", "20"),
        ("load", "--duration", "1", "--base-rate", "500", "--symbols", "20"),
    ],
    ids=["run-synthetic", "demo", "load"],
)
def test_generated_trades_go_to_the_demo_tables_never_the_production_ones(
    qdb: QuestDB, tmp_path: Path, args: tuple[str, ...]
) -> None:
    prefix = qdb.new_prefix()
    done = _pumpwatch(qdb, prefix, tmp_path / "state", *args)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    hint = f"query it with PUMPWATCH_SCHEMA_TABLE_PREFIX={prefix}demo_"
    assert f"trades table: {prefix}demo_trades (generated data; {hint})" in said
    tables = _tables(qdb, prefix)
    assert f"{prefix}trades" not in tables  # nothing under the production name
    assert tables.get(f"{prefix}demo_trades", 0) > 0
    with qdb.conn() as conn:  # created by the migrations (DEDUP keys), not by an ILP auto-create
        row = conn.execute("SELECT dedup FROM tables() WHERE table_name = %s", (f"{prefix}demo_trades",)).fetchone()
    assert row == (True,)


def test_the_demo_prefix_is_overridable_and_empty_means_the_production_tables(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    other = _pumpwatch(qdb, prefix, tmp_path / "a", "demo", "--trades", "500", "--symbols", "5", "--demo-prefix", "x_")
    assert other.returncode == 0, other.stderr
    assert _tables(qdb, prefix) == {f"{prefix}x_trades": 500}
    with qdb.conn() as conn:
        migrate(conn, scoped_settings(prefix))
    prod = _pumpwatch(qdb, prefix, tmp_path / "b", "demo", "--trades", "300", "--symbols", "5", "--demo-prefix", "")
    assert prod.returncode == 0, prod.stderr
    assert "into the PRODUCTION tables" in prod.stderr
    assert _tables(qdb, prefix) == {f"{prefix}x_trades": 500, f"{prefix}trades": 300}
    bad = _pumpwatch(qdb, prefix, tmp_path / "c", "demo", "--demo-prefix", "no-dash")
    assert bad.returncode == 2 and "schema.demo_prefix" in bad.stderr and "Traceback" not in bad.stderr


def test_a_piped_run_logs_its_own_lines_a_status_line_and_prints_whole_tables(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    log_file = tmp_path / "pumpwatch.log"
    args = ["--log-format", "json", "--log-file", str(log_file), "run", "--source", "replay"]
    args += ["--connectors", "binance_spot,okx_spot", "--seconds", "4"]
    done = _pumpwatch(qdb, prefix, tmp_path / "state", *args, PUMPWATCH_LOG_STATUS_INTERVAL="0.5")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    main_info = {r["message"] for r in records if r["process"] == "main" and r["level"] == "INFO"}
    assert "binance_spot: 10 instruments on 1 connection(s)" in main_info  # a main-process INFO line
    status = [m for m in main_info if "trades received" in m and "confirmed" in m]
    assert status, main_info  # piped: status lines instead of a live view that prints nothing
    assert [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()] == records
    header = next(line for line in done.stdout.splitlines() if "connector" in line and "status" in line)
    for column in ("lag p50", "lag p99", "unsent", "backfilled", "last error"):
        assert column in header  # not cut at 120 columns
    assert "…" not in done.stdout

    replay = ["run", "--source", "replay", "--connectors", "binance_spot", "--seconds", "1"]
    quiet = _pumpwatch(qdb, prefix, tmp_path / "state", "--log-level", "warning", *replay)
    assert quiet.returncode == 0, quiet.stderr
    assert "instruments on" not in quiet.stderr


def test_a_bad_log_setting_is_refused_naming_the_key(qdb: QuestDB, tmp_path: Path) -> None:
    bad = _pumpwatch(qdb, qdb.new_prefix(), tmp_path, "db", "status", PUMPWATCH_LOG_FORMAT="xml")
    assert bad.returncode == 2 and "log.format" in bad.stderr and "Traceback" not in bad.stderr


def test_a_wrong_questdb_password_says_authentication_failed(qdb: QuestDB, tmp_path: Path) -> None:
    """The real QuestDB's refusal ("invalid username/password"), not the hint to start a server."""
    done = _pumpwatch(qdb, qdb.new_prefix(), tmp_path, "db", "status", PUMPWATCH_QUESTDB_PASSWORD="not it")
    assert done.returncode == 1, done.stderr
    assert "authentication failed" in done.stderr and "questdb start" not in done.stderr
    assert "not it" not in done.stderr and "Traceback" not in done.stderr


def test_a_killed_run_leaves_no_replay_server_or_api_behind(qdb: QuestDB, tmp_path: Path) -> None:
    """SIGKILL ``pumpwatch run --source replay``: the replay server it started (PR_SET_PDEATHSIG) and
    its API process (it watches its parent) both exit, so nothing keeps running or holds a port."""
    import signal
    import time

    env = dict(os.environ)
    env.update(PUMPWATCH_SCHEMA_TABLE_PREFIX=qdb.new_prefix(), PUMPWATCH_STATE_DIR=str(tmp_path),
               PUMPWATCH_SENDER_WORKERS="1", PUMPWATCH_API_PORT="0")  # fmt: skip
    cmd = [sys.executable, "-m", "questdb_ingest", "run", "--source", "replay", "--connectors", "binance_spot",
           "--seconds", "120"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the API line comes once every part is up
            if "api: http" in line:
                break
        children = _children(proc.pid)
        names = {pid: _cmdline(pid) for pid in children}
        replay = [pid for pid, c in names.items() if "replay-server" in c]
        api = [pid for pid, c in names.items() if "multiprocessing" in c and pid not in replay]
        assert replay, names
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(_running(p) for p in replay + api) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in replay + api if _running(p)] == []
    finally:
        proc.kill()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        state = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]
