"""The sharded, multi-process sender that never loses a trade (router, workers, spool, books)."""

from .metrics import Books, SenderMetrics
from .router import ShardedSender

__all__ = ["Books", "SenderMetrics", "ShardedSender"]
