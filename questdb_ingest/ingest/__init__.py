"""The write path: ILP configuration, columnar buffers and batch writers."""

from .writer import (
    CompareWriter,
    GapWriter,
    HealthWriter,
    ListingWriter,
    RolloutEventWriter,
    TableWriter,
    TradeWriter,
)

__all__ = [
    "CompareWriter",
    "GapWriter",
    "HealthWriter",
    "ListingWriter",
    "RolloutEventWriter",
    "TableWriter",
    "TradeWriter",
]
