"""One exception tree for the whole package, so callers can catch exactly what they mean.

PumpwatchError
├── ConfigError                   invalid setting; names the offending key
├── ValidationError               a trade/event field is out of bounds; names field and value
├── QuestDBServerError            the local QuestDB process (install, start, stop)
│   └── QuestDBNotInstalledError  the pinned jar or a suitable JDK is missing
├── MigrationError                schema migrations
│   └── MigrationChecksumError    an applied migration file was edited afterwards
└── WriteError                    ILP writes
    └── FlushError                a flush did not reach a confirmed commit; rows are kept
        ├── FlushRejectedError    the server answered and refused the data (its message attached)
        └── FlushTransportError   QuestDB could not be reached or timed out (retryable)
"""

from __future__ import annotations


class PumpwatchError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(PumpwatchError):
    """A configuration value is missing, unknown or invalid."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key {key!r}: {message}")
        self.key = key


class ValidationError(PumpwatchError, ValueError):
    """A record failed validation before it was sent; nothing was written."""

    def __init__(self, field: str, value: object, reason: str, row: int | None = None) -> None:
        where = f" (row {row})" if row is not None else ""
        super().__init__(f"invalid {field}={value!r}{where}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason
        self.row = row


class QuestDBServerError(PumpwatchError):
    """The managed QuestDB process could not be started, stopped or reached."""


class QuestDBNotInstalledError(QuestDBServerError):
    """The pinned QuestDB jar (or a JDK able to run it) is not installed."""


class MigrationError(PumpwatchError):
    """A schema migration could not be applied."""


class MigrationChecksumError(MigrationError):
    """A migration that was already applied has been edited since."""

    def __init__(self, version: int, name: str, recorded: str, current: str) -> None:
        super().__init__(
            f"migration {version:03d} ({name}) was applied with checksum {recorded[:12]}… but the file "
            f"now has {current[:12]}…; applied migrations are immutable — revert the edit and add a "
            "new migration instead"
        )
        self.version = version
        self.recorded = recorded
        self.current = current


class WriteError(PumpwatchError):
    """Writing to QuestDB failed."""


class FlushError(WriteError):
    """A flush did not complete; the rows stay buffered so the caller can retry or spool them."""

    retryable = True

    def __init__(self, table: str, rows: int, server_message: str) -> None:
        super().__init__(f"flush of {rows} row(s) to {table!r} failed: {server_message}")
        self.table = table
        self.rows = rows
        self.server_message = server_message


class FlushRejectedError(FlushError):
    """QuestDB answered and refused the batch (bad data or schema); resending it unchanged fails again."""

    retryable = False


class FlushTransportError(FlushError):
    """QuestDB could not be reached, or did not answer in time; a retry may succeed."""
