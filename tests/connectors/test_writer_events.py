"""Health and gap rows never stop a connector: with QuestDB unreachable they wait in a backlog."""

from __future__ import annotations

import time

from questdb_ingest.config import load_settings
from questdb_ingest.connectors.pipeline import WriterEvents
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.models import GapEvent, HealthEvent
from tests.integration.sender_helpers import wait_until


def test_unreachable_questdb_keeps_rows_in_the_backlog() -> None:
    port = free_port()  # nothing listens here
    settings = load_settings(
        env={},
        overrides={"ingest": {"client_conf": f"http::addr=127.0.0.1:{port};retry_timeout=0;", "flush_interval": 0.01}},
    )
    events = WriterEvents(settings)
    now = time.time_ns()
    for i in range(20):
        events.health(HealthEvent(ts_ns=now + i, exchange="binance", market_type="spot", status="connected"))
        events.gap(
            GapEvent(
                start_ns=now - 10**9, end_ns=now + i, exchange="okx", market_type="spot", scope=f"okx#{i}", reason="x"
            )
        )
        time.sleep(0.02)
    assert len(events.memory.health_rows) == 20 and len(events.memory.gap_rows) == 20
    # The rows are written by the events thread (never by the caller): wait until it has tried them all.
    wait_until(
        lambda: (
            events.health_writer.writer.last_error is not None
            and len(events.health_writer.backlog) > 0
            and len(events.gap_writer.backlog) > 0
            and events.waiting == len(events.health_writer.backlog) + len(events.gap_writer.backlog)
        ),
        10,
        "the event thread to keep the rows in its backlogs",
    )
    assert events.dropped == 0
    events.close(timeout=5)
