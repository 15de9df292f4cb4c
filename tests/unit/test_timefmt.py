"""The one duration grammar and time format every key, option and output uses."""

from __future__ import annotations

import pytest

from questdb_ingest.errors import ConfigError
from questdb_ingest.timefmt import duration_ns, duration_s, format_duration, iso, iso_ns, iso_s, parse_time_ns

S = 10**9


@pytest.mark.parametrize(
    ("text", "ns"),
    [("500ms", S // 2), ("20s", 20 * S), ("30", 30 * S), ("1.5h", 5400 * S), ("7d", 7 * 86_400 * S),
     ("2w", 14 * 86_400 * S), ("250us", 250_000), ("3ns", 3), (" 2 m ", 120 * S), (1.5, 3 * S // 2)],
)  # fmt: skip
def test_durations(text: object, ns: int) -> None:
    assert duration_ns(text, "k") == ns
    assert duration_s(text, "k") == ns / 1e9


@pytest.mark.parametrize("bad", ["", "5 parsecs", "-1s", "1e3", True, float("inf"), "0s"])
def test_a_bad_duration_names_the_key(bad: object) -> None:
    with pytest.raises(ConfigError) as err:
        duration_ns(bad, "retention.interval")
    assert err.value.key == "retention.interval"


def test_zero_only_where_allowed() -> None:
    assert duration_ns("0s", "k", allow_zero=True) == 0


def test_times() -> None:
    ns = 1_764_365_103_815_772_595
    assert iso_ns(ns) == "2025-11-28T21:25:03.815772595Z"
    assert iso(ns) == "2025-11-28T21:25:03.815Z"
    assert iso(ns, 0) == "2025-11-28T21:25:03Z"
    assert iso_s(0.0) == "1970-01-01T00:00:00.000Z"
    assert parse_time_ns(iso_ns(ns), "--at") == ns
    assert parse_time_ns("2025-11-28T22:25:03.815772595+01:00", "--at") == ns
    assert parse_time_ns(str(ns), "--at") == ns
    assert parse_time_ns("1h", "--since", now_ns=ns) == ns - 3600 * S
    with pytest.raises(ConfigError, match="--since"):
        parse_time_ns("yesterday-ish", "--since")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 0.5, 45, 3600, 86_400 + 7200 + 5)] == [
        "-",
        "500ms",
        "45s",
        "1h",
        "1d 2h",
    ]
