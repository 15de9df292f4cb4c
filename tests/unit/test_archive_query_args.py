"""``store.archive`` refuses a bad interval (and the other bad arguments) before any SQL runs: the
interval is the one piece of text spliced into a ``SAMPLE BY``, so it must match the grammar and be
a whole number of minutes. A connection that fails on first use stands in for QuestDB, and one
that records stands in where the test checks what is bound."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from psycopg import sql

from questdb_ingest.cli.query import query
from questdb_ingest.config import Settings, load_settings
from questdb_ingest.store import archive, pg
from questdb_ingest.store.market import QueryArgumentError

from .cli_env import isolate, one_error_line

BAD_INTERVALS = ["7x", "0m", "90s", "1.5h", "", " 5m", "5M", "m", "10", "-1m", "1w"]


class NoSql:
    """Any use is a test failure: the argument had to be refused before SQL."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"SQL was attempted (conn.{name}) for an argument that must be refused first")


class Recording:
    """Takes every query, keeps its text and parameters, answers no rows."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[object]]] = []

    @contextmanager
    def cursor(self, **_: Any) -> Iterator[Recording]:
        yield self

    def execute(self, query: sql.Composed, params: list[object]) -> Recording:
        self.calls.append((query.as_string(None), list(params)))
        return self

    def fetchall(self) -> list[tuple[object, ...]]:
        return []


@pytest.fixture
def settings() -> Settings:
    return load_settings(env={})


@pytest.mark.parametrize("interval", BAD_INTERVALS)
def test_bad_interval_is_refused_before_sql(settings: Settings, interval: str) -> None:
    with pytest.raises(QueryArgumentError) as info:
        archive.get_bars_in_range(NoSql(), settings, "BTC-USDT", 0, 10**12, interval)  # type: ignore[arg-type]
    assert info.value.argument == "interval" and info.value.value == interval
    assert f"interval={interval!r}" in str(info.value)


def test_a_non_string_interval_is_refused(settings: Settings) -> None:
    with pytest.raises(QueryArgumentError, match="interval"):
        archive.get_bars_in_range(NoSql(), settings, "BTC-USDT", 0, 1, 5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("interval", "minutes"), [("1m", 1), ("5m", 5), ("120s", 2), ("1h", 60), ("1d", 1440)])
def test_whole_minute_intervals_are_accepted(interval: str, minutes: int) -> None:
    assert archive.check_interval(interval) == minutes * 60 * 10**9


def test_only_the_checked_interval_is_spliced(settings: Settings) -> None:
    """Symbol and bounds are bound parameters (µs ceilings of the ns bounds); the SQL text holds the
    interval and the table identifier only."""
    conn = Recording()
    hostile = "BTC-USDT'; DROP TABLE trades; --"
    archive.get_bars_in_range(conn, settings, hostile, 3_600 * 10**9 + 1, 7_200 * 10**9, "5m")  # type: ignore[arg-type]
    ((text, params),) = conn.calls
    assert "SAMPLE BY 5m ALIGN TO CALENDAR" in text and "DROP" not in text and '"scalp_1m_bars"' in text
    # whole buckets: from the first 5m bucket at or after start to the end of the last before end
    assert params == [(3_600 * 10**9 + 300 * 10**9) // 1000, 7_200 * 10**6, hostile]


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c, s: archive.get_latest_bars(c, s, "", 10), "symbol"),
        (lambda c, s: archive.get_latest_ticks(c, s, "X", 0), "limit"),
        (lambda c, s: archive.get_ticks_in_range(c, s, "X", 5, 4), "end_ns"),
        (lambda c, s: archive.get_1m_bars(c, s, "X", -1, 4), "start_ns"),
        (lambda c, s: archive.count_gaps(c, s, None, 0, 1, "both"), "source"),  # type: ignore[arg-type]
        (lambda c, s: archive.count_gaps(c, s, "", 0, 1), "scope"),
        (lambda c, s: archive.get_critical_gaps(c, s, float("nan"), 0, 1), "min_seconds"),
        (lambda c, s: archive.get_critical_gaps(c, s, 1, 0, 1, limit=0), "limit"),
    ],
)
def test_other_bad_arguments_are_refused_before_sql(settings: Settings, call: Any, argument: str) -> None:
    with pytest.raises(QueryArgumentError) as info:
        call(NoSql(), settings)
    assert info.value.argument == argument


@pytest.mark.parametrize("interval", ["7x", "0m", "90s"])
def test_cli_bad_interval_is_a_usage_error_before_connecting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, interval: str
) -> None:
    isolate(monkeypatch, tmp_path)

    def connect(*_: Any, **__: Any) -> Any:
        raise AssertionError("connected for an argument that must be refused first")

    monkeypatch.setattr(pg, "connect", connect)
    result = CliRunner().invoke(query, ["bars", "BTC-USDT", "--interval", interval, "--start", "1h"])
    assert result.exit_code == 2
    one_error_line(result, "--interval", repr(interval))
