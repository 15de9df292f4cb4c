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
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB, scoped_settings

pytestmark = [pytest.mark.questdb, pytest.mark.slow]

ENDPOINTS = ("/api/system/status", "/api/metrics", "/api/feeds", "/api/trades/recent?limit=5", "/api/listings",
             "/api/gaps?since=1h", "/api/alerts", "/api/snapshot", "/metrics")  # fmt: skip


def _api_url(lines: list[str], timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            if m := re.search(r"api: (http://127\.0\.0\.1:\d+)/api/health", line):
                return m.group(1)
        time.sleep(0.2)
    raise AssertionError("no API URL printed: " + "".join(lines)[-2000:])


def _every_endpoint(url: str) -> dict[str, int]:
    """Every endpoint while the run captures (health: 200 once every feed is up and writes confirm)."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 30
    while _status(url + "/api/health") != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    served = {"/api/health": _status(url + "/api/health")}
    for path in ENDPOINTS:
        served[path] = _status(url + path)
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        names = {s.name for fam in text_string_to_metric_families(resp.read().decode()) for s in fam.samples}
    assert "pumpwatch_trades_received_total" in names and "pumpwatch_ring_buffer_rows" in names
    listings: list[dict[str, object]] = []
    while not listings and time.monotonic() < deadline + 15:  # the injected listing, once recorded
        with urllib.request.urlopen(url + "/api/listings", timeout=10) as resp:
            listings = json.loads(resp.read())
        time.sleep(0.5)
    assert listings, "the listing never reached /api/listings"
    served["/api/listings/{id}/window"] = _status(f"{url}/api/listings/{listings[0]['id']}/window")
    return served


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_the_quickstart_command_captures_detects_and_reports(qdb: QuestDB, tmp_path: Path) -> None:
    prefix = qdb.new_prefix()
    with connect(scoped_settings(prefix + "demo_")) as conn:
        migrate(conn, scoped_settings(prefix + "demo_"))
    env = dict(os.environ)
    env.update(
        PUMPWATCH_SCHEMA_TABLE_PREFIX=prefix,
        PUMPWATCH_STATE_DIR=str(tmp_path),
        PUMPWATCH_HYBRID_WINDOW_BEFORE="2",
        PUMPWATCH_HYBRID_WINDOW_AFTER="2",
        PUMPWATCH_HYBRID_WINDOW_SETTLE="0.5",
        PUMPWATCH_CONNECTORS_ENABLED="binance_spot,okx_futures,upbit_spot,bithumb_spot",
        COLUMNS="400",
    )
    env.pop("PUMPWATCH_SCHEMA_DEMO_PREFIX", None)
    cmd = [sys.executable, "-m", "questdb_ingest", "run", "--source", "replay", "--hybrid-mode", "--seconds", "13",
           "--list-coin", "QSTEST", "--list-after", "2", "--api-port", "0", "--rate", "200", "--json",
           str(tmp_path / "run.json")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        url = _api_url(err_lines)
        served = _every_endpoint(url)
        out, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    reader.join(timeout=10)
    stderr = "".join(err_lines)
    assert proc.returncode == 0, stderr[-3000:]
    assert served == {path: 200 for path in ("/api/health", *ENDPOINTS, "/api/listings/{id}/window")}, served
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
