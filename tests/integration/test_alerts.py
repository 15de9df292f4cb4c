"""The alert dispatcher and ``pumpwatch alerts test`` against a real HTTP receiver on 127.0.0.1:
the bodies each format posts, dedupe, the rate limit, retries, a hung receiver, the history.

Time for dedupe and the rate limit is the test's own clock; every wait is on an event with a
bound, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questdb_ingest.cli import main
from questdb_ingest.config import AlertSettings, load_settings
from questdb_ingest.ops.alerts import Alert, AlertDispatcher

from ..unit.cli_env import isolate, no_traceback, one_error_line

TS_NS = 1_796_220_608_117_000_000  # 2026-12-02T14:10:08.117Z
WAIT_S = 10.0  # bound of every wait; the waits end as soon as what they wait for happened


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Records every POST; answers ``statuses`` in turn (the last one from then on), or holds the
    request until ``release`` is set when ``hang`` is."""

    port: int = 0
    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    requests: list[Request] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, request: Request) -> int:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self.statuses[min(len(self.requests), len(self.statuses)) - 1]

    def wait_for(self, n: int) -> list[Any]:
        """The bodies, once at least ``n`` arrived (fails after WAIT_S)."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.requests) >= n, WAIT_S), self.requests
            return [r.body for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = rec.record(Request(self.path, dict(self.headers), json.loads(raw)))
            if rec.hang:
                rec.entered.set()
                rec.release.wait(WAIT_S * 3)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if status < 300 else b'{"ok": false, "description": "no"}')

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="alert-receiver", daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert_settings(**values: Any) -> AlertSettings:
    """``[alerts]`` through load_settings, so the values pass validation as an operator's would."""
    values.setdefault("retry_initial", 0.01)
    values.setdefault("retry_max", 0.02)
    return load_settings(env={}, overrides={"alerts": values}).alerts


def wait_until(what: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not what():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def dispatchers() -> Iterator[list[AlertDispatcher]]:
    made: list[AlertDispatcher] = []
    yield made
    for d in made:
        d.stop(1.0)


def dispatcher(made: list[AlertDispatcher], settings: AlertSettings, **kw: Any) -> AlertDispatcher:
    d = AlertDispatcher(settings, host="test-host", tick=0.02, **kw)
    made.append(d)
    d.start()
    return d


FEED_DOWN = Alert("feed.down", "warning", "okx_spot down for 61 s", key="okx_spot", details={"down_s": 61}, ts_ns=TS_NS)


# --------------------------------------------------------------------------- bodies
def test_json_body_as_specified(
    receiver: Receiver, dispatchers: list[AlertDispatcher], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="questdb_ingest.alerts")
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url()))
    d.emit(FEED_DOWN)
    (body,) = receiver.wait_for(1)
    assert body == {
        "kind": "feed.down",
        "severity": "warning",
        "message": "okx_spot down for 61 s",
        "key": "okx_spot",
        "details": {"down_s": 61},
        "ts": "2026-12-02T14:10:08.117Z",
        "host": "test-host",
        "service": "pumpwatch",
        "repeated": 0,
    }
    request = receiver.requests[0]
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    wait_until(lambda: d.stats()["sent"] == 1)
    (kept,) = d.recent()
    assert (kept["webhook"], kept["status"], kept["kind"]) == ("sent", 200, "feed.down")
    (line,) = [r for r in caplog.records if r.name == "questdb_ingest.alerts"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == 'feed.down [okx_spot]: okx_spot down for 61 s {"down_s": 61} (webhook: queued)'


def test_slack_body_as_specified(receiver: Receiver, dispatchers: list[AlertDispatcher]) -> None:
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), format="slack"))
    d.emit(FEED_DOWN)
    (body,) = receiver.wait_for(1)
    assert body["text"] == "[WARNING] feed.down: okx_spot down for 61 s"
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context"]
    head = {"type": "mrkdwn", "text": ":warning: *WARNING* `feed.down`\nokx_spot down for 61 s"}
    assert body["blocks"][0]["text"] == head
    context = "pumpwatch on test-host · 2026-12-02T14:10:08.117Z · key okx_spot"
    assert body["blocks"][2]["elements"][0]["text"] == context


