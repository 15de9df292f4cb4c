"""questdb_ingest: capture every public trade from crypto exchange feeds into QuestDB, losslessly.

The public surface is re-exported here; submodules are implementation detail.
"""

from .config import Settings, load_settings
from .errors import (
    ConfigError,
    FlushError,
    FlushRejectedError,
    FlushTransportError,
    MigrationChecksumError,
    MigrationError,
    PumpwatchError,
    QueryError,
    QuestDBNotInstalledError,
    QuestDBServerError,
    ValidationError,
    WriteError,
)
from .models import HealthEvent, ListingEvent, Trade, TradeBatch

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "FlushError",
    "FlushRejectedError",
    "FlushTransportError",
    "HealthEvent",
    "ListingEvent",
    "MigrationChecksumError",
    "MigrationError",
    "PumpwatchError",
    "QueryError",
    "QuestDBNotInstalledError",
    "QuestDBServerError",
    "Settings",
    "Trade",
    "TradeBatch",
    "ValidationError",
    "WriteError",
    "load_settings",
]
