"""Reads over the archive tables of migration 006 (seed 004 §13.4): swing 10-minute bars, scalp
ticks and 1-minute bars, and the gap ledgers (the archive's ``scalp_gaps``, the live ``gaps``).

These tables keep microsecond ``TIMESTAMP`` columns (``ts::long`` is µs there, unlike the
``TIMESTAMP_NS`` trades of ``store.market``): every time in and out of this module is integer
nanoseconds, converted here and nowhere else. A range is ``start_ns <= t < end_ns`` on the
row's designated timestamp, bound as the µs ceiling of each bound, so a bound that is not a
whole microsecond still selects exactly the rows the ns comparison would.

Bounds, symbols and limits are bound parameters; the only text spliced into SQL is table names
(``Identifier``) and a ``SAMPLE BY`` interval that matched ``market.INTERVAL_RE`` (``SAMPLE BY``
cannot take a parameter). Symbols are matched exactly as the archive wrote them (``005930``,
``BTC-USDT``): no case folding, no base-asset expansion. A bad argument is a
``QueryArgumentError`` naming it, raised before any SQL runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from ..config import Settings
from ..timefmt import iso_ns
from .market import QueryArgumentError, interval_ns
from .market import _fetch as _fetch  # one PGWire read helper for both stores

Conn = psycopg.Connection[Any]
Rows = list[tuple[Any, ...]]
GapSource = Literal["archive", "live", "all"]

US = 1000  # ns per µs: the archive tables' TIMESTAMP unit
MINUTE_NS = 60 * 10**9
SWING_INTERVAL = "10m"  # swing_bars_10m as stored
MINUTE_INTERVAL = "1m"  # scalp_1m_bars as stored
GAP_SOURCES: tuple[GapSource, ...] = ("archive", "live", "all")
MAX_LIMIT = 1_000_000

_SWING_COLUMNS = sql.SQL(
    "bar_time::long, symbol, session_id, dataset, market, source, open, high, low, close, volume, "
    "bid_price, ask_price, mitigation_level, quality_flag, schema_version, source_file"
)
_MINUTE_COLUMNS = sql.SQL(
    "bar_time::long, symbol, session_id, open, high, low, close, volume, ticks, coverage_ratio, "
    "mitigation_level, quality_flag, schema_version"
)
_TICK_COLUMNS = sql.SQL(
    "event_time::long, ts::long, symbol, bid_price, ask_price, bid_size, ask_size, last_price, volume, "
    "session_id, mitigation_level, quality_flag, schema_version, source_file"
)
# The gap columns both ledgers have, then the live ledger's own (an archive gap has them as None;
# not NULL in SQL: a QuestDB BOOLEAN cannot be NULL). A live row written without gap_seconds
# still has gap_ms: its seconds are the ceiling, as GapWriter computes them.
_GAP_COLUMNS: dict[str, sql.Composable] = {
    "archive": sql.SQL("gap_start_ts::long, gap_end_ts::long, gap_seconds, scope, reason, session_id"),
    "live": sql.SQL(
        "gap_start_ts::long, gap_end_ts::long, coalesce(gap_seconds, cast(ceil(gap_ms / 1000.0) AS INT)), "
        "scope, reason, session_id, exchange, market_type, filled, backfilled_trades"
    ),
}
_LIVE_ONLY = (None, None, None, None)  # exchange, market_type, filled, backfilled_trades
_GAP_SECONDS: dict[str, sql.Composable] = {
    "archive": sql.SQL("gap_seconds"),
    "live": sql.SQL("coalesce(gap_seconds, cast(ceil(gap_ms / 1000.0) AS INT))"),
}
_GAP_TABLES = {"archive": "scalp_gaps", "live": "gaps"}


# --------------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class SwingBar:
    """One row of ``swing_bars_10m``; ``bar_time_ns`` is the bar's start."""

    bar_time_ns: int
    symbol: str
    session_id: str | None
    dataset: str | None
    market: str | None
    source: str | None
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: int | None
    bid_price: float | None
    ask_price: float | None
    mitigation_level: int | None
    quality_flag: str | None
    schema_version: str | None
    source_file: str | None


