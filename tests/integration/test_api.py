"""The HTTP API and ``/metrics`` of a running ``Service`` against the real QuestDB: a synthetic
source writes trades, known listing/gap rows are inserted, and every endpoint is read back over
real HTTP and compared with what QuestDB holds."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from questdb_ingest.app import Service, ServiceOptions
from questdb_ingest.config import Settings
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import wait_visible

from ..conftest import QuestDB, scoped_settings

pytestmark = pytest.mark.questdb

# A listing trigger an hour ago (µs-exact: listing_events keeps µs; recent: the tables' TTL keeps it).
LISTING_NS = (time.time_ns() - 3600 * 1_000_000_000) // 1000 * 1000
S = 1_000_000_000


def _get(url: str) -> tuple[int, Any, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, (json.loads(body) if "json" in kind else body), kind
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode()), err.headers.get("Content-Type", "")


class Running:
    """A service on a thread of its own (its event loop), stopped at teardown."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            await self.service.run(None, stop=self.stop_event)

        asyncio.run(main())

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=60)
        self.service.stop()


def _seed(settings: Settings) -> None:
    """One listing with trades in and out of its ±20 s window on two venues, and one gap."""
    trades = settings.table("trades")
    rows = [  # (ts offset s, exchange, symbol): two inside on binance, one on okx, one outside
        (-19, "binance", "NEWC-USDT"), (5, "binance", "NEWC-USDT"), (20, "okx", "NEWC-USDT"), (21, "okx", "NEWC-USDT"),
    ]  # fmt: skip
    with connect(settings) as conn:
        for i, (off, exchange, symbol) in enumerate(rows):
            conn.execute(
                f'INSERT INTO "{trades}" (ts, exchange, market_type, symbol, price, quantity, side, trade_id) '
                "VALUES (%s::timestamp_ns, %s, 'spot', %s, 1.5, 2.0, 'buy', %s)",
                [LISTING_NS + off * S, exchange, symbol, f"api-{i}"],
            )
        conn.execute(
            f'INSERT INTO "{settings.table("listing_events")}" (ts, symbol, detected_at, trigger_delay_ms, '
            "collected_trades, exchanges_with_data) VALUES (%s::timestamp_ns, 'NEWC', %s::timestamp_ns, 120, 3, 2)",
            [LISTING_NS, LISTING_NS + S],
        )
        conn.execute(
            f'INSERT INTO "{settings.table("gaps")}" (gap_start_ts, gap_end_ts, gap_ms, exchange, market_type, scope, '
            "reason, filled, backfilled_trades, symbols) VALUES "
            "(now() - 600000000L, now() - 590000000L, 10000, 'bybit', 'spot', 'bybit_spot#0', 'drill', true, 7, 3)"
        )
        for name in ("trades", "listing_events", "gaps"):
            wait_visible(conn, settings.table(name))


