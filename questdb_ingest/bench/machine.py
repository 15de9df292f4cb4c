"""What a benchmark ran on, recorded next to its numbers."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

from ..resources import questdb_pin


def machine_info(transport: str) -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem_gib = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) / 1024**2
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "questdb": questdb_pin().version,
        "transport": transport,
    }
