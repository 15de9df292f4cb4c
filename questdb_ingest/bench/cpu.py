"""CPU seconds per process over a benchmark's timed part, read from ``/proc``.

On a shared 2-core box a throughput figure alone does not say where the time went; the split
between our processes and QuestDB's JVM does (and bounds what any optimisation could gain)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import Settings
from ..server import QuestDBProcess

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (None when it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def questdb_pid(settings: Settings) -> int | None:
    """The managed QuestDB's pid (None for a server this project did not start)."""
    return QuestDBProcess(settings.questdb).pid()


@dataclass
class CpuMeter:
    """``start()`` then ``stop()`` around the timed part; ``seconds`` per role (pids summed)."""

    roles: Mapping[str, list[int]]
    seconds: dict[str, float] = field(default_factory=dict)
    _start: dict[int, float] = field(default_factory=dict)

    def start(self) -> CpuMeter:
        self._start = {pid: v for pids in self.roles.values() for pid in pids if (v := cpu_seconds(pid)) is not None}
        return self

    def stop(self) -> dict[str, float]:
        for role, pids in self.roles.items():
            total = 0.0
            for pid in pids:
                now = cpu_seconds(pid)
                if now is not None and pid in self._start:
                    total += now - self._start[pid]
            self.seconds[role] = round(total, 2)
        return self.seconds
