"""The snapshot channel between the service and its API process, and the API process's lifetime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest

from questdb_ingest.api.channel import SnapshotChannel, SnapshotTooLargeError, decode, encode
from questdb_ingest.app.snapshot import QuestDBSnapshot, SchemaSnapshot, ServiceSnapshot
from questdb_ingest.histogram import Histogram
from questdb_ingest.sender.metrics import Books, SenderMetrics


def _snapshot(received: int) -> ServiceSnapshot:
    delay = Histogram()
    delay.add_many(np.array([1.0, 2.0, 300.0]))
    sender = SenderMetrics(
        1.0, 1, "http", Books(received, 0, received, 0, 0, 0, 0), 0, 0, 0.0, {}, [], {}, {},
        histograms={"delay": delay, "flush": Histogram()},
    )  # fmt: skip
    q = QuestDBSnapshot("127.0.0.1", 9000, 8812, True, "9.3.4", None, "/d", 10, 5, 0.5, True, "")
    return ServiceSnapshot(
        version="x", taken_ns=1, state="running", source="synthetic", started=None, uptime_s=1.0, received=received,
        trades_per_s=1.0, unsent=0, feeds=[], schema=SchemaSnapshot("ok", ""), questdb=q, hybrid=None, alarms=[],
        api_url="", failure="", sender=sender,
    )  # fmt: skip


def test_the_reader_gets_the_newest_snapshot_with_its_histograms() -> None:
    channel = SnapshotChannel.create(size=1 << 20)
    reader = SnapshotChannel.attach(channel.name)
    try:
        assert reader.read() is None
        for n in (10, 20):
            channel.publish(encode(_snapshot(n), [{"kind": "k", "n": n}]))
        payload = reader.read()
        assert payload is not None
        snap, alerts = decode(payload)
        assert snap.received == 20 and alerts == [{"kind": "k", "n": 20}]
        assert snap.sender is not None and snap.sender.histograms["delay"].count == 3
        assert snap.sender.histograms["delay"].max_ms == 300.0
    finally:
        reader.close()
        channel.close()


def test_a_snapshot_too_large_is_refused_and_the_previous_one_stays() -> None:
    channel = SnapshotChannel.create(size=4096)
    try:
        channel.publish(b"small")
        with pytest.raises(SnapshotTooLargeError):
            channel.publish(b"x" * 5000)
        assert channel.read() == b"small"
    finally:
        channel.close()


def test_the_api_process_exits_when_the_service_process_dies() -> None:
    """SIGKILL the service: its API child notices its parent is gone, exits, frees the port."""
    code = textwrap.dedent(
        """
        import dataclasses, sys, time
        from questdb_ingest.api import ApiServer
        from questdb_ingest.config import load_settings
        s = load_settings(env={})
        s = dataclasses.replace(s, api=dataclasses.replace(s.api, port=0))
        api = ApiServer(s).start()
        print(api.pid, api.port, flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid, port = (int(x) for x in proc.stdout.readline().split())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=10) as resp:  # it serves
            assert resp.status == 200
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


def test_prometheus_exposes_the_maintenance_jobs_and_the_alert_path() -> None:
    from msgspec.structs import replace
    from prometheus_client.parser import text_string_to_metric_families

    from questdb_ingest.api.prometheus import exposition, registry_for

    snap = replace(
        _snapshot(5),
        alert_stats={"emitted": 4, "sent": 3, "failed": 1},
        maintenance={"retention": {"dropped": 2, "still_above_emergency": True},
                     "backup": {"last_error": "disk full", "last_bytes": 1024}},
    )  # fmt: skip
    body, kind = exposition(registry_for(lambda: snap))
    assert kind.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }
    assert samples[("pumpwatch_alerts_total", (("outcome", "sent"),))] == 3
    assert samples[("pumpwatch_alerts_total", (("outcome", "dropped"),))] == 0
    assert samples[("pumpwatch_retention_dropped_partitions", ())] == 2
    assert samples[("pumpwatch_retention_above_emergency", ())] == 1
    assert samples[("pumpwatch_backup_failing", ())] == 1
    assert samples[("pumpwatch_backup_last_bytes", ())] == 1024
    assert samples[("pumpwatch_trade_delay_seconds_count", ())] == 3  # the sender's HDR histogram
    assert samples[("pumpwatch_trade_delay_seconds_bucket", (("le", "0.05"),))] == 2  # 1 ms and 2 ms, not 300


def test_data_endpoints_answer_503_when_questdb_is_unreachable() -> None:
    """The routes over a snapshot, with QuestDB's PGWire port closed: state endpoints still answer,
    data endpoints say 503 with the reason (never a 500 with a traceback)."""
    import asyncio
    import dataclasses

    from aiohttp.test_utils import TestClient, TestServer

    from questdb_ingest.api.server import ApiApp
    from questdb_ingest.config import load_settings
    from questdb_ingest.connectors.replay_process import free_port

    base = load_settings(env={})
    settings = dataclasses.replace(base, questdb=dataclasses.replace(base.questdb, pg_port=free_port()))
    snap = _snapshot(3)

    class View:
        def __init__(self) -> None:
            self.settings = settings

        def latest(self) -> ServiceSnapshot:
            return snap

        def recent_alerts(self, limit: int) -> list[dict[str, object]]:
            return []

    async def scenario() -> dict[str, tuple[int, str]]:
        async with TestClient(TestServer(ApiApp(View(), settings).application())) as client:
            out = {}
            for path in ("/api/metrics", "/api/trades/recent?limit=5", "/api/gaps?since=1h", "/api/listings"):
                resp = await client.get(path)
                out[path] = (resp.status, (await resp.json()).get("error", "") if resp.status != 200 else "")
            return out

    got = asyncio.run(scenario())
    assert got["/api/metrics"] == (200, "")
    for path in ("/api/trades/recent?limit=5", "/api/gaps?since=1h", "/api/listings"):
        assert got[path][0] == 503 and "QuestDB" in got[path][1], got
