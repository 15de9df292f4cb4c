"""Staged rollout of QuestDB reads: the phases (YAML), the persisted current phase, and routing.

Phase 0 is implicit and means "buffer only". Phases 1..N come from the YAML (``phase_1`` ...),
each with the share of symbols whose reads go to QuestDB, how long the phase should last and
whether a failed QuestDB read may fall back to the buffer. A symbol's path is decided by a
stable hash, so it never flips between sources within a phase and a symbol routed at 10 % is
still routed at 50 %.

The current phase lives in a small JSON file (``hybrid.rollout_state``) written atomically, so it
survives restarts and ``pumpwatch rollout advance`` in one shell reaches a running process that
calls ``Rollout.refresh()``. Only the phase number is stored: the YAML may change between runs.
If the YAML shrinks below the stored phase, the last configured phase is used and a warning is
logged (the state file is left as it is until the next change).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import yaml

from ..errors import ConfigError, PumpwatchError, ValidationError
from ..models import RolloutEvent
from ..timefmt import duration_s, iso

if TYPE_CHECKING:
    from ..config import Settings

_log = logging.getLogger(__name__)

ROUTE_BUCKETS = 100
HISTORY_LIMIT = 200
STATE_VERSION = 1
ROLLBACK_TARGETS = ("previous", "buffer")
BUFFER_PHASE_NAME = "buffer"

_PHASE_KEYS = ("duration", "questdb_percentage", "fallback_enabled")
_ROLLBACK_KEYS = (
    "interval",
    "max_error_rate",
    "max_mean_latency_ms",
    "max_disk_usage",
    "max_spool_growth_mb",
    "min_queries",
    "target",
)
_TOP_KEYS = ("migration", "rollback", "auto_advance")
_PHASE_KEY = re.compile(r"^phase_(\d+)$")

# The seed's plan, used when ``hybrid.rollout_config`` is empty (same values as config/migration.yaml).
DEFAULT_CONFIG: dict[str, Any] = {
    "migration": {
        "phase_1": {"duration": "3d", "questdb_percentage": 10, "fallback_enabled": True},
        "phase_2": {"duration": "5d", "questdb_percentage": 50, "fallback_enabled": True},
        "phase_3": {"duration": "5d", "questdb_percentage": 100, "fallback_enabled": True},
        "phase_4": {"duration": "5d", "questdb_percentage": 100, "fallback_enabled": False},
    },
}

Action = Literal["advance", "rollback", "set"]


# --------------------------------------------------------------------------- errors
class RolloutError(PumpwatchError):
    """A rollout phase change is impossible, or the persisted rollout state cannot be used."""


class RolloutBoundsError(RolloutError):
    """The requested phase does not exist (advance past the last, roll back below 0, set out of range)."""

    def __init__(self, action: str, from_phase: int, message: str) -> None:
        super().__init__(f"cannot {action} from phase {from_phase}: {message}")
        self.action = action
        self.from_phase = from_phase


class RolloutStateError(RolloutError):
    """The rollout state file is unreadable or malformed; it is never silently reset."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"rollout state {str(path)!r} is unusable: {reason}; fix it, or delete it to start again at "
            "phase 0 (buffer only)"
        )
        self.path = path
        self.reason = reason