@dataclass(frozen=True, slots=True)
class MinuteBar:
    """One row of ``scalp_1m_bars``: a minute of scalp ticks, with how much of it was observed."""

    bar_time_ns: int
    symbol: str
    session_id: str | None
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: int | None
    ticks: int | None
    coverage_ratio: float | None
    mitigation_level: int | None
    quality_flag: str | None
    schema_version: str | None


@dataclass(frozen=True, slots=True)
class Bar:
    """An ``interval`` bucket aggregated from 1-minute bars (every session of the symbol)."""

    bar_time_ns: int
    symbol: str
    interval: str
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: int | None
    ticks: int | None


ArchiveBar = SwingBar | MinuteBar | Bar


@dataclass(frozen=True, slots=True)
class Tick:
    """One row of ``scalp_ticks``; ``event_time_ns`` is the designated timestamp."""

    event_time_ns: int
    ts_ns: int | None
    symbol: str
    bid_price: float | None
    ask_price: float | None
    bid_size: int | None
    ask_size: int | None
    last_price: float | None
    volume: int | None
    session_id: str | None
    mitigation_level: int | None
    quality_flag: str | None
    schema_version: str | None
    source_file: str | None


@dataclass(frozen=True, slots=True)
class Gap:
    """A gap from either ledger; ``source`` says which (``archive``: scalp_gaps, ``live``: gaps).
    ``exchange``, ``market_type``, ``filled`` and ``backfilled_trades`` exist for live gaps only."""

    source: str
    start_ns: int
    end_ns: int | None
    seconds: int | None
    scope: str | None
    reason: str | None
    session_id: str | None
    exchange: str | None
    market_type: str | None
    filled: bool | None
    backfilled_trades: int | None


@dataclass(frozen=True, slots=True)
class GapCounts:
    """Gaps per ledger in a range; ``None`` for a ledger that was not asked (``source``)."""

    archive: int | None
    live: int | None

    @property
    def total(self) -> int:
        return (self.archive or 0) + (self.live or 0)


# --------------------------------------------------------------------------- arguments
def check_interval(interval: object) -> int:
    """Nanoseconds of a bar interval: ``<n><s|m|h|d>`` and a whole number of minutes (bars are
    built from 1-minute bars), else a ``QueryArgumentError`` naming ``interval``."""
    if not isinstance(interval, str):
        raise QueryArgumentError("interval", interval, "expected <n><s|m|h|d>, e.g. 5m, 1h, 1d")
    step = interval_ns(interval)
    if step % MINUTE_NS:
        raise QueryArgumentError("interval", interval, "must be a whole number of minutes (bars are built from 1m)")
    return step


def check_symbol(symbol: object) -> str:
    """The symbol as given (matched exactly); an empty or space-padded one is refused."""
    if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
        raise QueryArgumentError("symbol", symbol, "must be a non-empty symbol without surrounding spaces")
    return symbol


def check_source(source: object) -> GapSource:
    """``archive``, ``live`` or ``all``; anything else is refused with the valid ones."""
    for valid in GAP_SOURCES:
        if source == valid:
            return valid
    raise QueryArgumentError("source", source, f"one of {', '.join(GAP_SOURCES)}")