def test_telegram_body_as_specified(receiver: Receiver, dispatchers: list[AlertDispatcher]) -> None:
    url = receiver.url("/bot123456:SECRET/sendMessage")
    d = dispatcher(dispatchers, alert_settings(webhook_url=url, format="telegram", telegram_chat_id="-1001234"))
    d.emit(Alert("spool.alarm", "critical", "the spool is full", key="full", ts_ns=TS_NS))
    (body,) = receiver.wait_for(1)
    assert receiver.requests[0].path == "/bot123456:SECRET/sendMessage"
    assert body == {
        "chat_id": "-1001234",
        "text": "[CRITICAL] spool.alarm\nthe spool is full\n"
        "pumpwatch on test-host · 2026-12-02T14:10:08.117Z · key full",
        "disable_notification": False,
    }


# --------------------------------------------------------------------------- dedupe and rate limit
def test_same_key_within_the_window_is_posted_once_then_with_its_repeats(
    receiver: Receiver, dispatchers: list[AlertDispatcher]
) -> None:
    clock = Clock()
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), dedupe_window=300), clock=clock)
    d.emit(FEED_DOWN)
    clock.now += 10
    d.emit(FEED_DOWN)
    clock.now += 10
    d.emit(FEED_DOWN)
    d.emit(Alert("feed.down", "warning", "bybit_spot down", key="bybit_spot"))  # another key: posted
    bodies = receiver.wait_for(2)
    assert [b["key"] for b in bodies] == ["okx_spot", "bybit_spot"]  # FIFO: a repeat would have come before
    assert d.stats()["suppressed"] == 2
    assert [e["webhook"] for e in d.recent()][1:3] == ["suppressed", "suppressed"]
    clock.now += 290  # 310 s after the first post
    d.emit(FEED_DOWN)
    bodies = receiver.wait_for(3)
    assert (bodies[2]["key"], bodies[2]["repeated"]) == ("okx_spot", 2)
    assert len(receiver.requests) == 3


def test_rate_limit_holds_back_the_excess_and_says_how_many(
    receiver: Receiver, dispatchers: list[AlertDispatcher], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="questdb_ingest.alerts")
    clock = Clock()
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), rate_limit=2), clock=clock)
    for i in range(4):
        d.emit(Alert("backup.failed", "critical", f"backup {i} failed", key=str(i)))
    bodies = receiver.wait_for(3)
    assert [b["kind"] for b in bodies] == ["backup.failed", "backup.failed", "alerts.rate_limited"]
    assert bodies[2]["details"] == {"suppressed": 1, "rate_limit": 2}  # the first held back, at once
    assert d.stats()["rate_limited"] == 2
    kept = {e["message"]: e["webhook"] for e in d.recent()}
    assert kept["backup 2 failed"] == kept["backup 3 failed"] == "rate_limited"  # kept all the same
    logged = [r.getMessage() for r in caplog.records]
    assert any("backup 3 failed" in m for m in logged)
    clock.now += 61  # the next summary is due, and the minute's posts have aged out
    bodies = receiver.wait_for(4)
    assert (bodies[3]["kind"], bodies[3]["details"]["suppressed"]) == ("alerts.rate_limited", 1)
    assert "1 alert(s) were not posted" in bodies[3]["message"]
    d.emit(Alert("backup.failed", "critical", "backup 4 failed", key="4"))
    assert receiver.wait_for(5)[4]["message"] == "backup 4 failed"
    assert len(receiver.requests) == 5


# --------------------------------------------------------------------------- failures
def test_a_500_is_retried_then_counted_failed(
    receiver: Receiver, dispatchers: list[AlertDispatcher], caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses = [500]
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), retries=2))
    d.emit(FEED_DOWN)
    wait_until(lambda: d.stats()["failed"] == 1)
    assert len(receiver.requests) == 3  # one post and two retries
    assert all(r.body == receiver.requests[0].body for r in receiver.requests)
    (kept,) = d.recent()
    assert (kept["webhook"], kept["status"]) == ("failed", 500)
    assert kept["error"].startswith("HTTP 500")
    assert d.stats()["sent"] == 0
    assert any("not posted after 3 attempt(s)" in r.getMessage() for r in caplog.records)


def test_a_refusal_is_not_retried(receiver: Receiver, dispatchers: list[AlertDispatcher]) -> None:
    receiver.statuses = [400]
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), retries=3))
    d.emit(FEED_DOWN)
    wait_until(lambda: d.stats()["failed"] == 1)
    assert len(receiver.requests) == 1
    assert d.recent()[0]["error"] == 'HTTP 400 Bad Request: {"ok": false, "description": "no"}'  # its own words


