"""The one rate schedule and pacer of every generated source (replay server, synthetic feeds, load):
a base rate with periodic bursts (the seed's pumps), turned into whole trades per tick.

Bursts sit at the end of every ``burst_every`` period so a freshly started server begins calm.
The fractional remainder carries over, so low rates with 10 ms ticks still average out exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# A late tick makes up at most this much time: short hiccups keep the exact rate, an overloaded
# server sheds load (generated/s falls below the target) instead of building huge ticks.
MAX_CATCH_UP = 0.25


@dataclass(frozen=True)
class RateSchedule:
    """Trades/s over time: ``rate``, and ``burst_rate`` for the last ``burst_seconds`` of every ``burst_every``."""

    rate: float = 1_000.0
    burst_rate: float = 5_000.0
    burst_every: float = 60.0
    burst_seconds: float = 5.0

    def rate_at(self, elapsed: float) -> float:
        """Trades/s at ``elapsed`` seconds after the start."""
        if (
            self.burst_seconds > 0
            and self.burst_rate > 0  # 0 = no bursts (not silent windows)
            and elapsed % self.burst_every >= self.burst_every - self.burst_seconds
        ):
            return self.burst_rate
        return self.rate

    @classmethod
    def steady(cls, rate: float) -> RateSchedule:
        return cls(rate=rate, burst_rate=0.0, burst_seconds=0.0)


class Schedule(Protocol):
    def rate_at(self, elapsed: float) -> float:
        """Trades/s at ``elapsed`` seconds after the start."""


class Pacer:
    """Turns a schedule into whole trades per call of ``due``."""

    def __init__(self, schedule: Schedule, now: float) -> None:
        self.schedule = schedule
        self._start = now
        self._last = now
        self._carry = 0.0

    def due(self, now: float) -> int:
        """Trades due since the previous call (or ``restart``)."""
        dt = min(max(now - self._last, 0.0), MAX_CATCH_UP)
        self._last = now
        self._carry += self.schedule.rate_at(now - self._start) * dt
        n = int(self._carry)
        self._carry -= n
        return n

    def restart(self, now: float) -> None:
        """Forget the time since the last call (after a pause: no catch-up burst)."""
        self._last = now
        self._carry = 0.0
