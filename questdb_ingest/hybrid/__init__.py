"""Hybrid mode: the ring buffer next to QuestDB, shadow compare, staged rollout and rollback,
listing detection and the ±20 s window around a listing trigger."""

from .manager import HybridDataManager, HybridSink
from .ring import RingBuffer
from .rollout import Rollout, RolloutConfig
from .window import ListingData, VenueDiff, WindowDiff

__all__ = [
    "HybridDataManager",
    "HybridSink",
    "ListingData",
    "RingBuffer",
    "Rollout",
    "RolloutConfig",
    "VenueDiff",
    "WindowDiff",
]
