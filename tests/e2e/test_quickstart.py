"""The README's first command is the real main job: ``pumpwatch run --source replay --hybrid-mode
--list-coin``, the command ``scripts/quickstart.sh`` runs, as a child process with short windows —
the connectors through the replay server, a listing injected and collected, what landed per venue
read back, the API URL printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB, scoped_settings

pytestmark = [pytest.mark.questdb, pytest.mark.slow]


def test_the_quickstart_command_captures_detects_and_reports(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    with connect(scoped_settings(prefix + "demo_")) as conn:
        migrate(conn, scoped_settings(prefix + "demo_"))
    env = dict(os.environ)
    env.update(
        PUMPWATCH_SCHEMA_TABLE_PREFIX=prefix,
        PUMPWATCH_STATE_DIR=str(tmp_path),
        PUMPWATCH_HYBRID_WINDOW_BEFORE="3",
        PUMPWATCH_HYBRID_WINDOW_AFTER="3",
        PUMPWATCH_HYBRID_WINDOW_SETTLE="1",
        PUMPWATCH_CONNECTORS_ENABLED="binance_spot,okx_futures,upbit_spot,bithumb_spot",
        COLUMNS="400",
    )
    env.pop("PUMPWATCH_SCHEMA_DEMO_PREFIX", None)
    cmd = [sys.executable, "-m", "questdb_ingest", "run", "--source", "replay", "--hybrid-mode", "--seconds", "16",
           "--list-coin", "QSTEST", "--list-after", "3", "--api-port", "0", "--rate", "200", "--json",
           str(tmp_path / "run.json")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"api: http://127\.0\.0\.1:\d+/api/health", proc.stderr), proc.stderr[-2000:]
    out = proc.stdout
    report = json.loads((tmp_path / "run.json").read_text())
    received = report["outcome"]["received"]
    assert received > 0 and report["outcome"]["lost"] == 0
    landed = re.search(r"│ all\s+│\s+│\s+([\d,]+) │", out)
    assert landed is not None, out[-3000:]
    assert int(landed.group(1).replace(",", "")) == received  # every trade received is in QuestDB
    (listing,) = report["hybrid"]["listings"]
    assert listing["base"] == "QSTEST" and listing["status"] == "collected"
    assert set(listing["counts"]) >= {"binance_spot", "okx_futures", "bithumb_spot"}
    assert "QSTEST-KRW" in out and "collected" in out
