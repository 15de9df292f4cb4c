"""The alert path's pure parts: ``[alerts]`` validation, the webhook bodies, and the watches that
turn sampled values into alerts (with the caller's clock: nothing here waits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from questdb_ingest.config import load_settings
from questdb_ingest.errors import ConfigError
from questdb_ingest.ops.alerts import (
    Alert,
    AlertDispatcher,
    FeedDownWatch,
    ListSink,
    SpoolWatch,
    SurgeWatch,
    Watches,
    redact_url,
    slack_body,
    telegram_body,
)

TS_NS = 1_796_220_608_117_000_000  # 2026-12-02T14:10:08.117Z


# --------------------------------------------------------------------------- [alerts]
def test_alerts_defaults() -> None:
    a = load_settings(env={}).alerts
    assert (a.webhook_url, a.format, a.feed_down_after, a.history) == ("", "json", 60.0, 200)
    assert a.rate_limit >= 1 and a.dedupe_window > 0 and a.timeout > 0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[alerts]\nformat = "telegram"\nwebhook_url = "https://api.telegram.org/botX/sendMessage"\n',
         "alerts.telegram_chat_id"),
        ('[alerts]\nformat = "teams"\n', "alerts.format"),
        ('[alerts]\nwebhook_url = "hooks.slack.com/services/x"\n', "alerts.webhook_url"),
        ("[alerts]\nrate_limit = 0\n", "alerts.rate_limit"),
        ("[alerts]\ntimeout = 0\n", "alerts.timeout"),
        ("[alerts]\nretries = 11\n", "alerts.retries"),
        ("[alerts]\nretry_initial = 5.0\nretry_max = 1.0\n", "alerts.retry_max"),
        ("[alerts]\ndedupe_window = -1\n", "alerts.dedupe_window"),
        ("[alerts]\nfeed_down_after = 0\n", "alerts.feed_down_after"),
        ("[alerts]\ndead_letter_surge = -5\n", "alerts.dead_letter_surge"),
        ("[alerts]\nhistory = 0\n", "alerts.history"),
        ("[alerts]\nwebhook = 'x'\n", "alerts.webhook"),
    ],
)  # fmt: skip
def test_invalid_alerts_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert err.value.key == key


def test_telegram_needs_a_chat_id_and_env_sets_it() -> None:
    env = {"PUMPWATCH_ALERTS_FORMAT": "telegram"}
    with pytest.raises(ConfigError, match=r"alerts\.telegram_chat_id"):
        load_settings(env=env)
    a = load_settings(env={**env, "PUMPWATCH_ALERTS_TELEGRAM_CHAT_ID": "-1001234"}).alerts
    assert (a.format, a.telegram_chat_id) == ("telegram", "-1001234")


# --------------------------------------------------------------------------- bodies
def test_slack_body_escapes_markup_and_says_repeats() -> None:
    alert = Alert("feed.down", "warning", "<!channel> & co", key="okx_spot", details={"down_s": 61}, ts_ns=TS_NS)
    body = slack_body(alert, 3, "box")
    assert body["text"] == "[WARNING] feed.down: &lt;!channel&gt; &amp; co (repeated 3 times since the last post)"
    section, fields, context = body["blocks"]
    assert section["text"]["type"] == "mrkdwn" and "&lt;!channel&gt;" in section["text"]["text"]
    assert fields["fields"] == [{"type": "mrkdwn", "text": "*down_s*\n61"}]
    assert context["elements"][0]["text"] == "pumpwatch on box · 2026-12-02T14:10:08.117Z · key okx_spot"


def test_telegram_body_is_plain_text_within_the_limit() -> None:
    alert = Alert("spool.alarm", "critical", "x" * 5000, ts_ns=TS_NS)
    body = telegram_body(alert, 1, "box", "-1001234")
    assert set(body) == {"chat_id", "text", "disable_notification"}  # no parse_mode: nothing can fail to parse
    assert body["chat_id"] == "-1001234" and body["disable_notification"] is False
    assert len(body["text"]) == 4096 and body["text"].startswith("[CRITICAL] spool.alarm\nxxx")


def test_redacted_url_keeps_no_secret() -> None:
    assert redact_url("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com/…"
    assert redact_url("https://user:pw@example.org:8443/bot123:ABC/sendMessage") == "https://example.org:8443/…"


# --------------------------------------------------------------------------- dispatcher without a webhook
def test_without_a_webhook_alerts_are_logged_and_kept_newest_first(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={}, overrides={"alerts": {"history": 3}}).alerts
    d = AlertDispatcher(settings)
    d.start()  # no thread without a webhook
    caplog.set_level("INFO", logger="questdb_ingest.alerts")
    for i, sev in enumerate(("info", "warning", "critical", "info", "warning")):
        d.emit(Alert(f"test.{i}", sev, f"message {i}", ts_ns=TS_NS + i))  # type: ignore[arg-type]
    kept = d.recent(10)
    assert [e["kind"] for e in kept] == ["test.4", "test.3", "test.2"]
    assert {e["webhook"] for e in kept} == {"off"}
    assert kept[0]["ts"] == "2026-12-02T14:10:08.117Z" and kept[0]["ts_ns"] == TS_NS + 4
    assert [e["kind"] for e in d.recent(1)] == ["test.4"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records][:3] == [
        ("INFO", "test.0: message 0 (webhook: off)"),
        ("WARNING", "test.1: message 1 (webhook: off)"),
        ("CRITICAL", "test.2: message 2 (webhook: off)"),
    ]
    assert d.stats()["emitted"] == 5 and d.stats()["sent"] == 0
    assert d.stop(1.0) is True


def test_a_bad_alert_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    d = AlertDispatcher(load_settings(env={}).alerts)
    d.emit(None)  # type: ignore[arg-type]  # a caller's bug must not become the caller's crash
    assert any("could not be handled" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- watches
def test_feed_down_after_n_seconds_once_then_recovered() -> None:
    sink = ListSink()
    w = FeedDownWatch(sink, down_after=60)
    assert w.observe("binance_spot", True, 0.0) == []
    assert w.observe("binance_spot", False, 10.0) == []
    assert w.observe("binance_spot", False, 69.9) == []
    (down,) = w.observe("binance_spot", False, 70.0)
    assert (down.kind, down.severity, down.key, down.details["down_s"]) == ("feed.down", "warning", "binance_spot", 60)
    assert w.observe("binance_spot", False, 500.0) == []  # once per outage
    assert w.down(500.0) == {"binance_spot": 490.0}
    (up,) = w.observe("binance_spot", True, 510.0)
    assert (up.kind, up.severity, up.details["down_s"]) == ("feed.recovered", "info", 500.0)
    assert sink.alerts == [down, up]
    # A drop shorter than N says nothing, and feeds are independent.
    assert w.observe_all({"binance_spot": False, "okx_spot": False}, 600.0) == []
    assert w.observe_all({"binance_spot": True, "okx_spot": False}, 650.0) == []
    assert [a.key for a in w.observe_all({"binance_spot": True, "okx_spot": False}, 660.0)] == ["okx_spot"]


def test_dead_letter_surge_per_minute() -> None:
    sink = ListSink()
    w = SurgeWatch(sink, per_minute=100)
    assert w.observe(0, 0.0, "gate_spot") == []
    assert w.observe(50, 30.0, "gate_spot") == []
    (surge,) = w.observe(150, 50.0, "gate_spot")  # 150 within 50 s
    assert (surge.kind, surge.key, surge.details["increase"]) == ("deadletter.surge", "gate_spot", 150)
    assert w.observe(160, 55.0, "gate_spot") == []  # still surging: once
    assert w.observe(170, 120.0, "gate_spot") == []  # 10 since t=55: calm, re-armed
    assert len(w.observe(400, 130.0, "gate_spot")) == 1  # 240 in 75 s = 192/min: a new surge
    assert w.observe(5, 140.0, "gate_spot") == []  # counter restarted: starts over
    assert w.observe(90, 150.0, "gate_spot") == []
    assert w.observe(1000, 150.0, "okx_spot") == []  # another source's first sample is its baseline
    assert len(sink.alerts) == 2
    assert SurgeWatch(sink, per_minute=0).observe(10**9, 1.0) == []  # 0 = off


def test_dead_letter_rate_over_a_longer_span_is_per_minute() -> None:
    w = SurgeWatch(ListSink(), per_minute=100)
    w.observe(0, 0.0)
    assert w.observe(110, 90.0) == []  # 110 in 90 s is 73/min


def test_spool_alarm_on_size_and_full_then_cleared() -> None:
    sink = ListSink()
    w = SpoolWatch(sink, alarm_bytes=1000)
    assert w.observe(500) == []
    (size,) = w.observe(1500)
    assert (size.kind, size.severity, size.key) == ("spool.alarm", "warning", "size")
    assert w.observe(2000) == []
    (full,) = w.observe(2500, full=True, limit_bytes=2500)
    assert (full.kind, full.severity, full.key) == ("spool.alarm", "critical", "full")
    assert full.details == {"spooled_bytes": 2500, "limit_bytes": 2500}
    assert w.observe(2500, full=True) == []
    (cleared,) = w.observe(100)
    assert (cleared.kind, cleared.severity) == ("spool.cleared", "info")
    assert [a.key for a in w.observe(1200)] == ["size"]  # a new episode
    assert SpoolWatch(ListSink(), alarm_bytes=0).observe(10**12) == []  # 0: only a full spool


def test_watches_from_settings_in_one_call() -> None:
    settings = load_settings(env={}, overrides={"alerts": {"feed_down_after": 5, "dead_letter_surge": 10}}).alerts
    sink = ListSink()
    w = Watches(settings, sink)
    assert w.observe(0.0, feeds={"bybit_spot": False}, dead_letters={"bybit_spot": 0}, spool_bytes=0) == []
    out = w.observe(6.0, feeds={"bybit_spot": False}, dead_letters={"bybit_spot": 50}, spool_bytes=0, spool_full=True)
    assert [a.kind for a in out] == ["feed.down", "deadletter.surge", "spool.alarm"]
    assert sink.alerts == out
