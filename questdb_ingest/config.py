"""Typed settings: defaults, then a TOML file, then PUMPWATCH_* environment variables, then flags.

Unknown keys and out-of-range values fail at start-up with a ``ConfigError`` naming the key, and
a ``PUMPWATCH_*`` environment variable naming no setting (other than ``ENV_NOT_SETTINGS``) fails
naming the variable, so a typo never silently falls back to a default.

Every file the system keeps (QuestDB's data, the spool, dead letters, rollout state, exports)
lives under one **state root**, never under the working directory: a spool written by a run
started from one directory (or by systemd, or cron) is found by the next run wherever it starts.
The root is ``--state-dir``, else ``$PUMPWATCH_STATE_DIR``, else ``[state] dir`` in the config
file (relative to that file), else the per-user data directory (``$XDG_DATA_HOME/pumpwatch``,
by default ``~/.local/share/pumpwatch``). Relative paths in the other sections are relative to it.

The config file is the first of ``--config``, ``$PUMPWATCH_CONFIG``, ``./pumpwatch.toml``,
``$XDG_CONFIG_HOME/pumpwatch/pumpwatch.toml`` (``~/.config/…``) and
``/etc/pumpwatch/pumpwatch.toml`` that exists; the one used is kept in ``Settings.config_file``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "PUMPWATCH_"
# The PUMPWATCH_* variables that are not PUMPWATCH_<SECTION>_<KEY> settings; any other PUMPWATCH_*
# variable must name a setting, so a misspelt section or key fails instead of being ignored.
ENV_NOT_SETTINGS = frozenset(
    {
        "PUMPWATCH_CONFIG",  # the config file (find_config)
        "PUMPWATCH_CACHE_DIR",  # the QuestDB jar cache (server.install, scripts/install-questdb.sh)
        "PUMPWATCH_DRILL_OUTAGE_S",  # the fault drills' outage length (tests/drills, scripts/fault-drills.sh)
    }
)
DEFAULT_CONFIG_FILE = "pumpwatch.toml"
SYSTEM_CONFIG_DIR = Path("/etc/pumpwatch")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QuestDBSettings:
    """Where QuestDB listens and where the managed server keeps its files."""

    host: str = "127.0.0.1"
    http_port: int = 9000
    pg_port: int = 8812
    ilp_tcp_port: int = 9009
    health_port: int = 9003
    user: str = "admin"
    password: str = "quest"  # noqa: S105 - QuestDB's documented default
    database: str = "qdb"
    data_dir: str = "questdb"  # under the state root unless absolute
    heap: str = ""
    start_timeout: float = 90.0


@dataclass(frozen=True)
class IngestSettings:
    """How the ILP writers batch and flush."""

    client_conf: str = ""
    batch_rows: int = 1000
    flush_interval: float = 1.0
    min_linger: float = 0.2  # sender: a request waits this long for more rows once batch_rows is reached
    request_timeout_ms: int = 30_000


FSYNC_POLICIES = ("always", "segment", "never")


@dataclass(frozen=True)
class SenderSettings:
    """The sharded sender: worker processes, retry/backoff, queue bounds and the durable spool."""

    workers: int = 0  # 0 = one per two CPU cores
    max_queue_rows: int = 400_000  # per shard, unconfirmed rows held by the router
    spool_dir: str = "spool"  # under the state root unless absolute
    spool_max_bytes: int = 8 << 30
    spool_segment_bytes: int = 64 << 20
    spool_fsync: str = "always"
    spool_after: float = 0.25  # seconds of failed flushes before unconfirmed batches go to the spool
    spool_linger: float = 0.25  # while spooling, rows arriving within this long become one spool record
    retry_initial: float = 0.1
    retry_max: float = 5.0
    restart_backoff_max: float = 10.0
    max_restarts: int = 5  # a worker failing this many starts in a row stops the sender (typed error)
    drain_timeout: float = 60.0  # close()/SIGTERM: longest wait for workers to confirm or spool their rows
    ledger_dir: str = "ledger"  # what QuestDB confirmed, per minute (pumpwatch verify); under the state root


@dataclass(frozen=True)
class ConnectorSettings:
    """Exchange connectors: which feeds, which instruments, and how the connection layer behaves."""

    enabled: str = "all"  # comma list of connector names, or "all"
    quotes: str = "USDT,KRW"  # instruments quoted in these assets ("" = every quote)
    symbols: str = ""  # comma list of BASE-QUOTE to restrict to ("" = all listed)
    max_symbols: int = 0  # per connector, 0 = no cap
    base_url: str = ""  # send every venue to this server (the replay server), e.g. http://127.0.0.1:8765
    refresh_interval: float = 60.0  # symbol-list refresh: new listings subscribed without a restart
    health_interval: float = 10.0  # exchange_health row period (and on every state change)
    flush_interval: float = 0.05  # parsed trades handed to the sender at least this often
    batch_rows: int = 5000  # ... or when this many are waiting
    reconnect_initial: float = 0.5
    reconnect_max: float = 60.0
    ping_interval: float = 0.0  # 0 = the venue's heartbeat period
    watchdog_timeout: float = 0.0  # 0 = the venue's silence limit before a reconnect
    rotate_after: float = 0.0  # 0 = the venue's connection lifetime minus rotate_margin
    rotate_margin: float = 600.0
    backfill_window: float = 600.0  # gaps longer than this are recorded but not back-filled
    backfill_max_instruments: int = 200
    dead_letter_dir: str = "dead-letter/frames"  # under the state root unless absolute


@dataclass(frozen=True)
class HybridSettings:
    """Hybrid mode: the ring buffer, the listing detector and its window, the staged rollout."""

    hot_window: float = 3600.0  # seconds of trades kept in the ring buffer
    memory_cap_mb: int = 1024  # hard cap on the ring buffer's arrays; the oldest segments go first
    segment_rows: int = 65_536  # rows per ring segment (the unit of allocation and recycling)
    listing_sources: str = "upbit_spot"  # connectors whose market list is watched for new listings
    listing_quote: str = "KRW"  # a new market in this quote is a listing trigger
    listing_poll_interval: float = 1.0  # seconds between market-list polls
    window_before: float = 20.0  # seconds of trades before the trigger
    window_after: float = 20.0  # ... and after it; collected at trigger + window_after + window_settle
    window_settle: float = 2.0  # grace for trades still in flight when the window closes
    export_dir: str = "listings"  # Parquet + JSON of every collected window (under the state root)
    rollout_config: str = ""  # YAML with phases and rollback thresholds ("" = built-in default)
    rollout_state: str = "rollout.json"  # the current phase, kept across restarts (under the state root)
    compare_sync_timeout: float = 15.0  # compare mode waits this long for QuestDB to hold the window


@dataclass(frozen=True)
class SchemaSettings:
    """Parameters substituted into the schema migrations."""

    ttl_days: int = 30
    table_prefix: str = ""
    schema_dir: str = ""
    # Generated and replayed trades (demo, load, run --source replay|synthetic) go to tables named
    # <table_prefix><demo_prefix><name>, never into the production tables under real venue names.
    demo_prefix: str = "demo_"


@dataclass(frozen=True)
class RetentionSettings:
    """Disk-pressure retention of the QuestDB data volume (``ops.retention``): above ``warn_percent``
    partitions older than ``normal_days`` go, above ``emergency_percent`` those older than
    ``emergency_days`` too, oldest first, until the disk is back under it."""

    enabled: bool = True  # the service runs the manager every interval; `pumpwatch retention` works either way
    interval: float = 300.0  # seconds between checks
    warn_percent: float = 70.0  # disk used above this: enforce the normal retention
    emergency_percent: float = 85.0  # above this: drop partitions older than emergency_days, oldest first
    normal_days: int = 0  # 0 = schema.ttl_days (the tables' TTL)
    emergency_days: int = 25  # at most the normal retention (capped at schema.ttl_days when normal_days = 0)


@dataclass(frozen=True)
class LogSettings:
    """Log lines of every process (main and sender workers)."""

    level: str = "info"  # debug | info | warning | error
    format: str = "text"  # text | json (one object per line)
    file: str = ""  # also append to this file (under the state root unless absolute); "" = stderr only
    status_interval: float = 10.0  # without a terminal (pipe, systemd): a status line this often; 0 = none


ALERT_FORMATS = ("json", "slack", "telegram")


@dataclass(frozen=True)
class AlertSettings:
    """Operator alerts (``ops.alerts``): always logged and kept for ``/api/alerts``; posted to a webhook
    when one is set, deduplicated and rate-limited so a flapping feed cannot flood a channel."""

    webhook_url: str = ""  # "" = no webhook (log + /api/alerts only)
    format: str = "json"  # json | slack (incoming webhook) | telegram (Bot API sendMessage)
    telegram_chat_id: str = ""  # required with format = "telegram"
    dedupe_window: float = 300.0  # one post per dedupe key this often; repeats are counted in the next
    rate_limit: int = 20  # webhook posts per minute overall; excess is logged, kept and summarised
    timeout: float = 5.0  # seconds per webhook request
    retries: int = 3  # after a failed post (5xx, 408/429, no answer): sender-style backoff
    retry_initial: float = 1.0
    retry_max: float = 30.0
    feed_down_after: float = 60.0  # a feed disconnected this long raises feed.down
    dead_letter_surge: int = 100  # dead letters per minute that raise deadletter.surge (0 = off)
    spool_alarm_bytes: int = 1 << 30  # spooled bytes that raise spool.alarm (0 = only a full spool)
    history: int = 200  # alerts kept in memory for /api/alerts


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API and Prometheus ``/metrics`` that ``pumpwatch run`` serves."""

    enabled: bool = True
    host: str = "127.0.0.1"  # loopback unless the operator opens it up (behind a proxy)
    port: int = 8780  # 0 = any free port (printed at start)
    max_trades: int = 10_000  # the largest ``limit`` /api/trades/recent accepts