@pytest.fixture(scope="module")
def running(qdb_session: QuestDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    prefix = qdb_session.new_prefix()
    state = tmp_path_factory.mktemp("api-state")
    base = scoped_settings(prefix)
    settings = replace(
        base,
        api=replace(base.api, port=0),
        sender=replace(base.sender, spool_dir=str(state / "spool"), workers=1),
        state=replace(base.state, dir=str(state)),
    )
    with connect(settings) as conn:
        migrate(conn, settings)
    _seed(settings)
    service = Service(settings, ServiceOptions(source="synthetic", rate=500, burst_rate=0, workers=1)).start()
    run = Running(service)
    run.thread.start()
    deadline = time.monotonic() + 60
    while (service.latest().received < 200 or not service.latest().trades_per_s) and time.monotonic() < deadline:
        time.sleep(0.2)
    yield run
    run.stop()


def _url(run: Running, path: str) -> str:
    assert run.service.api is not None
    return f"{run.service.api.url}{path}"


def test_health_is_200_when_questdb_confirms_writes(running: Running) -> None:
    deadline = time.monotonic() + 30
    status, body, _ = _get(_url(running, "/api/health"))
    while status != 200 and time.monotonic() < deadline:  # the first confirmation may still be in flight
        time.sleep(0.5)
        status, body, _ = _get(_url(running, "/api/health"))
    assert (status, body["status"], body["problems"]) == (200, "ok", [])
    assert body["questdb_writes_confirmed"] is True


def test_status_and_dashboard_metrics(running: Running) -> None:
    status, body, kind = _get(_url(running, "/api/system/status"))
    assert status == 200 and kind.startswith("application/json")
    assert body["state"] == "running" and body["source"] == "synthetic"
    assert body["questdb"]["reachable"] is True and body["questdb"]["version"].count(".") >= 1
    assert body["spool"]["dir"].endswith("spool") and [w["shard"] for w in body["workers"]] == [0]
    status, dash, _ = _get(_url(running, "/api/metrics"))
    assert status == 200
    assert dash["received"] >= 200 and dash["trades_per_second"] > 0
    assert 0 < dash["disk"]["used_ratio"] < 1 and dash["questdb"]["reachable"] is True


def test_recent_trades_come_from_questdb(running: Running) -> None:
    status, rows, _ = _get(_url(running, "/api/trades/recent?symbol=NEWC-USDT&limit=10"))
    assert status == 200
    assert [(r["exchange"], r["trade_id"]) for r in rows] == [("okx", "api-3"), ("okx", "api-2"), ("binance", "api-1"),
                                                               ("binance", "api-0")]  # fmt: skip
    status, rows, _ = _get(_url(running, "/api/trades/recent?limit=3"))
    assert status == 200 and len(rows) == 3 and rows[0]["ts_ns"] >= rows[-1]["ts_ns"]


def test_bad_parameters_are_400_naming_them(running: Running) -> None:
    status, body, _ = _get(_url(running, "/api/trades/recent?limit=0"))
    assert status == 400 and "limit" in body["error"]
    status, body, _ = _get(_url(running, "/api/trades/recent?exchange=nasdaq"))
    assert status == 400 and "nasdaq" in body["error"]
    status, body, _ = _get(_url(running, "/api/gaps?since=yesterday-ish"))
    assert status == 400 and "since" in body["error"]


def test_listings_with_their_window_counts(running: Running) -> None:
    status, listings, _ = _get(_url(running, "/api/listings"))
    assert status == 200
    (listing,) = listings
    assert listing["id"] == f"NEWC-{LISTING_NS}" and listing["counts"] == {"binance_spot": 2, "okx_spot": 1}
    status, window, _ = _get(_url(running, f"/api/listings/{listing['id']}/window"))
    assert status == 200 and window["counts"] == {"binance_spot": 2, "okx_spot": 1}
    assert [r["trade_id"] for r in window["venues"]["binance_spot"]] == ["api-0", "api-1"]
    status, body, _ = _get(_url(running, f"/api/listings/NEWC-{LISTING_NS + 1000}/window"))
    assert status == 404 and "no listing" in body["error"]


def test_gaps_since(running: Running) -> None:
    status, gaps, _ = _get(_url(running, "/api/gaps?since=1h"))
    assert status == 200
    assert [(g["exchange"], g["scope"], g["backfilled_trades"], g["filled"]) for g in gaps] == [
        ("bybit", "bybit_spot#0", 7, True)
    ]
    status, gaps, _ = _get(_url(running, "/api/gaps?since=5m"))
    assert (status, gaps) == (200, [])


def _confirmed(running: Running) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = running.service.latest().sender
        if m is not None and m.books.confirmed:
            return m.books.confirmed
        time.sleep(0.2)
    raise AssertionError("QuestDB confirmed nothing in 30 s")


def test_prometheus_metrics_parse_and_match_the_books(running: Running) -> None:
    floor = _confirmed(running)
    status, text, kind = _get(_url(running, "/metrics"))
    assert status == 200 and kind.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    names = {name for name, _ in samples}
    for expected in (
        "pumpwatch_rows_confirmed_total", "pumpwatch_spool_bytes", "pumpwatch_questdb_up",
        "pumpwatch_trade_delay_seconds_bucket", "pumpwatch_flush_duration_seconds_count", "pumpwatch_build_info",
        "pumpwatch_questdb_disk_used_ratio", "pumpwatch_sender_queue_rows",
    ):  # fmt: skip
        assert expected in names, expected
    confirmed = sum(v for (n, _), v in samples.items() if n == "pumpwatch_rows_confirmed_total")
    assert confirmed >= floor  # counters from the same books, scraped after
    assert samples[("pumpwatch_questdb_up", ())] == 1.0
    buckets = sorted(
        (float(dict(lbl)["le"]), v) for (n, lbl), v in samples.items() if n == "pumpwatch_trade_delay_seconds_bucket"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == samples[("pumpwatch_trade_delay_seconds_count", ())] > 0


def test_snapshot_endpoint_is_the_typed_snapshot(running: Running) -> None:
    from questdb_ingest.cli.top import fetch_snapshot

    assert running.service.api is not None
    snap = fetch_snapshot(running.service.api.url)
    assert snap.state == "running" and snap.source == "synthetic" and snap.sender is not None
    assert snap.sender.books.received >= 200 and snap.healthy == (not snap.health_problems())


def test_health_is_503_with_the_reasons_when_feeds_are_down(qdb: QuestDB, tmp_path: Path) -> None:
    """A replay URL where nothing listens: every feed fails to connect, health names them."""
    base = scoped_settings(qdb.prefix)
    settings = replace(
        base,
        api=replace(base.api, port=0),
        sender=replace(base.sender, spool_dir=str(tmp_path / "spool"), workers=1),
        connectors=replace(base.connectors, enabled="binance_spot,okx_spot"),
        alerts=replace(base.alerts, feed_down_after=1.0),
    )
    options = ServiceOptions(source="replay", replay_url="http://127.0.0.1:9", workers=1)
    service = Service(settings, options).start()
    run = Running(service)
    run.thread.start()
    try:
        deadline = time.monotonic() + 20
        status, body, _ = _get(_url(run, "/api/health"))
        while len(body.get("feeds", {})) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            status, body, _ = _get(_url(run, "/api/health"))
        assert status == 503 and body["status"] == "unhealthy"
        assert {p for p in body["problems"] if p.startswith("feed ")} == {
            f"feed {name} is {body['feeds'][name]}" for name in ("binance_spot", "okx_spot")
        }
        assert set(body["feeds"].values()) <= {"disconnected", "error"}
        # ... and the one alert path raised "feed down" for each, visible at /api/alerts
        kinds: set[tuple[str, str]] = set()
        while len(kinds) < 2 and time.monotonic() < deadline + 10:
            _, alerts, _ = _get(_url(run, "/api/alerts"))
            kinds = {(a["kind"], a["key"]) for a in alerts if a["kind"] == "feed.down"}
            time.sleep(0.3)
        assert kinds == {("feed.down", "binance_spot"), ("feed.down", "okx_spot")}
    finally:
        run.stop()


def test_capture_goes_on_when_the_api_process_is_killed(qdb: QuestDB, tmp_path: Path) -> None:
    """SIGKILL the API child mid-run: the service keeps publishing into the channel (never waits on
    a reader), keeps capturing, and stops with every trade stored."""
    import os
    import signal

    base = scoped_settings(qdb.prefix)
    settings = replace(
        base,
        api=replace(base.api, port=0),
        sender=replace(base.sender, spool_dir=str(tmp_path / "spool"), workers=1),
        state=replace(base.state, dir=str(tmp_path)),
    )
    service = Service(settings, ServiceOptions(source="synthetic", rate=500, burst_rate=0, workers=1)).start()
    run = Running(service)
    run.thread.start()
    try:
        assert service.api is not None and service.api.pid is not None
        status, _, _ = _get(_url(run, "/api/metrics"))
        assert status == 200
        os.kill(service.api.pid, signal.SIGKILL)
        before = service.latest().received
        deadline = time.monotonic() + 30
        while service.latest().received < before + 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert service.latest().received >= before + 1000  # 2 s more of trades after the kill
        assert run.thread.is_alive()
    finally:
        run.stop()
    outcome = service.stop()
    assert outcome.received > 0 and outcome.lost == 0 and outcome.metrics.books.balanced
