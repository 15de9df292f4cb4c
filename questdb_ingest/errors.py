"""One exception tree for the whole package, so callers can catch exactly what they mean.

PumpwatchError
├── ConfigError                   invalid setting; names the offending key
│   └── TtlDecreaseError          a migration would lower a table's TTL (drop partitions); needs consent
├── ValidationError               a trade/event field is out of bounds; names field and value
├── DataLossError                 trades a feed received were not stored; carries the count
├── QuestDBServerError            the local QuestDB process (install, start, stop)
│   └── QuestDBNotInstalledError  the pinned jar or a suitable JDK is missing
├── QuestDBAuthError              QuestDB answered PGWire and refused the user/password
├── MigrationError                schema migrations
│   ├── MigrationChecksumError    an applied migration file was edited afterwards
│   └── SchemaPendingError        the database lacks migrations this version needs
├── ConnectorError                exchange connectors
│   ├── FrameError                a frame could not be used (malformed / unexpected); dead-lettered
│   │   ├── VenueError            the venue sent an explicit error message
│   │   └── UnknownEventError     the venue sent an event the connector does not know
│   └── VenueRequestError         a REST call to a venue failed (status, body attached)
├── QueryError                    a read from QuestDB failed (PGWire); the cause is chained
├── ApiRequestError               an HTTP API request parameter is invalid (answered 400)
├── AlertDeliveryError            the alert webhook refused a post or did not answer (status attached)
├── RetentionError                disk-pressure retention could not do all it had to (a drop refused, …)
├── BackupError                   a backup could not be created, checked, pruned, uploaded or restored
│   ├── BackupVerifyError         a backup's files do not match its manifest; names the files
│   ├── RestoreTargetError        the restore target holds files (needs --force) or a running server
│   └── BackupVersionError        the backup was taken by another QuestDB version than the pinned one
├── ArchiveError                  historical data in (pumpwatch archive)
│   ├── ArchiveFormatError        a file's format is unknown or its layout unusable; names the file
│   └── RollbackError             a rollback could not remove exactly what it had to (nothing lost)
└── WriteError                    ILP writes
    ├── FlushError                a flush did not reach a confirmed commit; rows are kept
    │   ├── FlushRejectedError    the server answered and refused the data (its message attached)
    │   └── FlushTransportError   QuestDB could not be reached or timed out (retryable)
    └── SenderError               the sharded sender (router, workers, spool)
        ├── SenderClosedError     a batch was submitted after close()
        ├── BackpressureTimeoutError  submit() waited longer than its timeout; the batch was not taken
        ├── TransportUnsupportedError  the server does not speak the chosen transport
        ├── WorkerCrashLoopError  a worker failed to start sender.max_restarts times in a row
        ├── UnstoredRowsError     close() ended with rows held only in memory; carries the count
        └── SpoolError            the durable spool
            ├── SpoolLockedError  another process owns the spool directory
            └── SpoolFullError    the spool reached spool_max_bytes; the record was not taken
                └── SpoolDiskFullError  the spool's filesystem is full (ENOSPC/EDQUOT)
"""

from __future__ import annotations


class PumpwatchError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(PumpwatchError):
    """A configuration value is missing, unknown or invalid."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key {key!r}: {message}")
        self.key = key


class TtlDecreaseError(ConfigError):
    """Applying ``schema.ttl_days`` would lower a table's TTL, so QuestDB would drop older partitions."""

    def __init__(self, message: str, drops: list[str]) -> None:
        super().__init__("schema.ttl_days", message)
        self.drops = drops


class DataLossError(PumpwatchError):
    """Trades were received by the feeds but neither confirmed by QuestDB nor written to the spool."""

    def __init__(self, message: str, lost: int) -> None:
        super().__init__(message)
        self.lost = lost


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


class QuestDBAuthError(PumpwatchError):
    """QuestDB answered over PGWire and refused the login: the server is up, so the fix is
    ``questdb.user``/``questdb.password``, not starting it (retrying cannot help either)."""

    def __init__(self, host: str, port: int, user: str, reason: str) -> None:
        super().__init__(
            f"authentication failed: QuestDB at {host}:{port} refused user {user!r} over PGWire ({reason}); "
            "check questdb.user and questdb.password (PUMPWATCH_QUESTDB_USER / PUMPWATCH_QUESTDB_PASSWORD)"
        )
        self.host = host
        self.port = port
        self.user = user
        self.reason = reason


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


class SchemaPendingError(MigrationError):
    """The database is missing migrations this version writes to (``pumpwatch db migrate``)."""

    def __init__(self, message: str, pending: list[str]) -> None:
        super().__init__(message)
        self.pending = pending


class ConnectorError(PumpwatchError):
    """An exchange connector could not do its work (frame, REST or connection trouble)."""


class FrameError(ConnectorError, ValueError):
    """A received frame could not be turned into trades; it goes to the dead-letter file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VenueError(FrameError):
    """The venue answered with an explicit error message (bad subscription, rate limit, ...)."""


class UnknownEventError(FrameError):
    """The venue sent an event type the connector does not know; counted apart from malformed
    frames, since it means the venue's protocol moved on, not that a frame broke."""

    def __init__(self, reason: str, event: str) -> None:
        super().__init__(reason)
        self.event = event


