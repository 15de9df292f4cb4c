"""The write path: ILP configuration, columnar buffers and batch writers."""

from .writer import HealthWriter, ListingWriter, TableWriter, TradeWriter

__all__ = ["HealthWriter", "ListingWriter", "TableWriter", "TradeWriter"]