# --------------------------------------------------------------------------- routing
def route_bucket(symbol: str) -> int:
    """The symbol's bucket in 0..99: blake2b of the upper-cased symbol, so every process agrees."""
    digest = hashlib.blake2b(symbol.upper().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % ROUTE_BUCKETS


def routes_to_questdb(symbol: str, percentage: int) -> bool:
    """Whether ``symbol`` reads from QuestDB at ``percentage``; a larger percentage only adds symbols."""
    return route_bucket(symbol) < percentage


# --------------------------------------------------------------------------- durations


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class Phase:
    """One rollout step. Phase 0 (buffer only) has no duration: it lasts until someone advances."""

    number: int
    name: str
    questdb_percentage: int
    duration_s: float | None
    fallback_enabled: bool

    @property
    def label(self) -> str:
        if self.number == 0:
            return "phase 0 (buffer only)"
        return f"phase {self.number} ({self.questdb_percentage}% QuestDB reads, fallback {_on(self.fallback_enabled)})"

    def routes_to_questdb(self, symbol: str) -> bool:
        """Whether this phase reads ``symbol`` from QuestDB."""
        return routes_to_questdb(symbol, self.questdb_percentage)


BUFFER_PHASE = Phase(0, BUFFER_PHASE_NAME, 0, None, True)


@dataclass(frozen=True)
class RollbackThresholds:
    """When the rollback manager steps back: judged every ``interval_s`` over the last interval."""

    interval_s: float = 30.0
    max_error_rate: float = 0.05  # failed QuestDB reads / QuestDB reads
    max_mean_latency_ms: float = 500.0
    max_disk_usage: float = 0.95  # used / total of QuestDB's data volume
    max_spool_growth_mb: float = 64.0  # spool bytes added between two evaluations
    min_queries: int = 5  # error rate and latency are judged only with at least this many queries
    target: str = "previous"  # "previous" phase, or "buffer" (phase 0)

    @property
    def max_spool_growth_bytes(self) -> int:
        return int(self.max_spool_growth_mb * (1 << 20))

    @property
    def to_buffer(self) -> bool:
        """Whether a rollback goes straight to phase 0 (the ``to_buffer`` argument of ``Rollout.rollback``)."""
        return self.target == "buffer"


@dataclass(frozen=True)
class RolloutConfig:
    """The phases (1..N, phase 0 implicit), the rollback thresholds and ``auto_advance``."""

    phases: tuple[Phase, ...]
    rollback: RollbackThresholds = field(default_factory=RollbackThresholds)
    auto_advance: bool = False
    source: str = "built-in default"

    @property
    def last(self) -> int:
        """Number of the last phase (N)."""
        return len(self.phases)

    def phase(self, number: int) -> Phase:
        """Phase ``number`` in 0..N (0 is buffer only)."""
        if number == 0:
            return BUFFER_PHASE
        if not 1 <= number <= self.last:
            raise IndexError(f"phase {number} outside 0..{self.last}")
        return self.phases[number - 1]

    def all_phases(self) -> tuple[Phase, ...]:
        """Phase 0 followed by the configured phases."""
        return (BUFFER_PHASE, *self.phases)

    @classmethod
    def default(cls) -> RolloutConfig:
        """The built-in plan: 10 % → 50 % → 100 % → 100 % without fallback."""
        return cls.parse(DEFAULT_CONFIG, "built-in default")

    @classmethod
    def load(cls, path: str | Path | None) -> RolloutConfig:
        """Parse the YAML at ``path``; ``None`` or ``""`` means the built-in default."""
        if path is None or str(path) == "":
            return cls.default()
        file = Path(path)
        if not file.is_file():
            raise ConfigError("hybrid.rollout_config", f"file {str(file)!r} does not exist")
        try:
            with file.open(encoding="utf-8") as fh:
                data = yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError("rollout_config", f"{file}: {_yaml_problem(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("hybrid.rollout_config", f"cannot read {str(file)!r}: {exc}") from None
        return cls.parse(data, str(file))

    @classmethod
    def parse(cls, data: object, source: str) -> RolloutConfig:
        """Validate parsed YAML; every problem raises ``ConfigError`` naming the dotted key."""
        if data is None:
            raise ConfigError("migration", f"missing: {source} is empty; it needs at least migration.phase_1")
        top = _mapping(data, "rollout_config", source)
        _known(top, _TOP_KEYS, "", source)
        if "migration" not in top:
            raise ConfigError("migration", f"missing in {source}; it needs at least migration.phase_1")
        phases = _parse_phases(top["migration"], source)
        rollback = _parse_rollback(top.get("rollback"), source)
        auto_advance = _bool(top.get("auto_advance", False), "auto_advance", source)
        return cls(phases=phases, rollback=rollback, auto_advance=auto_advance, source=source)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML would silently keep the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        with contextlib.suppress(TypeError):  # unhashable: construct_mapping reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where and what, instead of PyYAML's multi-line excerpt."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
    return str(exc)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _mapping(value: object, key: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping in {source}, got {type(value).__name__}: {value!r}")
    return {str(k): v for k, v in value.items()}


def _known(values: Mapping[str, Any], known: tuple[str, ...], prefix: str, source: str) -> None:
    for key in values:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", f"unknown key in {source}; known keys: {', '.join(known)}")


def _bool(value: object, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false in {source}, got {value!r}")
    return value


def _number(value: object, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(key, f"expected a number in {source}, got {value!r}")
    return float(value)


def _int(value: object, key: str, source: str) -> int:
    number = _number(value, key, source)
    if not number.is_integer():
        raise ConfigError(key, f"expected a whole number in {source}, got {value!r}")
    return int(number)


def _parse_phases(value: object, source: str) -> tuple[Phase, ...]:
    if value is None or value == {}:
        raise ConfigError("migration", f"needs at least one phase (phase_1) in {source}")
    migration = _mapping(value, "migration", source)
    phases: list[Phase] = []
    for position, (name, spec) in enumerate(migration.items(), start=1):
        key = f"migration.{name}"
        if not _PHASE_KEY.match(name):
            raise ConfigError(key, f"unknown key in {source}; phases are named phase_1, phase_2, ... in order")
        if name != f"phase_{position}":
            raise ConfigError(
                key, f"phases out of order in {source}: expected phase_{position} here (phase_1..phase_N, in order)"
            )
        fields_ = _mapping(spec, key, source)
        _known(fields_, _PHASE_KEYS, f"{key}.", source)
        for required in ("duration", "questdb_percentage"):
            if required not in fields_:
                raise ConfigError(f"{key}.{required}", f"missing in {source}")
        pct_key = f"{key}.questdb_percentage"
        pct = _int(fields_["questdb_percentage"], pct_key, source)
        if not 0 <= pct <= 100:
            raise ConfigError(pct_key, f"must be in 0..100, got {pct} (in {source})")
        if phases and pct < phases[-1].questdb_percentage:
            prev = phases[-1]
            raise ConfigError(
                pct_key, f"must not decrease: {pct} after {prev.questdb_percentage} in {prev.name} (in {source})"
            )
        phases.append(
            Phase(
                number=position,
                name=name,
                questdb_percentage=pct,
                duration_s=duration_s(fields_["duration"], f"{key}.duration"),
                fallback_enabled=_bool(fields_.get("fallback_enabled", True), f"{key}.fallback_enabled", source),
            )
        )
    return tuple(phases)


def _parse_rollback(value: object, source: str) -> RollbackThresholds:
    if value is None:
        return RollbackThresholds()
    rb = _mapping(value, "rollback", source)
    _known(rb, _ROLLBACK_KEYS, "rollback.", source)
    d = RollbackThresholds()
    interval = duration_s(rb["interval"], "rollback.interval") if "interval" in rb else d.interval_s
    error_rate = _number(rb.get("max_error_rate", d.max_error_rate), "rollback.max_error_rate", source)
    if not 0 <= error_rate <= 1:
        raise ConfigError("rollback.max_error_rate", f"must be in [0, 1], got {error_rate}")
    latency = _number(rb.get("max_mean_latency_ms", d.max_mean_latency_ms), "rollback.max_mean_latency_ms", source)
    if latency <= 0:
        raise ConfigError("rollback.max_mean_latency_ms", f"must be > 0, got {latency}")
    disk = _number(rb.get("max_disk_usage", d.max_disk_usage), "rollback.max_disk_usage", source)
    if not 0 < disk <= 1:
        raise ConfigError("rollback.max_disk_usage", f"must be in (0, 1], got {disk}")
    spool = _number(rb.get("max_spool_growth_mb", d.max_spool_growth_mb), "rollback.max_spool_growth_mb", source)
    if spool < 0:
        raise ConfigError("rollback.max_spool_growth_mb", f"must be >= 0, got {spool}")
    min_queries = _int(rb.get("min_queries", d.min_queries), "rollback.min_queries", source)
    if min_queries < 1:
        raise ConfigError("rollback.min_queries", f"must be >= 1, got {min_queries}")
    target = rb.get("target", d.target)
    if target not in ROLLBACK_TARGETS:
        raise ConfigError("rollback.target", f"must be one of {', '.join(ROLLBACK_TARGETS)}, got {target!r}")
    return RollbackThresholds(
        interval_s=interval,
        max_error_rate=error_rate,
        max_mean_latency_ms=latency,
        max_disk_usage=disk,
        max_spool_growth_mb=spool,
        min_queries=min_queries,
        target=str(target),
    )


# --------------------------------------------------------------------------- changes
class Measured(TypedDict, total=False):
    """Health figures that justified an automatic change; stored with it and in ``rollout_events``."""

    error_rate: float
    mean_latency_ms: float
    disk_usage: float
    spool_growth_bytes: int


_MEASURED_KEYS = frozenset(Measured.__annotations__)


@dataclass(frozen=True)
class RolloutChange:
    """One phase change as it was persisted: who, why, when, and the figures behind it."""

    action: Action
    from_phase: int
    to_phase: int
    reason: str
    at_ns: int
    actor: str = "operator"
    error_rate: float | None = None
    mean_latency_ms: float | None = None
    disk_usage: float | None = None
    spool_growth_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without the measurements that were not given."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def event(self) -> RolloutEvent:
        """The ``rollout_events`` row; the actor is kept in front of the reason."""
        return RolloutEvent(
            ts_ns=self.at_ns,
            action=self.action,
            from_phase=self.from_phase,
            to_phase=self.to_phase,
            reason=f"{self.actor}: {self.reason}",
            error_rate=self.error_rate,
            mean_latency_ms=self.mean_latency_ms,
            disk_usage=self.disk_usage,
            spool_growth_bytes=self.spool_growth_bytes,
        )


# --------------------------------------------------------------------------- state
@dataclass(frozen=True)
class RolloutState:
    """What is persisted: the phase number, when it was entered (0 = never changed) and recent changes."""

    phase: int = 0
    entered_ns: int = 0
    history: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> str:
        body = {"version": STATE_VERSION, "phase": self.phase, "entered_ns": self.entered_ns}
        return json.dumps({**body, "history": list(self.history)}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, path: Path) -> RolloutState:
        """Parse and check the file's content; anything unexpected raises ``RolloutStateError``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RolloutStateError(path, f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise RolloutStateError(path, f"expected a JSON object, got {type(data).__name__}")
        if data.get("version") != STATE_VERSION:
            raise RolloutStateError(path, f"unsupported version {data.get('version')!r} (expected {STATE_VERSION})")
        phase, entered, history = data.get("phase"), data.get("entered_ns"), data.get("history", [])
        for name, value in (("phase", phase), ("entered_ns", entered)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RolloutStateError(path, f"{name} must be an integer >= 0, got {value!r}")
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise RolloutStateError(path, "history must be a list of objects")
        assert isinstance(phase, int) and isinstance(entered, int)
        return cls(phase=phase, entered_ns=entered, history=tuple(history[-HISTORY_LIMIT:]))


Signature = tuple[int, int, int]


class RolloutStore:
    """The JSON state file: atomic saves, and a lock file so two writers never interleave."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def signature(self) -> Signature | None:
        """(inode, mtime, size) of the file, or None when it does not exist; one ``stat``."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RolloutStateError(self.path, f"cannot stat it ({exc})") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> RolloutState:
        """The persisted state; a missing file is phase 0 (buffer only), a corrupt one an error."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return RolloutState()
        except (OSError, UnicodeDecodeError) as exc:
            raise RolloutStateError(self.path, f"cannot read it ({exc})") from None
        return RolloutState.from_json(text, self.path)

    def save(self, state: RolloutState) -> None:
        """Write a temporary file next to the target, fsync it, then rename it over the target."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise RolloutStateError(self.path, f"cannot write in {str(directory)!r} ({exc})") from None
        try:
            os.fchmod(fd, 0o644)  # mkstemp makes it 0600; the state is not secret and monitors read it
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(state.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(directory)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise RolloutStateError(self.path, f"cannot save it ({exc})") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive ``flock`` on ``<state>.lock`` for a read-modify-write across processes."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RolloutStateError(self.path, f"cannot open the lock file {str(lock_path)!r} ({exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the rollout


class Rollout:
    """The current phase as the running system sees it, and the only way to change it.

    Reads (``current``, ``routes_to_questdb``) use the state held in memory; call ``refresh()``
    regularly (one ``stat``) to pick up changes made by other processes. Changes lock the state
    file, re-read it, check bounds, and save, so they never overwrite a change made elsewhere.
    """

    def __init__(self, config: RolloutConfig, store: RolloutStore, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = store.signature()
        self._state = store.load()  # a corrupt file fails here, at start-up
        self._warned_clamp: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, rollout_config: str | None = None) -> Rollout:
        """Config from ``rollout_config`` (else ``hybrid.rollout_config``), state at ``hybrid.rollout_state``."""
        path = settings.hybrid.rollout_config if rollout_config is None else rollout_config
        return cls(RolloutConfig.load(path), RolloutStore(settings.hybrid.rollout_state))

    # -- reading ----------------------------------------------------------------------------
    @property
    def state(self) -> RolloutState:
        return self._state

    def _effective(self, stored: int) -> int:
        if stored <= self.config.last:
            return stored
        if self._warned_clamp != stored:
            self._warned_clamp = stored
            _log.warning(
                "rollout state %s says phase %d but %s has only %d phase(s); using phase %d until the next change",
                self.store.path,
                stored,
                self.config.source,
                self.config.last,
                self.config.last,
            )
        return self.config.last

    def current(self) -> Phase:
        """The phase in effect (clamped to the last configured phase if the config shrank)."""
        return self.config.phase(self._effective(self._state.phase))

    @property
    def questdb_percentage(self) -> int:
        return self.current().questdb_percentage

    @property
    def fallback_enabled(self) -> bool:
        """Whether a failed QuestDB read may be answered from the buffer (always true in phase 0)."""
        return self.current().fallback_enabled

    def routes_to_questdb(self, symbol: str) -> bool:
        """Whether ``symbol`` reads from QuestDB in the current phase."""
        return routes_to_questdb(symbol, self.current().questdb_percentage)

    def time_in_phase(self, now_ns: int | None = None) -> float | None:
        """Seconds since the current phase was entered; None when the state was never changed."""
        if self._state.entered_ns == 0:
            return None
        now = self._clock() if now_ns is None else now_ns
        return max(0.0, (now - self._state.entered_ns) / 1e9)

    def due(self, now_ns: int | None = None) -> bool:
        """True when a next phase exists and the current one has lasted its duration."""
        phase = self.current()
        spent = self.time_in_phase(now_ns)
        if phase.number >= self.config.last or phase.duration_s is None or spent is None:
            return False
        return spent >= phase.duration_s

    def refresh(self) -> bool:
        """Re-read the state file if it changed on disk; True when it did. Cheap: one ``stat``.

        A corrupt file seen here is logged (once per version) and the state in memory is kept,
        so queries keep working; the next ``pumpwatch rollout`` command reports it as an error.
        """
        signature = self.store.signature()
        if signature == self._seen:
            return False
        with self._lock:
            try:
                state = self.store.load()
            except RolloutStateError as exc:
                _log.error("%s; keeping %s", exc, self.current().label)
                self._seen = signature
                return False
            self._seen = signature
            changed = state.phase != self._state.phase or state.entered_ns != self._state.entered_ns
            self._state = state
        if changed:
            _log.info("rollout state changed on disk: now %s", self.current().label)
        return changed

    def status(self, now_ns: int | None = None, history: int = 10) -> dict[str, Any]:
        """Everything ``pumpwatch rollout status`` shows, JSON-ready."""
        self.refresh()
        now = self._clock() if now_ns is None else now_ns
        phase = self.current()
        entered = self._state.entered_ns
        return {
            "phase": phase.number,
            "name": phase.name,
            "questdb_percentage": phase.questdb_percentage,
            "fallback_enabled": phase.fallback_enabled,
            "duration_s": phase.duration_s,
            "entered_ns": entered or None,
            "entered_at": iso(entered) if entered else None,
            "time_in_phase_s": self.time_in_phase(now),
            "due": self.due(now),
            "last_phase": self.config.last,
            "stored_phase": self._state.phase,
            "clamped": self._state.phase != phase.number,
            "auto_advance": self.config.auto_advance,
            "config": self.config.source,
            "state_file": str(self.store.path),
            "phases": [
                {
                    "phase": p.number,
                    "name": p.name,
                    "questdb_percentage": p.questdb_percentage,
                    "duration_s": p.duration_s,
                    "fallback_enabled": p.fallback_enabled,
                }
                for p in self.config.all_phases()
            ],
            "history": list(self._state.history[-history:]) if history > 0 else [],
        }

    # -- changing ---------------------------------------------------------------------------
    def advance(self, reason: str, actor: str = "operator", measured: Measured | None = None) -> RolloutChange:
        """Go to the next phase; ``RolloutBoundsError`` at the last one."""

        def target(current: int) -> int:
            if current >= self.config.last:
                raise RolloutBoundsError(
                    "advance", current, f"already at the last phase ({self.config.phase(current).name})"
                )
            return current + 1

        return self._change("advance", target, reason, actor, measured)

    def rollback(
        self, reason: str, to_buffer: bool = False, measured: Measured | None = None, actor: str = "operator"
    ) -> RolloutChange:
        """Go to the previous phase, or to phase 0 with ``to_buffer``; ``RolloutBoundsError`` at phase 0."""

        def target(current: int) -> int:
            if current == 0:
                raise RolloutBoundsError("rollback", 0, "already at phase 0 (buffer only)")
            return 0 if to_buffer else current - 1

        return self._change("rollback", target, reason, actor, measured)

    def set_phase(self, number: int, reason: str, actor: str = "operator") -> RolloutChange:
        """Go to phase ``number`` in 0..N; setting the current phase again restarts its clock."""

        def target(current: int) -> int:
            if not 0 <= number <= self.config.last:
                raise RolloutBoundsError("set", current, f"phase {number} is outside 0..{self.config.last}")
            return number

        return self._change("set", target, reason, actor, None)

    def _change(
        self, action: Action, target: Callable[[int], int], reason: str, actor: str, measured: Measured | None
    ) -> RolloutChange:
        if not reason.strip():
            raise ValidationError("reason", reason, "must not be empty")
        figures: Measured = measured or {}
        for key in figures:
            if key not in _MEASURED_KEYS:
                raise ValidationError(
                    "measured", key, f"unknown measurement; known: {', '.join(sorted(_MEASURED_KEYS))}"
                )
        with self._lock, self.store.locked():
            state = self.store.load()  # the latest on disk, so another process's change is not overwritten
            current = self._effective(state.phase)
            to = target(current)
            change = RolloutChange(
                action=action,
                from_phase=current,
                to_phase=to,
                reason=reason,
                at_ns=self._clock(),
                actor=actor,
                error_rate=figures.get("error_rate"),
                mean_latency_ms=figures.get("mean_latency_ms"),
                disk_usage=figures.get("disk_usage"),
                spool_growth_bytes=figures.get("spool_growth_bytes"),
            )
            new = RolloutState(
                phase=to, entered_ns=change.at_ns, history=(*state.history, change.as_dict())[-HISTORY_LIMIT:]
            )
            self.store.save(new)
            self._state = new
            self._seen = self.store.signature()
        _log.info(
            "rollout %s by %s: %s -> %s (%s)",
            action,
            actor,
            self.config.phase(current).label,
            self.config.phase(to).label,
            reason,
        )
        return change