class VenueRequestError(ConnectorError):
    """A REST request to a venue failed or returned something unusable."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class QueryError(PumpwatchError):
    """A read from QuestDB over PGWire failed (unreachable, timed out, or the SQL was refused)."""


class ApiRequestError(PumpwatchError):
    """A parameter of an HTTP API request is invalid; the API answers 400 with this message."""


class AlertDeliveryError(PumpwatchError):
    """The alert webhook did not take a post after its retries: ``status`` is the last HTTP status
    (None when nothing answered) and ``reason`` what went wrong; the URL is shown without its path,
    which holds the Slack or Telegram secret."""

    def __init__(self, where: str, status: int | None, reason: str, attempts: int) -> None:
        super().__init__(f"alert webhook {where} did not take the alert after {attempts} attempt(s): {reason}")
        self.where = where
        self.status = status
        self.reason = reason
        self.attempts = attempts


class RetentionError(PumpwatchError):
    """A retention run could not do everything its policy asked: a partition drop was refused or not
    applied in time, or the disk usage or the spool could not be read. What did happen is kept."""


class BackupError(PumpwatchError):
    """A backup could not be created, checked, pruned, uploaded or restored; the message says why."""


class BackupVerifyError(BackupError):
    """A backup's files do not match its manifest (missing, resized or altered); ``problems`` lists
    each file with what is wrong with it."""

    def __init__(self, name: str, problems: list[tuple[str, str]]) -> None:
        shown = "; ".join(f"{path}: {why}" for path, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"backup {name} failed verification, {len(problems)} problem(s): {shown}{more}")
        self.name = name
        self.problems = problems


class RestoreTargetError(BackupError):
    """The restore target already holds files (``--force`` replaces them) or a server runs on it."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(message)
        self.target = target


class BackupVersionError(BackupError):
    """QuestDB restores only a checkpoint written by the same release line; the pinned one differs."""

    def __init__(self, name: str, backup_version: str, pinned_version: str) -> None:
        super().__init__(
            f"backup {name} was taken by QuestDB {backup_version} but the pinned server is QuestDB "
            f"{pinned_version} (questdb.env); restore it with QuestDB {backup_version}, or re-pin that "
            "version first"
        )
        self.backup_version = backup_version
        self.pinned_version = pinned_version


class ArchiveError(PumpwatchError):
    """An archive ingest, status or rollback could not do what it was asked; the message says why."""


class ArchiveFormatError(ArchiveError):
    """A source file's format cannot be told, or its layout is unusable as a whole (not one bad line:
    those are rejects); names the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RollbackError(ArchiveError):
    """A rollback stopped before removing exactly what it had to; what it kept aside stays in the
    table it names, so a rerun finishes it and nothing is lost."""


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


class SenderError(WriteError):
    """The sharded sender could not take or deliver a batch; the message says where the rows are."""


class SenderClosedError(SenderError):
    """``submit`` after ``close``: the sender no longer takes rows (the caller still has them)."""


class BackpressureTimeoutError(SenderError):
    """``submit`` waited ``timeout`` seconds for queue space; rows after ``accepted_rows`` were not taken."""

    def __init__(self, message: str, accepted_rows: int) -> None:
        super().__init__(message)
        self.accepted_rows = accepted_rows


class TransportUnsupportedError(SenderError):
    """The QuestDB server does not accept the selected ingestion transport."""


class WorkerCrashLoopError(SenderError):
    """A sender worker failed ``attempts`` starts in a row; ``last_error`` is its last traceback."""

    def __init__(self, shard: int, attempts: int, last_error: str) -> None:
        tail = last_error.strip().splitlines()[-1] if last_error.strip() else "no error message"
        super().__init__(f"sender worker {shard} failed {attempts} starts in a row; last error: {tail}")
        self.shard = shard
        self.attempts = attempts
        self.last_error = last_error


class UnstoredRowsError(SenderError):
    """``close`` ended with ``rows`` neither confirmed by QuestDB nor written to the spool (in memory only)."""

    def __init__(self, message: str, rows: int, by_exchange: dict[str, int]) -> None:
        super().__init__(message)
        self.rows = rows
        self.by_exchange = by_exchange


class SpoolError(SenderError):
    """The local durable spool could not store or read a record."""


class SpoolLockedError(SpoolError):
    """Another process holds the spool directory (two senders must never share one)."""


class SpoolFullError(SpoolError):
    """The spool reached its size bound; the record was not written (and stays in memory)."""

    def __init__(self, directory: str, size: int, limit: int, needed: int) -> None:
        super().__init__(
            f"spool {directory} is full: {size:,} of {limit:,} bytes used, {needed:,} more needed; "
            "rows stay queued in memory and producers are slowed until QuestDB is back or the bound "
            "(sender.spool_max_bytes) is raised"
        )
        self.directory = directory
        self.size = size
        self.limit = limit


class SpoolDiskFullError(SpoolFullError):
    """The filesystem under the spool has no room (ENOSPC/EDQUOT); the record was not taken, the
    segment was cut back to its last whole record, and the rows stay queued in memory."""

    def __init__(self, directory: str, size: int, needed: int, reason: str) -> None:
        PumpwatchError.__init__(
            self,
            f"the filesystem holding spool {directory} is full ({reason}); {size:,} bytes spooled, "
            f"{needed:,} more needed; rows stay queued in memory and producers are slowed until QuestDB is "
            "back or space is freed",
        )
        self.directory = directory
        self.size = size
        self.limit = size