BACKUP_COMPRESSIONS = ("none", "gzip", "zstd")


@dataclass(frozen=True)
class BackupSettings:
    """QuestDB backups (``pumpwatch backup``, scripts/backup-questdb.sh and the service's scheduler)."""

    dir: str = "backups"  # one <dir>/questdb-YYYYmmddTHHMMSSZ/ per backup (under the state root)
    keep_days: int = 7  # prune removes backups older than this (never the newest one)
    compress: str = "none"  # none (a directory of files) | gzip | zstd (one tar archive)
    interval: float = 86_400.0  # the service's scheduler: seconds between backups; 0 = off
    upload: str = ""  # s3://bucket/prefix to copy each new backup to ("" = local only)


# The archive tables and the archive.* key holding each one's TTL (also its placeholder in 006).
ARCHIVE_TTL_KEYS = {
    "scalp_ticks": "ticks_ttl_days",
    "scalp_1m_bars": "bars_ttl_days",
    "scalp_gaps": "gaps_ttl_days",
    "swing_bars_10m": "swing_ttl_days",
}


@dataclass(frozen=True)
class ArchiveSettings:
    """Historical data in (``pumpwatch archive``): the archive tables' TTLs (archives usually
    outlive the live tables' 30 days), the runner's parallelism, batch size and retries, and the
    1-minute bars' coverage rule (seed 004 §4.2: ticks in the minute / expected_tick_hz x 60)."""

    ticks_ttl_days: int = 365  # scalp_ticks
    bars_ttl_days: int = 365  # scalp_1m_bars
    gaps_ttl_days: int = 365  # scalp_gaps
    swing_ttl_days: int = 365  # swing_bars_10m
    parallel_files: int = 10  # files ingested at once
    batch_rows: int = 50_000  # rows per request (and per watermark commit)
    retries: int = 3  # a batch QuestDB refuses or cannot take is retried this often before its file is failed
    retry_initial: float = 0.5
    retry_max: float = 10.0
    expected_tick_hz: float = 2.0  # the observer's scalp tick rate: a full minute holds hz x 60 ticks
    low_coverage: float = 0.8  # a 1-minute bar under this coverage is quality_flag = 'low_coverage'
    reject_dir: str = "archive/rejects"  # one <file>.rejects.jsonl per source file with bad lines (state root)

    def ttl_days(self, logical: str) -> int:
        """The TTL of one archive table."""
        return int(getattr(self, ARCHIVE_TTL_KEYS[logical]))


