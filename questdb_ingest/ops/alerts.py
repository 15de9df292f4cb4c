"""One alert path: every part that needs an operator's attention (retention, backups, rollback,
spool alarms, dead-letter surges, feeds down) raises an ``Alert`` through an ``AlertSink``.

The sink the service wires logs the alert, keeps it for ``/api/alerts`` and posts it to the
webhook, rate-limited and deduplicated. Parts take a sink so tests can hand them a ``ListSink``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Alert:
    """What happened, how bad, and the key alerts are deduplicated by (``kind`` when empty)."""

    kind: str  # e.g. "retention.emergency", "backup.failed", "feed.down", "spool.alarm"
    severity: Severity
    message: str
    key: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    ts_ns: int = field(default_factory=time.time_ns)

    @property
    def dedupe_key(self) -> str:
        return f"{self.kind}:{self.key}" if self.key else self.kind


class AlertSink(Protocol):
    """Anything that takes alerts; ``emit`` never raises and never blocks on the network."""

    def emit(self, alert: Alert) -> None: ...


class ListSink:
    """Keeps every alert in a list (tests, and the ``--dry-run`` of commands)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)
