"""``ReplayConfig``: what the local replay server impersonates and how fast it trades.

The server pretends to be real venues, so it only ever binds a loopback address: a test box
must never expose fake exchange endpoints to its network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ..registry import CONNECTORS, connector

ALL_CONNECTORS: tuple[str, ...] = tuple(c.name for c in CONNECTORS)
# Korean reference venues list against KRW, everything else against USDT.
KRW_CONNECTORS = frozenset({"upbit_spot", "bithumb_spot"})


def quote_for(name: str) -> str:
    """The quote asset the replay universe of ``name`` uses."""
    return "KRW" if name in KRW_CONNECTORS else "USDT"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


@dataclass(frozen=True)
class ReplayConfig:
    """Settings of one replay server; every value is checked on construction (``ConfigError``)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (the base URL says which)
    connectors: tuple[str, ...] = ALL_CONNECTORS
    symbols: int = 20  # instruments per connector
    seed: int = 7
    rate: float = 1_000.0  # trades/s across all connectors
    burst_rate: float = 5_000.0
    burst_every: float = 60.0  # seconds between burst starts
    burst_seconds: float = 5.0  # 0: no bursts
    max_trades: int | None = None  # stop generating after this many (None: unlimited)
    session_dir: Path | None = None  # play a recorded session instead of generating
    speed: float = 1.0  # session pacing factor (2 = twice as fast, 0 = as fast as possible)
    loop: bool = False  # start a session again when it ends
    heartbeat: float = 20.0  # seconds between server WebSocket pings
    recent_limit: int = 5_000  # trades kept per instrument for the recent-trades endpoint
    tick: float = 0.01  # generation tick (seconds)

    def __post_init__(self) -> None:
        if not _is_loopback(self.host):
            raise ConfigError(
                "replay.host",
                f"{self.host!r} is not a loopback address; the replay server impersonates exchanges "
                "and only listens on 127.0.0.1",
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError("replay.port", f"port {self.port} outside 0..65535 (0 = any free port)")
        names = tuple(dict.fromkeys(self.connectors))
        if not names:
            raise ConfigError("replay.connectors", "no connector selected")
        for name in names:
            try:
                connector(name)
            except ConfigError as exc:
                raise ConfigError("replay.connectors", str(exc).partition(": ")[2]) from None
        object.__setattr__(self, "connectors", names)
        if self.symbols < 1:
            raise ConfigError("replay.symbols", f"must be >= 1, got {self.symbols}")
        for key in ("rate", "burst_rate", "burst_seconds", "speed"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"replay.{key}", f"must be >= 0, got {getattr(self, key)}")
        if not self.burst_every > 0:
            raise ConfigError("replay.burst_every", f"must be > 0, got {self.burst_every}")
        if self.burst_seconds > self.burst_every:
            raise ConfigError(
                "replay.burst_seconds", f"must be <= burst_every ({self.burst_every}), got {self.burst_seconds}"
            )
        if self.max_trades is not None and self.max_trades < 0:
            raise ConfigError("replay.max_trades", f"must be >= 0, got {self.max_trades}")
        if not self.heartbeat > 0:
            raise ConfigError("replay.heartbeat", f"must be > 0, got {self.heartbeat}")
        if self.recent_limit < 1:
            raise ConfigError("replay.recent_limit", f"must be >= 1, got {self.recent_limit}")
        if not 0.001 <= self.tick <= 1.0:
            raise ConfigError("replay.tick", f"must be in [0.001, 1] seconds, got {self.tick}")
        if self.session_dir is not None:
            path = Path(self.session_dir)
            if not path.is_dir():
                raise ConfigError("replay.session_dir", f"{path} is not a directory")
            object.__setattr__(self, "session_dir", path)

    @property
    def bind_host(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host