@dataclass(frozen=True)
class StateSettings:
    """Where the system keeps its files (see the module docstring for how the root is chosen)."""

    dir: str = ""  # "" = the per-user data directory; resolved to an absolute path by load_settings


@dataclass(frozen=True)
class Settings:
    """All settings; build with ``load_settings`` so validation always runs and paths are absolute."""

    questdb: QuestDBSettings = field(default_factory=QuestDBSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    sender: SenderSettings = field(default_factory=SenderSettings)
    connectors: ConnectorSettings = field(default_factory=ConnectorSettings)
    hybrid: HybridSettings = field(default_factory=HybridSettings)
    schema: SchemaSettings = field(default_factory=SchemaSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    log: LogSettings = field(default_factory=LogSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    state: StateSettings = field(default_factory=StateSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    config_file: str = ""  # the file these settings were read from ("" = none found)

    def paths(self) -> dict[str, str]:
        """Every file location the system uses, resolved (printed at start-up)."""
        return {
            "config": self.config_file or "(none found; defaults)",
            "state": self.state.dir,
            "questdb data": self.questdb.data_dir,
            "spool": self.sender.spool_dir,
            "ledger": self.sender.ledger_dir,
            "dead letters": self.connectors.dead_letter_dir,
            "rollout state": self.hybrid.rollout_state,
            "exports": self.hybrid.export_dir,
            "log file": self.log.file or "(none; stderr only)",
            "backups": self.backup.dir,
            "archive rejects": self.archive.reject_dir,
        }

    def client_conf(self) -> str:
        """The ILP client configuration string: QDB_CLIENT_CONF, then ingest.client_conf, then derived."""
        env_conf = os.environ.get("QDB_CLIENT_CONF", "").strip()
        if env_conf:
            return env_conf
        if self.ingest.client_conf:
            return self.ingest.client_conf
        q = self.questdb
        return f"http::addr={q.host}:{q.http_port};request_timeout={self.ingest.request_timeout_ms};"

    def pg_conninfo(self) -> str:
        """libpq connection string for PGWire, every value quoted by psycopg: a password with a space,
        a quote or ``=`` is passed as it is, never parsed as more options."""
        from psycopg.conninfo import make_conninfo  # psycopg is heavy; only PGWire users pay for it

        q = self.questdb
        return make_conninfo(host=q.host, port=q.pg_port, user=q.user, password=q.password, dbname=q.database)

    def table(self, name: str) -> str:
        """Physical table name for a logical one (applies ``schema.table_prefix``)."""
        return f"{self.schema.table_prefix}{name}"

    def for_demo(self) -> Settings:
        """These settings with the tables of generated/replayed data: ``schema.demo_prefix`` appended
        to the table prefix (validated at load), so test trades never mix with captured ones."""
        sc = self.schema
        return replace(self, schema=replace(sc, table_prefix=sc.table_prefix + sc.demo_prefix, demo_prefix=""))


_SECTIONS: dict[str, type[Any]] = {
    "questdb": QuestDBSettings,
    "ingest": IngestSettings,
    "sender": SenderSettings,
    "connectors": ConnectorSettings,
    "hybrid": HybridSettings,
    "schema": SchemaSettings,
    "retention": RetentionSettings,
    "log": LogSettings,
    "api": ApiSettings,
    "backup": BackupSettings,
    "state": StateSettings,
    "alerts": AlertSettings,
    "archive": ArchiveSettings,
}
# Files the system writes: relative values live under the state root.
_STATE_PATHS = (
    ("questdb", "data_dir"),
    ("sender", "spool_dir"),
    ("sender", "ledger_dir"),
    ("connectors", "dead_letter_dir"),
    ("hybrid", "rollout_state"),
    ("hybrid", "export_dir"),
    ("log", "file"),
    ("backup", "dir"),
    ("archive", "reject_dir"),
)
# Files the user points at: relative to the config file when set there, else to the working directory.
_INPUT_PATHS = (("hybrid", "rollout_config"), ("schema", "schema_dir"), ("state", "dir"))


_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _coerce(key: str, raw: Any, target: type[Any] | str) -> Any:
    kind = target if isinstance(target, str) else target.__name__
    try:
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind == "bool":  # a TOML boolean, or (environment variables) true/false, yes/no, on/off, 1/0
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _BOOLS:
                return _BOOLS[raw.strip().lower()]
            raise ValueError
        if kind == "str":
            if not isinstance(raw, str):
                raise ValueError
            return raw
    except ValueError:
        raise ConfigError(key, f"expected {kind}, got {raw!r}") from None
    raise ConfigError(key, f"unsupported type {kind}")


def _apply(base: Any, section: str, values: Mapping[str, Any], source: str) -> Any:
    known = {f.name: f.type for f in fields(base)}
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        dotted = f"{section}.{key}"
        if key not in known:
            raise ConfigError(dotted, f"unknown key (from {source}); known keys: {', '.join(sorted(known))}")
        changes[key] = _coerce(dotted, raw, known[key])
    return replace(base, **changes)


def _validate(s: Settings) -> None:
    q, i, sc = s.questdb, s.ingest, s.schema
    for name in ("http_port", "pg_port", "ilp_tcp_port", "health_port"):
        port = getattr(q, name)
        if not 1 <= port <= 65535:
            raise ConfigError(f"questdb.{name}", f"port {port} outside 1..65535")
    ports = [q.http_port, q.pg_port, q.ilp_tcp_port, q.health_port]
    if len(set(ports)) != len(ports):
        raise ConfigError("questdb.http_port", f"ports must be distinct, got {ports}")
    if q.start_timeout <= 0:
        raise ConfigError("questdb.start_timeout", "must be > 0")
    if q.heap and not re.fullmatch(r"\d+[kKmMgG]?", q.heap):
        raise ConfigError("questdb.heap", f"expected a JVM size like '2g', got {q.heap!r}")
    if i.batch_rows < 1:
        raise ConfigError("ingest.batch_rows", f"must be >= 1, got {i.batch_rows}")
    if not 0 < i.flush_interval <= 3600:
        raise ConfigError("ingest.flush_interval", f"must be in (0, 3600] seconds, got {i.flush_interval}")
    if not 0 <= i.min_linger <= 3600:  # above flush_interval it has no effect: that interval sends anyway
        raise ConfigError("ingest.min_linger", f"must be in [0, 3600] seconds, got {i.min_linger}")
    if i.request_timeout_ms < 1:
        raise ConfigError("ingest.request_timeout_ms", "must be >= 1")
    if i.client_conf and "::" not in i.client_conf:
        raise ConfigError("ingest.client_conf", "expected '<protocol>::key=value;...'")
    _validate_sender(s.sender)
    _validate_connectors(s.connectors)
    _validate_hybrid(s.hybrid)
    _validate_alerts(s.alerts)
    _validate_retention(s.retention)
    _validate_archive(s.archive)
    if not 1 <= sc.ttl_days <= 36500:
        raise ConfigError("schema.ttl_days", f"must be in 1..36500, got {sc.ttl_days}")
    if sc.table_prefix and not _IDENT.match(sc.table_prefix):
        raise ConfigError("schema.table_prefix", f"must be a SQL identifier prefix, got {sc.table_prefix!r}")
    from .logs import FORMATS, LEVELS

    if s.log.level.lower() not in LEVELS:
        raise ConfigError("log.level", f"must be one of {', '.join(LEVELS)}, got {s.log.level!r}")
    if s.log.format.lower() not in FORMATS:
        raise ConfigError("log.format", f"must be one of {', '.join(FORMATS)}, got {s.log.format!r}")
    if not 0 <= s.log.status_interval <= 86_400:
        raise ConfigError("log.status_interval", f"must be in [0, 86400] seconds, got {s.log.status_interval}")
    if sc.demo_prefix and not _IDENT.match(sc.table_prefix + sc.demo_prefix):
        raise ConfigError("schema.demo_prefix", f"must be a SQL identifier prefix, got {sc.demo_prefix!r}")
    if not 0 <= s.api.port <= 65535:
        raise ConfigError("api.port", f"port {s.api.port} outside 0..65535")
    if not s.api.host.strip():
        raise ConfigError("api.host", "must be a host name or address, e.g. 127.0.0.1")
    if not 1 <= s.api.max_trades <= 1_000_000:
        raise ConfigError("api.max_trades", f"must be in 1..1000000, got {s.api.max_trades}")
    _validate_backup(s.backup)


def _validate_backup(b: BackupSettings) -> None:
    if not b.dir:
        raise ConfigError("backup.dir", "must not be empty")
    if not 0 <= b.keep_days <= 36_500:
        raise ConfigError("backup.keep_days", f"must be in 0..36500, got {b.keep_days}")
    if b.compress not in BACKUP_COMPRESSIONS:
        raise ConfigError("backup.compress", f"must be one of {', '.join(BACKUP_COMPRESSIONS)}, got {b.compress!r}")
    if not (b.interval == 0 or 60 <= b.interval <= 366 * 86_400):
        raise ConfigError("backup.interval", f"must be 0 (off) or in [60, 31622400] seconds, got {b.interval}")
    if b.upload and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", b.upload):
        raise ConfigError("backup.upload", f"expected s3://bucket[/prefix], got {b.upload!r}")


def _validate_sender(se: SenderSettings) -> None:
    if not 0 <= se.workers <= 256:
        raise ConfigError("sender.workers", f"must be in 0..256 (0 = one per two cores), got {se.workers}")
    if se.max_queue_rows < 1:
        raise ConfigError("sender.max_queue_rows", f"must be >= 1, got {se.max_queue_rows}")
    if not se.spool_dir:
        raise ConfigError("sender.spool_dir", "must not be empty")
    if se.spool_segment_bytes < 4096:
        raise ConfigError("sender.spool_segment_bytes", f"must be >= 4096, got {se.spool_segment_bytes}")
    if se.spool_max_bytes < se.spool_segment_bytes:
        raise ConfigError("sender.spool_max_bytes", "must be >= sender.spool_segment_bytes")
    if se.spool_fsync not in FSYNC_POLICIES:
        raise ConfigError("sender.spool_fsync", f"must be one of {', '.join(FSYNC_POLICIES)}, got {se.spool_fsync!r}")
    for name in ("spool_after", "spool_linger", "retry_initial", "retry_max", "restart_backoff_max", "drain_timeout"):
        if not 0 < getattr(se, name) <= 3600:
            raise ConfigError(f"sender.{name}", f"must be in (0, 3600] seconds, got {getattr(se, name)}")
    if se.retry_max < se.retry_initial:
        raise ConfigError("sender.retry_max", "must be >= sender.retry_initial")
    if not 1 <= se.max_restarts <= 1000:
        raise ConfigError("sender.max_restarts", f"must be in 1..1000, got {se.max_restarts}")


def _validate_connectors(c: ConnectorSettings) -> None:
    from .connectors.registry import select

    select(c.enabled)  # raises ConfigError naming connectors.enabled and the known names
    for name in ("refresh_interval", "health_interval", "flush_interval", "reconnect_initial", "reconnect_max"):
        if not 0 < getattr(c, name) <= 86_400:
            raise ConfigError(f"connectors.{name}", f"must be in (0, 86400] seconds, got {getattr(c, name)}")
    if c.reconnect_max < c.reconnect_initial:
        raise ConfigError("connectors.reconnect_max", "must be >= connectors.reconnect_initial")
    for name in ("ping_interval", "watchdog_timeout", "rotate_after", "rotate_margin", "backfill_window"):
        if getattr(c, name) < 0:
            raise ConfigError(f"connectors.{name}", f"must be >= 0, got {getattr(c, name)}")
    for name in ("batch_rows", "backfill_max_instruments"):
        if getattr(c, name) < 1:
            raise ConfigError(f"connectors.{name}", f"must be >= 1, got {getattr(c, name)}")
    if c.max_symbols < 0:
        raise ConfigError("connectors.max_symbols", f"must be >= 0, got {c.max_symbols}")
    if c.base_url and not re.match(r"^(https?|wss?)://", c.base_url):
        raise ConfigError("connectors.base_url", f"expected http(s):// or ws(s):// URL, got {c.base_url!r}")
    if not c.dead_letter_dir:
        raise ConfigError("connectors.dead_letter_dir", "must not be empty")


def _validate_hybrid(h: HybridSettings) -> None:
    from .connectors.registry import select

    select(h.listing_sources, key="hybrid.listing_sources")
    if not 1 <= h.hot_window <= 7 * 86_400:
        raise ConfigError("hybrid.hot_window", f"must be in [1, 604800] seconds, got {h.hot_window}")
    if not 1 <= h.memory_cap_mb <= 1 << 20:
        raise ConfigError("hybrid.memory_cap_mb", f"must be in 1..1048576, got {h.memory_cap_mb}")
    if not 1024 <= h.segment_rows <= 1 << 24:
        raise ConfigError("hybrid.segment_rows", f"must be in 1024..16777216, got {h.segment_rows}")
    for name in ("listing_poll_interval", "compare_sync_timeout"):
        if not 0 < getattr(h, name) <= 3600:
            raise ConfigError(f"hybrid.{name}", f"must be in (0, 3600] seconds, got {getattr(h, name)}")
    for name in ("window_before", "window_after", "window_settle"):
        if not 0 <= getattr(h, name) <= 3600:
            raise ConfigError(f"hybrid.{name}", f"must be in [0, 3600] seconds, got {getattr(h, name)}")
    if not re.fullmatch(r"[A-Z0-9]+", h.listing_quote):
        raise ConfigError("hybrid.listing_quote", f"expected an upper-case asset like KRW, got {h.listing_quote!r}")
    for name in ("export_dir", "rollout_state"):
        if not getattr(h, name):
            raise ConfigError(f"hybrid.{name}", "must not be empty")


def _validate_alerts(a: AlertSettings) -> None:
    if a.format not in ALERT_FORMATS:
        raise ConfigError("alerts.format", f"must be one of {', '.join(ALERT_FORMATS)}, got {a.format!r}")
    if a.webhook_url and not re.match(r"^https?://[^/\s]+", a.webhook_url):
        raise ConfigError("alerts.webhook_url", 'expected an http(s):// URL (or "" for no webhook)')
    if a.format == "telegram" and not a.telegram_chat_id.strip():
        raise ConfigError("alerts.telegram_chat_id", "required with alerts.format = 'telegram' (the chat to post to)")
    if not 0 <= a.dedupe_window <= 86_400:
        raise ConfigError("alerts.dedupe_window", f"must be in [0, 86400] seconds, got {a.dedupe_window}")
    if not 1 <= a.rate_limit <= 10_000:
        raise ConfigError("alerts.rate_limit", f"must be in 1..10000 posts per minute, got {a.rate_limit}")
    for name in ("timeout", "retry_initial", "retry_max"):
        if not 0 < getattr(a, name) <= 3600:
            raise ConfigError(f"alerts.{name}", f"must be in (0, 3600] seconds, got {getattr(a, name)}")
    if a.retry_max < a.retry_initial:
        raise ConfigError("alerts.retry_max", "must be >= alerts.retry_initial")
    if not 0 <= a.retries <= 10:
        raise ConfigError("alerts.retries", f"must be in 0..10, got {a.retries}")
    if not 0 < a.feed_down_after <= 86_400:
        raise ConfigError("alerts.feed_down_after", f"must be in (0, 86400] seconds, got {a.feed_down_after}")
    for name in ("dead_letter_surge", "spool_alarm_bytes"):
        if getattr(a, name) < 0:
            raise ConfigError(f"alerts.{name}", f"must be >= 0, got {getattr(a, name)}")
    if not 1 <= a.history <= 100_000:
        raise ConfigError("alerts.history", f"must be in 1..100000, got {a.history}")


def _validate_retention(r: RetentionSettings) -> None:
    if not 1 <= r.interval <= 86_400:
        raise ConfigError("retention.interval", f"must be in [1, 86400] seconds, got {r.interval}")
    if not 0 < r.warn_percent < 100:
        raise ConfigError("retention.warn_percent", f"must be in (0, 100), got {r.warn_percent}")
    if not r.warn_percent < r.emergency_percent <= 100:
        raise ConfigError(
            "retention.emergency_percent",
            f"must be above retention.warn_percent ({r.warn_percent}) and at most 100, got {r.emergency_percent}",
        )
    if not 0 <= r.normal_days <= 36500:
        raise ConfigError("retention.normal_days", f"must be in 0..36500 (0 = schema.ttl_days), got {r.normal_days}")
    if not 1 <= r.emergency_days <= 36500:
        raise ConfigError("retention.emergency_days", f"must be in 1..36500, got {r.emergency_days}")
    if r.normal_days and r.emergency_days > r.normal_days:
        raise ConfigError(
            "retention.emergency_days",
            f"must be at most retention.normal_days ({r.normal_days}), got {r.emergency_days}",
        )


def user_data_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/pumpwatch``, by default ``~/.local/share/pumpwatch``."""
    base = env.get("XDG_DATA_HOME") or str(_home(env) / ".local" / "share")
    return Path(base) / "pumpwatch"


def user_config_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/pumpwatch``, by default ``~/.config/pumpwatch``."""
    base = env.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
    return Path(base) / "pumpwatch"


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def config_candidates(env: Mapping[str, str]) -> list[Path]:
    """Where a config file is looked for when none is named, in order."""
    name = DEFAULT_CONFIG_FILE
    return [Path(name), user_config_dir(env) / name, SYSTEM_CONFIG_DIR / name]


def find_config(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: a named one must exist; otherwise the first candidate that does."""
    named = Path(path) if path else (Path(env["PUMPWATCH_CONFIG"]) if env.get("PUMPWATCH_CONFIG") else None)
    if named is not None:
        if not named.is_file():
            raise ConfigError("config", f"file {str(named)!r} does not exist")
        return named.resolve()
    return next((c.resolve() for c in config_candidates(env) if c.is_file()), None)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{file}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"{file} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {file}: {exc.strerror or exc}") from None


def _env_settings(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The PUMPWATCH_<SECTION>_<KEY> variables by section; one naming no setting fails by its name."""
    found: dict[str, dict[str, str]] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_SETTINGS:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("_")
        if section not in _SECTIONS:
            raise ConfigError(
                var,
                f"environment variable names no setting: unknown section {section!r} "
                f"(PUMPWATCH_<SECTION>_<KEY>, sections: {', '.join(_SECTIONS)}; "
                f"other variables: {', '.join(sorted(ENV_NOT_SETTINGS))})",
            )
        known = {f.name for f in fields(_SECTIONS[section])}
        if key not in known:
            raise ConfigError(
                var,
                f"environment variable names no setting: unknown key {section}.{key} "
                f"(known keys: {', '.join(sorted(known))})",
            )
        found.setdefault(section, {})[key] = env[var]
    return found


def _relative_to(sections: dict[str, Any], keys: tuple[tuple[str, str], ...], base: Path, only: set[str]) -> None:
    """Make the relative ``keys`` set in this layer (``only``) absolute against ``base``."""
    for section, key in keys:
        value = getattr(sections[section], key)
        if f"{section}.{key}" in only and value and not Path(value).is_absolute():
            sections[section] = replace(sections[section], **{key: str((base / value).resolve())})


def _validate_archive(a: ArchiveSettings) -> None:
    for name, key in ARCHIVE_TTL_KEYS.items():
        if not 1 <= a.ttl_days(name) <= 36500:
            raise ConfigError(f"archive.{key}", f"must be in 1..36500, got {a.ttl_days(name)}")
    if not 1 <= a.parallel_files <= 256:
        raise ConfigError("archive.parallel_files", f"must be in 1..256, got {a.parallel_files}")
    if not 1 <= a.batch_rows <= 1_000_000:
        raise ConfigError("archive.batch_rows", f"must be in 1..1000000, got {a.batch_rows}")
    if not 0 <= a.retries <= 100:
        raise ConfigError("archive.retries", f"must be in 0..100, got {a.retries}")
    if not 0 < a.retry_initial <= a.retry_max <= 3600:
        raise ConfigError("archive.retry_initial", "must be > 0 and <= archive.retry_max (<= 3600 s)")
    if not 0 < a.expected_tick_hz <= 10_000:
        raise ConfigError("archive.expected_tick_hz", f"must be in (0, 10000], got {a.expected_tick_hz}")
    if not 0 <= a.low_coverage <= 1:
        raise ConfigError("archive.low_coverage", f"must be in [0, 1], got {a.low_coverage}")
    if not a.reject_dir:
        raise ConfigError("archive.reject_dir", "must not be empty")


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Defaults ← TOML file ← PUMPWATCH_<SECTION>_<KEY> env ← explicit overrides, validated, with
    every path made absolute (see the module docstring for the file lookup and the state root)."""
    env = os.environ if env is None else env
    sections: dict[str, Any] = {name: cls() for name, cls in _SECTIONS.items()}

    file = find_config(path, env)
    if file is not None:
        data = _read_toml(file)
        for section, values in data.items():
            if section not in _SECTIONS:
                raise ConfigError(section, f"unknown section in {file}; known: {', '.join(_SECTIONS)}")
            if not isinstance(values, dict):
                raise ConfigError(section, "expected a [table]")
            sections[section] = _apply(sections[section], section, values, str(file))
        in_file = {f"{sec}.{key}" for sec, values in data.items() for key in values}
        _relative_to(sections, _INPUT_PATHS, file.parent, in_file)

    later: set[str] = set()
    for section, values in _env_settings(env).items():
        sections[section] = _apply(sections[section], section, values, "environment")
        later |= {f"{section}.{key}" for key in values}

    for section, values in (overrides or {}).items():
        if section not in _SECTIONS:
            raise ConfigError(section, "unknown section")
        clean = {k: v for k, v in values.items() if v is not None}
        if clean:
            sections[section] = _apply(sections[section], section, clean, "command line")
            later |= {f"{section}.{key}" for key in clean}
    _relative_to(sections, _INPUT_PATHS, Path.cwd(), later)

    root = Path(sections["state"].dir) if sections["state"].dir else user_data_dir(env)
    sections["state"] = replace(sections["state"], dir=str(root.resolve()))
    _relative_to(sections, _STATE_PATHS, root, {f"{sec}.{key}" for sec, key in _STATE_PATHS})

    settings = Settings(**sections, config_file=str(file) if file else "")
    _validate(settings)
    return settings
