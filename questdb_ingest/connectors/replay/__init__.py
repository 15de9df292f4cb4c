"""A local stand-in for every venue (WebSocket + REST on 127.0.0.1) so connectors run offline.

``ReplayServer(ReplayConfig(...))`` generates deterministic trades or plays a recorded session;
``pumpwatch replay-server`` runs it from the command line (``.cli.replay_server``).
"""

from .config import ALL_CONNECTORS, ReplayConfig
from .control import ReplayControl
from .generator import TradeGenerator, universe
from .server import ReplayServer
from .session import RecordedFrame, SessionWriter, read_session

__all__ = [
    "ALL_CONNECTORS",
    "RecordedFrame",
    "ReplayConfig",
    "ReplayControl",
    "ReplayServer",
    "SessionWriter",
    "TradeGenerator",
    "read_session",
    "universe",
]
