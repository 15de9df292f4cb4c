"""The service turns what its snapshots show into alerts on its one alert path, once each."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

from msgspec.structs import replace

from questdb_ingest.app import Service, ServiceOptions
from questdb_ingest.config import load_settings
from questdb_ingest.hybrid.rollout import RolloutChange
from questdb_ingest.ops.alerts import ListSink

from .test_api_channel import _snapshot


def test_rollbacks_in_a_bounded_deque_and_a_stopped_intake_alert_once() -> None:
    sink = ListSink()
    service = Service(load_settings(env={}), ServiceOptions(source="synthetic"), alerts=sink)
    events: deque[RolloutChange] = deque(maxlen=2)
    service.runtime = SimpleNamespace(rollback=SimpleNamespace(events=events))
    snap = _snapshot(1)
    service._observe(snap)
    assert sink.alerts == []
    for i, action in enumerate(("rollback", "advance", "rollback")):  # the deque drops the oldest
        events.append(RolloutChange(action, 2, 1, "errors 12%", at_ns=1_000 + i))  # type: ignore[arg-type]
        service._observe(snap)
        service._observe(snap)  # nothing new: nothing raised again
    assert [(a.kind, a.severity, a.key) for a in sink.alerts] == [
        ("rollout.rollback", "critical", "rollback"),
        ("rollout.rollback", "warning", "advance"),
        ("rollout.rollback", "critical", "rollback"),
    ]
    failed = replace(snap, failure="sender worker 0 crashed")
    service._observe(failed)
    service._observe(failed)
    assert [a.kind for a in sink.alerts].count("intake.stopped") == 1


def test_a_failing_watch_never_stops_capture() -> None:
    service = Service(load_settings(env={}), ServiceOptions(source="synthetic"), alerts=ListSink())

    def broken(_snap: object) -> None:
        raise TypeError("a bug in a watch")

    service._guarded("alert watches", broken, _snapshot(1))  # logged, not raised
    service._guarded("alert watches", broken, _snapshot(1))
    assert service._failed_hooks == {"alert watches"}
