"""The Grafana dashboard and Prometheus files in docker/ against the real ``/metrics`` exposition.

A dashboard query naming a metric the service does not export shows "No data" forever, and nothing
else notices; so the metric names (and labels) in every query are checked against what
``questdb_ingest.api.prometheus`` produces for a snapshot with every part present.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from questdb_ingest.api.prometheus import registry_for
from questdb_ingest.app.snapshot import (
    FeedSnapshot,
    HybridSnapshot,
    QuestDBSnapshot,
    SchemaSnapshot,
    ServiceSnapshot,
)
from questdb_ingest.config import ApiSettings
from questdb_ingest.histogram import Histogram
from questdb_ingest.sender.metrics import Books, ExchangeMetrics, SenderMetrics, WorkerMetrics

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DASHBOARD = DOCKER / "grafana" / "pumpwatch-dashboard.json"
DS_VARIABLE = "${datasource}"
METRIC = re.compile(r"\bpumpwatch_[a-z0-9_]+")
RATE_OF = re.compile(r"\b(?:rate|increase)\(\s*(pumpwatch_[a-z0-9_]+)")
# Retention's disk thresholds: the gauge turns yellow, then red, at these used ratios.
DISK_YELLOW, DISK_RED = 0.70, 0.85


def _histogram(*values_ms: float) -> Histogram:
    h = Histogram()
    h.add_many(np.asarray(values_ms, dtype=np.float64))
    return h


def _snapshot() -> ServiceSnapshot:
    """One of everything the collector exports: a feed, the sender (one exchange, one worker), hybrid mode."""
    feed = FeedSnapshot(
        name="binance-spot", exchange="binance", market_type="spot", status="connected", connected=True,
        instruments=3, connections=1, connections_up=1, reconnects=2, messages=120, trades=100, trades_per_s=4.0,
        unsent=0, dead_letters=1, venue_errors=0, unknown_events=0, gaps=1, backfilled=5, last_trade=None,
        last_trade_ns=0, down_since_s=None, last_error="", lag_p50_ms=3.0, lag_p99_ms=9.0,
    )  # fmt: skip
    hybrid = HybridSnapshot(
        rollout_phase=1, rollout_phase_name="shadow", questdb_percentage=0, fallback_enabled=True,
        time_in_phase_s=10.0, compare=True, ring_rows=50, ring_venues=1, ring_oldest_ns=1, ring_newest_ns=2,
        ring_bytes=4096, ring_cap_bytes=1 << 20, ring_evicted_rows=0, reads=3, buffer_answers=2, questdb_answers=1,
        fallbacks=0, ring_hit_rate=0.66, questdb_queries=1, questdb_errors=0, compares=1, compares_with_diffs=0,
        differences=0, compare_skipped=0, last_diff="", rollback_checks=1, rollback_state="healthy", last_change="",
        listing_polls=4, listing_poll_failures=0, listings=1, listings_waiting=0, last_listing=None,
    )  # fmt: skip
    worker = WorkerMetrics(
        shard=0, pid=1234, state="running", alive=True, restarts=0, queue_rows=5, queue_batches=1, rows_in=100,
        confirmed=90, spooled=0, replayed=0, dead_lettered=0, retried=0, failed_flushes=0, flushes=9,
        spool_rows=0, spool_bytes=0, quarantined=[], alarm="", flush_ms={},
    )  # fmt: skip
    sender = SenderMetrics(
        uptime_s=10.0, workers=1, transport="http",
        books=Books(received=100, recovered=0, confirmed=90, replayed=0, dead_lettered=0, in_flight=10, spooled_now=0),
        resent_rows=0, backpressure_waits=0, backpressure_seconds=0.0,
        exchanges={"binance": ExchangeMetrics(received=100, sent=100, confirmed=90, in_flight=10)},
        per_worker=[worker], delay_ms={}, flush_ms={},
        histograms={"delay": _histogram(80.0, 250.0, 1200.0), "flush": _histogram(2.0, 4.0)},
    )  # fmt: skip
    questdb = QuestDBSnapshot(
        host="127.0.0.1", http_port=9000, pg_port=8812, reachable=True, version="9.3.4", checked=None,
        data_dir="/var/lib/questdb", disk_total_bytes=100, disk_used_bytes=40, disk_used_ratio=0.4,
        writes_confirmed=True, error="",
    )  # fmt: skip
    return ServiceSnapshot(
        version="0.1.0", taken_ns=1, state="running", source="synthetic", started=None, uptime_s=10.0, received=100,
        trades_per_s=4.0, unsent=0, feeds=[feed], schema=SchemaSnapshot("ok", ""), questdb=questdb, hybrid=hybrid,
        alarms=[], api_url="http://127.0.0.1:8780", failure="", sender=sender,
    )  # fmt: skip


@pytest.fixture(scope="module")
def exposition() -> dict[str, tuple[str, set[str]]]:
    """Sample name → (its family's type, the label names its samples carry), from the real collector."""
    snapshot = _snapshot()
    text = generate_latest(registry_for(lambda: snapshot)).decode()
    out: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            _, labels = out.setdefault(sample.name, (family.type, set()))
            labels.update(sample.labels)
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels (a collapsed row keeps its panels inside) included."""
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def _queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL text: panel targets' ``expr`` and the query variables' queries."""
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


def test_dashboard_is_json_with_the_sections(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "pumpwatch"
    assert dashboard["title"] == "pumpwatch — trade capture"
    assert dashboard["schemaVersion"] >= 39
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Overview", "Ingestion", "Feeds", "Latency", "QuestDB", "Hybrid"]
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert sum(1 for p in _panels(dashboard["panels"]) if p["type"] != "row") >= 30


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    (ds_var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (ds_var["type"], ds_var["query"]) == ("datasource", "prometheus")
    ref = {"type": "prometheus", "uid": DS_VARIABLE}
    for p in _panels(dashboard["panels"]):
        if p["type"] == "row":
            continue
        assert p.get("datasource") == ref, p["title"]
        assert p["targets"], f"{p['title']}: no query"
        for t in p["targets"]:
            assert t.get("datasource") == ref, p["title"]
            assert t["expr"].strip(), p["title"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == ref, var["name"]


def test_every_metric_in_the_queries_is_exported(
    dashboard: dict[str, Any], exposition: dict[str, tuple[str, set[str]]]
) -> None:
    referenced = {m for expr in _queries(dashboard) for m in METRIC.findall(expr)}
    assert len(referenced) >= 30, sorted(referenced)
    missing = sorted(referenced - exposition.keys())
    assert not missing, f"the dashboard queries metrics /metrics does not produce: {missing}"


def test_rate_and_increase_only_take_counters(
    dashboard: dict[str, Any], exposition: dict[str, tuple[str, set[str]]]
) -> None:
    """``rate()`` of a gauge is a silent nonsense graph; only counters and histogram series qualify."""
    taken = {m for expr in _queries(dashboard) for m in RATE_OF.findall(expr)}
    assert taken
    for name in sorted(taken):
        kind, _ = exposition[name]
        assert kind in ("counter", "histogram"), f"{name} is a {kind}"
        assert name.endswith(("_total", "_bucket", "_sum", "_count")), name


def test_every_label_in_the_queries_is_exported(
    dashboard: dict[str, Any], exposition: dict[str, tuple[str, set[str]]]
) -> None:
    """Selectors (``metric{label=...}``), ``by (...)`` and ``label_values(metric, label)`` name real labels."""
    for expr in _queries(dashboard):
        metrics = [m for m in METRIC.findall(expr) if m in exposition]  # unknown names: the test above
        for name, selector in re.findall(r"(pumpwatch_[a-z0-9_]+)\{([^}]*)\}", expr):
            if name not in exposition:
                continue
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector):
                assert label in exposition[name][1], f"{expr}: {name} has no label {label}"
        known = set().union(*(exposition[m][1] for m in metrics))
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in known, f"{expr}: no label {label}"
        for name, label in re.findall(r"label_values\(\s*(pumpwatch_[a-z0-9_]+)\s*,\s*([a-z_]+)\s*\)", expr):
            assert label in exposition.get(name, ("", set()))[1], f"{expr}: {name} has no label {label}"


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["feed"]["query"]["query"] == "label_values(pumpwatch_trades_received_total, feed)"
    assert "exchange" in variables["exchange"]["query"]["query"]
    for name in ("feed", "exchange"):
        var = variables[name]
        assert (var["type"], var["multi"], var["includeAll"]) == ("query", True, True), name
        used = [e for e in _queries(dashboard) if f'{name}=~"${name}"' in e]
        assert used, f"no query filters on ${name}"


def test_disk_gauge_has_the_retention_thresholds(dashboard: dict[str, Any]) -> None:
    (gauge,) = [
        p
        for p in _panels(dashboard["panels"])
        if p["type"] == "gauge" and "pumpwatch_questdb_disk_used_ratio" in p["targets"][0]["expr"]
    ]
    defaults = gauge["fieldConfig"]["defaults"]
    assert (defaults["unit"], defaults["min"], defaults["max"]) == ("percentunit", 0, 1)
    steps = [(s["color"], s["value"]) for s in defaults["thresholds"]["steps"]]
    assert steps == [("green", None), ("yellow", DISK_YELLOW), ("red", DISK_RED)]


def test_prometheus_scrapes_the_api_port() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    api = ApiSettings()
    assert job["job_name"] == "pumpwatch"
    assert job["scrape_interval"] == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": [f"{api.host}:{api.port}"]}]


def test_grafana_provisioning_matches_the_readme_mounts() -> None:
    """The data source's scrape interval is Prometheus's; the provider's path is where the README mounts the JSON."""
    grafana = DOCKER / "grafana"
    (ds,) = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))[
        "datasources"
    ]
    assert (ds["type"], ds["url"]) == ("prometheus", "http://127.0.0.1:9090")
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    assert ds["jsonData"]["timeInterval"] == prometheus["scrape_configs"][0]["scrape_interval"]
    (provider,) = yaml.safe_load((grafana / "provisioning/dashboards/pumpwatch.yml").read_text(encoding="utf-8"))[
        "providers"
    ]
    readme = (grafana / "README.md").read_text(encoding="utf-8")
    mount = f"pumpwatch-dashboard.json:{provider['options']['path']}/pumpwatch-dashboard.json:ro"
    assert readme.count(mount) == 2, "the docker run and compose examples mount the dashboard where Grafana looks"
    assert "127.0.0.1:9090" in readme
