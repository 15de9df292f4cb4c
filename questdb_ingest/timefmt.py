"""One duration grammar and one time format, for every config key, command option and output.

Durations: a number with an optional unit — ``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``, ``d``,
``w`` — or a bare number of seconds (``500ms``, ``20s``, ``1.5h``, ``7d``, ``30``).
Times: integer nanoseconds since the epoch, an ISO-8601 time (UTC unless it carries an offset,
exact to the nanosecond), or a duration with a unit meaning "that long before now" (``--since 1h``).
Output: ISO-8601 UTC with a ``Z``, milliseconds for event times (``2026-12-02T13:43:15.123Z``,
logs, alerts, API), all nine digits for trade timestamps (``iso_ns``).
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from .errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s|m|h|d|w)?\s*$")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86_400 * 10**9,
    "w": 7 * 86_400 * 10**9,
}
_EXPECTED = "expected a duration like '500ms', '20s', '30m', '12h', '7d' or a number of seconds"


def duration_ns(value: object, key: str, *, allow_zero: bool = False) -> int:
    """Nanoseconds of a duration (string or number of seconds); ``ConfigError`` naming ``key``."""
    if isinstance(value, bool):
        raise ConfigError(key, f"{_EXPECTED}, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(key, f"must be finite, got {value!r}")
        ns = round(value * 10**9)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        ns = round(float(m.group(1)) * _UNIT_NS[m.group(2) or "s"])
    else:
        raise ConfigError(key, f"{_EXPECTED}, got {value!r}")
    if ns < 0 or (ns == 0 and not allow_zero):
        raise ConfigError(key, f"must be > 0, got {value!r}")
    return ns


def duration_s(value: object, key: str, *, allow_zero: bool = False) -> float:
    """Seconds of a duration (see ``duration_ns``)."""
    return duration_ns(value, key, allow_zero=allow_zero) / 1e9


def format_duration(seconds: float | None) -> str:
    """Compact human duration (``5d``, ``1d 2h``, ``45s``, ``500ms``); ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return " ".join(parts[:2])


def parse_time_ns(value: str, key: str, *, now_ns: int | None = None) -> int:
    """Epoch nanoseconds of ``value``: integer ns, ISO-8601 (UTC unless offset), or a duration ago."""
    text = value.strip()
    if re.fullmatch(r"\d+", text):  # ns since the epoch ("ago" needs a unit: 90s, 1h)
        return int(text)
    if _DURATION.match(text):
        return (time.time_ns() if now_ns is None else now_ns) - duration_ns(text, key)
    import pandas as pd  # heavy; only callers that parse ISO times pay for it

    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise ConfigError(
            key, f"{value!r} is neither ns since the epoch, an ISO-8601 time, nor a duration ago (1h)"
        ) from exc
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def iso(ns: int, digits: int = 3) -> str:
    """``2026-12-02T13:43:15.123Z`` (``digits`` fractional digits, 0..9) for epoch nanoseconds."""
    seconds, frac = divmod(int(ns), 10**9)
    head = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return head + "Z"
    return f"{head}.{frac // 10 ** (9 - digits):0{digits}d}Z"


def iso_ns(ns: int) -> str:
    """A trade timestamp: UTC ISO-8601 with all nine fractional digits."""
    return iso(ns, 9)


def iso_s(epoch_s: float) -> str:
    """An event time given in epoch seconds (``time.time()``, log records), to the millisecond."""
    return iso(int(epoch_s * 1000) * 10**6)
