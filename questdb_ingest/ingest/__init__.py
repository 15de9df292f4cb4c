"""The write path: ILP configuration, columnar buffers and batch writers."""

from .writer import GapWriter, HealthWriter, ListingWriter, TableWriter, TradeWriter

__all__ = ["GapWriter", "HealthWriter", "ListingWriter", "TableWriter", "TradeWriter"]