def check_limit(limit: object, argument: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryArgumentError(argument, limit, f"must be an int in 1..{MAX_LIMIT}")
    return limit


def _check_ns(argument: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise QueryArgumentError(argument, value, "must be an int of nanoseconds since the epoch")
    return value


def check_range(start_ns: object, end_ns: object) -> tuple[int, int]:
    """``[start_ns, end_ns)`` as ints; an end before the start is refused."""
    start, end = _check_ns("start_ns", start_ns), _check_ns("end_ns", end_ns)
    if end < start:
        raise QueryArgumentError("end_ns", end_ns, f"is before start_ns={start_ns}")
    return start, end


def _us_bounds(start_ns: int, end_ns: int) -> list[int]:
    """µs bounds for ``col >= %s AND col < %s``: the ceiling of each (a µs t is >= s ns iff
    t >= ceil(s / 1000), and < e ns iff t < ceil(e / 1000))."""
    return [-(-start_ns // US), -(-end_ns // US)]


def _check_min_seconds(min_seconds: object) -> float:
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, int | float) or not math.isfinite(min_seconds):
        raise QueryArgumentError("min_seconds", min_seconds, "must be a finite number of seconds")
    if min_seconds < 0:
        raise QueryArgumentError("min_seconds", min_seconds, "must be >= 0")
    return float(min_seconds)


def _check_scope(scope: object) -> str | None:
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise QueryArgumentError("scope", scope, "must be a non-empty scope, or None for every scope")
    return scope


# --------------------------------------------------------------------------- helpers
def _ns(us: Any) -> int | None:
    return None if us is None else int(us) * US


def _swing(rows: Rows) -> list[ArchiveBar]:
    return [SwingBar(int(r[0]) * US, *r[1:]) for r in rows]


def _minute(rows: Rows) -> list[ArchiveBar]:
    return [MinuteBar(int(r[0]) * US, *r[1:]) for r in rows]


def _limit_clause(limit: int | None) -> tuple[sql.Composable, list[object]]:
    if limit is None:
        return sql.SQL(""), []
    return sql.SQL(" LIMIT %s"), [check_limit(limit)]


# --------------------------------------------------------------------------- bars
def get_latest_bars(conn: Conn, settings: Settings, symbol: str, limit: int = 100) -> list[SwingBar]:
    """The newest ``limit`` swing 10-minute bars of ``symbol``, newest first (ties: by session,
    source, dataset). The inner ``ORDER BY bar_time DESC LIMIT`` is a backward scan that stops early."""
    symbol, limit = check_symbol(symbol), check_limit(limit)
    table = settings.table("swing_bars_10m")
    query = sql.SQL(
        "SELECT {cols} FROM (SELECT * FROM {table} WHERE symbol = %s ORDER BY bar_time DESC LIMIT %s) "
        "ORDER BY bar_time DESC, session_id, source, dataset"
    ).format(cols=_SWING_COLUMNS, table=sql.Identifier(table))
    rows = _fetch(conn, "latest swing bars", table, query, [symbol, limit])
    return [SwingBar(int(r[0]) * US, *r[1:]) for r in rows]


def get_bars_in_range(
    conn: Conn,
    settings: Settings,
    symbol: str,
    start_ns: int,
    end_ns: int,
    interval: str = SWING_INTERVAL,
    *,
    limit: int | None = None,
) -> list[ArchiveBar]:
    """Bars of ``symbol`` whose start is in ``[start_ns, end_ns)``, oldest first.

    ``10m`` reads ``swing_bars_10m`` (``SwingBar``), ``1m`` reads ``scalp_1m_bars``
    (``MinuteBar``); any other whole number of minutes (``5m``, ``1h``, ``1d``) is aggregated
    from the 1-minute bars with ``SAMPLE BY`` (``Bar``: first open, max high, min low, last
    close, summed volume and ticks). Buckets are UTC-aligned multiples of the interval since
    the epoch and always whole: the minutes read run from the first bucket start at or after
    ``start_ns`` to the end of the last bucket starting before ``end_ns``.
    ``limit`` keeps the first rows only.
    """
    symbol = check_symbol(symbol)
    step = check_interval(interval)
    start_ns, end_ns = check_range(start_ns, end_ns)
    lim, lim_params = _limit_clause(limit)
    if interval == SWING_INTERVAL:
        table = settings.table("swing_bars_10m")
        query = sql.SQL(
            "SELECT {cols} FROM {table} WHERE bar_time >= %s::timestamp AND bar_time < %s::timestamp "
            "AND symbol = %s ORDER BY bar_time, session_id, source, dataset{lim}"
        ).format(cols=_SWING_COLUMNS, table=sql.Identifier(table), lim=lim)
        return _swing(_fetch(conn, "swing bars", table, query, [*_us_bounds(start_ns, end_ns), symbol, *lim_params]))
    if interval == MINUTE_INTERVAL:
        return list(get_1m_bars(conn, settings, symbol, start_ns, end_ns, limit=limit))
    table = settings.table("scalp_1m_bars")
    first = -(-start_ns // step) * step
    stop = -(-end_ns // step) * step  # the end of the last bucket that starts before end_ns
    query = sql.SQL(
        "SELECT bar_time::long, open, high, low, close, volume, ticks FROM ("
        "SELECT bar_time, first(open) AS open, max(high) AS high, min(low) AS low, last(close) AS close, "
        "sum(volume) AS volume, sum(ticks) AS ticks FROM {table} "
        "WHERE bar_time >= %s::timestamp AND bar_time < %s::timestamp AND symbol = %s "
        "SAMPLE BY {interval} ALIGN TO CALENDAR) ORDER BY bar_time{lim}"
    ).format(
        table=sql.Identifier(table),
        interval=sql.SQL(interval),  # matched INTERVAL_RE in check_interval
        lim=lim,
    )
    rows = _fetch(conn, f"bars (SAMPLE BY {interval})", table, query, [*_us_bounds(first, stop), symbol, *lim_params])
    return [Bar(int(r[0]) * US, symbol, interval, *r[1:]) for r in rows]


def get_1m_bars(
    conn: Conn, settings: Settings, symbol: str, start_ns: int, end_ns: int, *, limit: int | None = None
) -> list[MinuteBar]:
    """The 1-minute bars of ``symbol`` with ``start_ns <= bar_time < end_ns``, oldest first, each
    with its coverage_ratio and quality_flag (``low_coverage`` when the minute was thinly observed)."""
    symbol = check_symbol(symbol)
    start_ns, end_ns = check_range(start_ns, end_ns)
    lim, lim_params = _limit_clause(limit)
    table = settings.table("scalp_1m_bars")
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE bar_time >= %s::timestamp AND bar_time < %s::timestamp "
        "AND symbol = %s ORDER BY bar_time, session_id{lim}"
    ).format(cols=_MINUTE_COLUMNS, table=sql.Identifier(table), lim=lim)
    rows = _fetch(conn, "1m bars", table, query, [*_us_bounds(start_ns, end_ns), symbol, *lim_params])
    return [MinuteBar(int(r[0]) * US, *r[1:]) for r in rows]


# --------------------------------------------------------------------------- ticks
def _tick(r: tuple[Any, ...]) -> Tick:
    return Tick(int(r[0]) * US, _ns(r[1]), *r[2:])


def get_latest_ticks(conn: Conn, settings: Settings, symbol: str, limit: int = 100) -> list[Tick]:
    """The newest ``limit`` scalp ticks of ``symbol``, newest first (ties: by session)."""
    symbol, limit = check_symbol(symbol), check_limit(limit)
    table = settings.table("scalp_ticks")
    query = sql.SQL(
        "SELECT {cols} FROM (SELECT * FROM {table} WHERE symbol = %s ORDER BY event_time DESC LIMIT %s) "
        "ORDER BY event_time DESC, session_id"
    ).format(cols=_TICK_COLUMNS, table=sql.Identifier(table))
    return [_tick(r) for r in _fetch(conn, "latest ticks", table, query, [symbol, limit])]


def get_ticks_in_range(
    conn: Conn, settings: Settings, symbol: str, start_ns: int, end_ns: int, *, limit: int | None = None
) -> list[Tick]:
    """The scalp ticks of ``symbol`` with ``start_ns <= event_time < end_ns``, oldest first."""
    symbol = check_symbol(symbol)
    start_ns, end_ns = check_range(start_ns, end_ns)
    lim, lim_params = _limit_clause(limit)
    table = settings.table("scalp_ticks")
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE event_time >= %s::timestamp AND event_time < %s::timestamp "
        "AND symbol = %s ORDER BY event_time, session_id{lim}"
    ).format(cols=_TICK_COLUMNS, table=sql.Identifier(table), lim=lim)
    rows = _fetch(conn, "ticks", table, query, [*_us_bounds(start_ns, end_ns), symbol, *lim_params])
    return [_tick(r) for r in rows]


# --------------------------------------------------------------------------- gaps
def _sources(source: GapSource) -> tuple[str, ...]:
    return ("archive", "live") if source == "all" else (source,)


def _gap_where(
    which: str, scope: str | None, start_ns: int, end_ns: int, min_seconds: float
) -> tuple[sql.Composable, list[object]]:
    parts: list[sql.Composable] = [sql.SQL("gap_start_ts >= %s::timestamp AND gap_start_ts < %s::timestamp")]
    params: list[object] = list(_us_bounds(start_ns, end_ns))
    if scope is not None:
        parts.append(sql.SQL("scope = %s"))
        params.append(scope)
    if min_seconds > 0:
        parts.append(sql.SQL("{} >= %s").format(_GAP_SECONDS[which]))
        params.append(min_seconds)
    return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(parts)), params


def count_gaps(
    conn: Conn,
    settings: Settings,
    scope: str | None,
    start_ns: int,
    end_ns: int,
    source: GapSource = "all",
    *,
    min_seconds: float = 0,
) -> GapCounts:
    """Gaps starting in ``[start_ns, end_ns)`` per ledger (``scope`` None: every scope; only those
    of at least ``min_seconds`` when that is > 0)."""
    scope, source = _check_scope(scope), check_source(source)
    start_ns, end_ns = check_range(start_ns, end_ns)
    floor = _check_min_seconds(min_seconds)
    counts: dict[str, int | None] = {"archive": None, "live": None}
    for which in _sources(source):
        table = settings.table(_GAP_TABLES[which])
        where, params = _gap_where(which, scope, start_ns, end_ns, floor)
        query = sql.SQL("SELECT count() FROM {table} {where}").format(table=sql.Identifier(table), where=where)
        counts[which] = int(_fetch(conn, f"{which} gap count", table, query, params)[0][0])
    return GapCounts(archive=counts["archive"], live=counts["live"])


def get_critical_gaps(
    conn: Conn,
    settings: Settings,
    min_seconds: float,
    start_ns: int,
    end_ns: int,
    source: GapSource = "all",
    scope: str | None = None,
    *,
    limit: int = 10_000,
) -> list[Gap]:
    """Gaps of at least ``min_seconds`` (0: every gap) starting in ``[start_ns, end_ns)``, newest
    first (ties: archive before live, then by scope), at most ``limit`` of them."""
    floor = _check_min_seconds(min_seconds)
    scope, source = _check_scope(scope), check_source(source)
    start_ns, end_ns = check_range(start_ns, end_ns)
    limit = check_limit(limit)
    gaps: list[Gap] = []
    for which in _sources(source):
        table = settings.table(_GAP_TABLES[which])
        where, params = _gap_where(which, scope, start_ns, end_ns, floor)
        query = sql.SQL("SELECT {cols} FROM {table} {where} ORDER BY gap_start_ts DESC, scope LIMIT %s").format(
            cols=_GAP_COLUMNS[which], table=sql.Identifier(table), where=where
        )
        for r in _fetch(conn, f"{which} gaps", table, query, [*params, limit]):
            extra = r[6:] if which == "live" else _LIVE_ONLY
            gaps.append(Gap(which, int(r[0]) * US, _ns(r[1]), *r[2:6], *extra))
    order = {"archive": 0, "live": 1}
    gaps.sort(key=lambda g: (-g.start_ns, order[g.source], g.scope or ""))
    return gaps[:limit]


# --------------------------------------------------------------------------- JSON
def _with_times(row: Any, **times: int | None) -> dict[str, Any]:
    """A row as a JSON-ready dict: its fields, plus each named time in the one format (``iso_ns``)."""
    return {**{k: None if v is None else iso_ns(v) for k, v in times.items()}, **asdict(row)}


def bar_records(bars: Sequence[ArchiveBar]) -> list[dict[str, Any]]:
    return [_with_times(b, bar_time=b.bar_time_ns) for b in bars]


def tick_records(ticks: Sequence[Tick]) -> list[dict[str, Any]]:
    return [_with_times(t, event_time=t.event_time_ns, ts=t.ts_ns) for t in ticks]


def gap_records(gaps: Sequence[Gap]) -> list[dict[str, Any]]:
    return [_with_times(g, start=g.start_ns, end=g.end_ns) for g in gaps]


def gap_count_record(counts: GapCounts) -> dict[str, Any]:
    return {"archive": counts.archive, "live": counts.live, "total": counts.total}