def test_a_retry_that_passes_counts_sent(receiver: Receiver, dispatchers: list[AlertDispatcher]) -> None:
    receiver.statuses = [503, 200]
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), retries=2))
    d.emit(FEED_DOWN)
    wait_until(lambda: d.stats()["sent"] == 1)
    assert len(receiver.requests) == 2 and d.stats()["failed"] == 0


def test_a_hung_receiver_never_blocks_emit_and_stop_keeps_its_bound(
    receiver: Receiver, dispatchers: list[AlertDispatcher]
) -> None:
    receiver.hang = True
    d = dispatcher(dispatchers, alert_settings(webhook_url=receiver.url(), timeout=60, retries=0), queue_size=3)
    d.emit(FEED_DOWN)
    assert receiver.entered.wait(WAIT_S)  # the one post is held by the receiver
    for i in range(5):  # the thread is stuck in that post: 3 fit the queue, 2 are dropped
        d.emit(Alert("feed.down", "warning", f"feed {i} down", key=str(i)))
    assert d.stats()["queued"] == 3 and d.stats()["dropped"] == 2
    assert len(d.recent()) == 6  # every alert is kept all the same
    started = time.monotonic()
    assert d.stop(timeout=0.2) is False
    assert time.monotonic() - started < 30  # not the request's 60 s timeout
    assert d.stats()["dropped"] == 5 and d.stats()["queued"] == 0
    assert [e["webhook"] for e in d.recent()[:3]] == ["dropped"] * 3
    d.emit(FEED_DOWN)  # after stop: kept, not posted
    assert d.recent(1)[0]["webhook"] == "dropped"
    receiver.release.set()


def test_stop_posts_what_is_queued(receiver: Receiver) -> None:
    d = AlertDispatcher(alert_settings(webhook_url=receiver.url()), host="test-host")
    for i in range(3):
        d.emit(Alert("retention.emergency", "critical", f"dropped partition {i}", key=str(i)))
    d.start()  # emitted before start: posted once it runs
    assert d.stop(timeout=WAIT_S) is True
    assert [b["message"] for b in receiver.wait_for(3)] == [f"dropped partition {i}" for i in range(3)]
    assert d.stats()["sent"] == 3


# --------------------------------------------------------------------------- pumpwatch alerts test
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.mark.usefixtures("clean_env")
def test_cli_alerts_test_posts_and_reports_the_status(receiver: Receiver) -> None:
    url = receiver.url("/bot123456:SECRET/sendMessage")
    env = {"PUMPWATCH_ALERTS_WEBHOOK_URL": url, "PUMPWATCH_ALERTS_FORMAT": "telegram"}
    result = CliRunner().invoke(main, ["alerts", "test", "--chat-id", "42", "--json"], env=env)
    no_traceback(result)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["ok"], out["status"], out["attempts"], out["format"]) == (True, 200, 1, "telegram")
    assert out["webhook"] == f"http://127.0.0.1:{receiver.port}/…"
    (body,) = receiver.wait_for(1)
    assert body["chat_id"] == "42" and body["text"].startswith("[INFO] alerts.test\n")
    assert "SECRET" not in result.output

    result = CliRunner().invoke(main, ["alerts", "test", "--url", receiver.url(), "--format", "slack"])
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{receiver.port}/… (slack) answered HTTP 200" in result.output
    assert "blocks" in receiver.wait_for(2)[1]


@pytest.mark.usefixtures("clean_env")
def test_cli_alerts_test_failure_is_exit_1(receiver: Receiver) -> None:
    receiver.statuses = [500]
    env = {"PUMPWATCH_ALERTS_WEBHOOK_URL": receiver.url(), "PUMPWATCH_ALERTS_RETRIES": "1"}
    env["PUMPWATCH_ALERTS_RETRY_INITIAL"] = "0.01"
    result = CliRunner().invoke(main, ["alerts", "test"], env=env)
    no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "did not take the alert after 2 attempt(s): HTTP 500" in result.output
    assert len(receiver.requests) == 2


@pytest.mark.usefixtures("clean_env")
def test_cli_alerts_test_without_a_webhook_names_the_key() -> None:
    one_error_line(CliRunner().invoke(main, ["alerts", "test"]), "'alerts.webhook_url'", "no webhook configured")
    one_error_line(
        CliRunner().invoke(main, ["alerts", "test", "--url", "http://127.0.0.1:1/x", "--format", "telegram"]),
        "'alerts.telegram_chat_id'",
    )
