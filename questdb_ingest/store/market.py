"""Market reads over PGWire: the listing window, recent trades, OHLCV candles and latest prices.

Timestamps cross the wire as ``ts::long`` (integer nanoseconds) and are bound back as
``%s::timestamp_ns``, never through ``datetime``, which would drop the last three digits.
Bounds are bound parameters; the only text spliced into SQL is table names (``Identifier``) and
a ``SAMPLE BY`` interval that has matched ``INTERVAL_RE`` (``SAMPLE BY`` cannot take a parameter).

A ``symbol`` argument means what it means for the hybrid window (``hybrid.window``):
``XYZ-USDT`` is that instrument only, a bare ``XYZ`` is every instrument with base ``XYZ``.
Filters are matched as the rows are stored, so case does not matter (``BINANCE`` is ``binance``,
``SPOT`` is ``spot``, ``xyz-usdt`` is ``XYZ-USDT``), and an exchange no connector writes or an unknown
market type is a ``QueryArgumentError`` listing the valid ones, never an empty answer.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from ..config import Settings
from ..connectors.registry import EXCHANGES
from ..errors import PumpwatchError, QueryError
from ..hybrid.window import is_base_query, sort_by_time, venue_key
from ..models import MARKET_TYPES, NO_SEQUENCE, I64Array, ObjArray, TradeBatch
from ..timefmt import iso_ns
from . import queries

Conn = psycopg.Connection[Any]
Rows = list[tuple[Any, ...]]

CANDLE_VIEW = "candles_1m"
VIEW_STEP_NS = 60 * 10**9
INTERVAL_RE = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
_UNIT_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86_400 * 10**9}
# Column order of every trade read; _batch() relies on it.
_TRADE_COLUMNS = sql.SQL(
    "ts::long, exchange, market_type, symbol, price, quantity, side, trade_id, sequence_number, recv_ts::long"
)
_CANDLE_COLUMNS = sql.SQL("ts::long, exchange, market_type, symbol, open, high, low, close, volume, trades")


class QueryArgumentError(PumpwatchError, ValueError):
    """An argument was refused before any SQL ran; names the argument and the value."""

    def __init__(self, argument: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {argument}={value!r}: {reason}")
        self.argument = argument
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bucket of one venue and instrument; ``ts_ns`` is the bucket start (UTC-aligned)."""

    ts_ns: int
    exchange: str
    market_type: str
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int


@dataclass(frozen=True, slots=True)
class LatestPrice:
    """The newest trade of one (exchange, market_type, symbol)."""

    ts_ns: int
    exchange: str
    market_type: str
    symbol: str
    price: float
    quantity: float
    side: str
    trade_id: str


# --------------------------------------------------------------------------- helpers
def interval_ns(interval: str) -> int:
    """Nanoseconds of a ``SAMPLE BY`` interval such as ``1m``; refuses anything else by name."""
    match = INTERVAL_RE.match(interval) if isinstance(interval, str) else None
    if match is None:
        raise QueryArgumentError("interval", interval, "expected <n><s|m|h|d> with n >= 1, e.g. 1m, 15m, 4h, 1d")
    return int(match[1]) * _UNIT_NS[match[2]]


def _like_escape(text: str) -> str:
    """``text`` as a literal LIKE prefix (QuestDB LIKE escapes with a backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def normal_symbol(symbol: object, argument: str = "symbol") -> str:
    """``symbol`` as stored (upper case: ``xyz-usdt`` means ``XYZ-USDT``); a malformed one is refused."""
    if not isinstance(symbol, str) or not symbol.strip() or symbol != symbol.strip():
        raise QueryArgumentError(argument, symbol, "must be a non-empty symbol without surrounding spaces")
    if symbol.startswith("-") or symbol.endswith("-"):
        raise QueryArgumentError(argument, symbol, "expected BASE-QUOTE or a bare base asset")
    return symbol.upper()


def normal_exchange(exchange: object, argument: str = "exchange") -> str:
    """``exchange`` as stored (lower case); one no connector writes is refused with the valid list, so a
    typo is an error instead of an empty answer."""
    name = exchange.lower() if isinstance(exchange, str) else None
    if name not in EXCHANGES:
        raise QueryArgumentError(argument, exchange, f"unknown exchange; one of {', '.join(EXCHANGES)}")
    return name


def normal_market_type(market_type: object, argument: str = "market_type") -> str:
    """``market_type`` as stored (lower case); anything but a ``MarketType`` is refused with the valid list."""
    name = market_type.lower() if isinstance(market_type, str) else None
    if name not in MARKET_TYPES:
        raise QueryArgumentError(
            argument, market_type, f"unknown market type; one of {', '.join(sorted(MARKET_TYPES))}"
        )
    return name


def _check_ns(argument: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < 2**63:
        raise QueryArgumentError(argument, value, "must be an int of nanoseconds since the epoch")
    return int(value)


def _check_range(start_ns: int, end_ns: int) -> None:
    _check_ns("start_ns", start_ns)
    _check_ns("end_ns", end_ns)
    if end_ns < start_ns:
        raise QueryArgumentError("end_ns", end_ns, f"is before start_ns={start_ns}")


def symbol_condition(symbols: Sequence[str]) -> tuple[sql.Composable, list[str]]:
    """A WHERE condition on ``symbol`` for exact pairs and bare bases, with its parameters.

    ``XYZ`` matches ``XYZ`` and ``XYZ-*`` (``symbol_matches``), never ``XYZA-USDT``: the LIKE
    prefix ends in the dash and its wildcards are escaped. Exact names go through one IN list
    (alone, QuestDB JIT-compiles it to a symbol-key comparison). The filter only runs on rows
    the time bounds already selected, so LIKE costs no measurable time on a window.
    """
    exact = [s for s in symbols if not is_base_query(s)]
    bases = [s for s in symbols if is_base_query(s)]
    parts: list[sql.Composable] = []
    params: list[str] = []
    names = exact + bases  # a bare base also names itself exactly, as symbol_matches says
    if names:
        parts.append(sql.SQL("symbol IN ({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names))))
        params.extend(names)
    for base in bases:
        parts.append(sql.SQL("symbol LIKE %s"))
        params.append(f"{_like_escape(base)}-%")
    if not parts:
        return sql.SQL("false"), []
    joined = sql.SQL(" OR ").join(parts)
    return (sql.SQL("({})").format(joined) if len(parts) > 1 else joined), params


def _conditions(
    *,
    symbols: Sequence[str] | None = None,
    exchange: str | None = None,
    market_type: str | None = None,
) -> tuple[list[sql.Composable], list[object]]:
    where: list[sql.Composable] = []
    params: list[object] = []
    if symbols is not None:
        cond, values = symbol_condition(symbols)
        where.append(cond)
        params.extend(values)
    if exchange is not None:
        where.append(sql.SQL("exchange = %s"))
        params.append(normal_exchange(exchange))
    if market_type is not None:
        where.append(sql.SQL("market_type = %s"))
        params.append(normal_market_type(market_type))
    return where, params


def _where(conditions: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(conditions)) if conditions else sql.SQL("")


def _fetch(conn: Conn, what: str, table: str, query: sql.Composed, params: Sequence[object]) -> Rows:
    """All rows as tuples over the binary protocol (about half the client time of text for trades)."""
    try:
        with conn.cursor(binary=True, row_factory=tuple_row) as cur:
            return cur.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise QueryError(f"{what} query on {table!r} failed: {exc.__class__.__name__}: {str(exc).strip()}") from exc


def _ints(column: ObjArray, null: int) -> I64Array:
    """An object column of ints (exact, also above 2**53) as int64, NULL (None) as ``null``."""
    try:
        return column.astype(np.int64)
    except TypeError:  # NULLs present: the slower masked path
        missing = np.fromiter((v is None for v in column), dtype=bool, count=len(column))
        filled = column.copy()
        filled[missing] = null
        return filled.astype(np.int64)


def _batch(rows: Rows) -> TradeBatch:
    """Trade rows (``_TRADE_COLUMNS`` order) to a batch.

    One C-level ``np.array(rows, dtype=object)`` transposes the rows; ``zip(*rows)`` would
    allocate a tuple per row, and that garbage-collector churn alone set the p99 of a
    5,000-row window at ~20 ms. NULL sequence numbers become ``NO_SEQUENCE``, NULL recv_ts 0.
    """
    if not rows:
        return TradeBatch.empty()
    grid = np.array(rows, dtype=object)
    return TradeBatch(
        ts_ns=grid[:, 0].astype(np.int64),
        exchange=grid[:, 1],
        market_type=grid[:, 2],
        symbol=grid[:, 3],
        price=grid[:, 4].astype(np.float64),
        quantity=grid[:, 5].astype(np.float64),
        side=grid[:, 6],
        trade_id=grid[:, 7],
        sequence_number=_ints(grid[:, 8], NO_SEQUENCE),
        recv_ns=_ints(grid[:, 9], 0),
    )


def trade_records(batch: TradeBatch) -> list[dict[str, Any]]:
    """Trades as JSON-ready records (``ts`` in the one time format, all nine digits), in batch order."""
    return [
        {
            "ts_ns": int(batch.ts_ns[i]),
            "ts": iso_ns(int(batch.ts_ns[i])),
            "exchange": str(batch.exchange[i]),
            "market_type": str(batch.market_type[i]),
            "symbol": str(batch.symbol[i]),
            "price": float(batch.price[i]),
            "quantity": float(batch.quantity[i]),
            "side": str(batch.side[i]),
            "trade_id": str(batch.trade_id[i]),
            "sequence_number": None if batch.sequence_number[i] == NO_SEQUENCE else int(batch.sequence_number[i]),
            "recv_ns": int(batch.recv_ns[i]) or None,
        }
        for i in range(len(batch))
    ]


def _in_time_order(batch: TradeBatch) -> TradeBatch:
    """(ts, trade_id) order from rows already in ts order: only equal timestamps need a sort."""
    if len(batch) > 1 and not bool(np.all(np.diff(batch.ts_ns) > 0)):
        return sort_by_time(batch)
    return batch


def by_venue(batch: TradeBatch) -> dict[str, TradeBatch]:
    """Split ts-ordered rows per ``venue_key``, each in (ts, trade_id) order, keys sorted.

    ``pd.factorize`` codes the two SYMBOL columns in C and one stable argsort makes each venue
    a contiguous slice (a view), so the cost does not grow with the number of venues.
    """
    if len(batch) == 0:
        return {}
    ex_codes, ex_names = pd.factorize(batch.exchange)
    mt_codes, mt_names = pd.factorize(batch.market_type)
    width = len(mt_names)
    codes = ex_codes.astype(np.int64) * width + mt_codes
    order = np.argsort(codes, kind="stable")  # stable: ts order is kept inside each venue
    grouped = batch.take(order)
    codes = codes[order]
    cuts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(codes)]
    groups: dict[str, TradeBatch] = {}
    for lo, hi in itertools.pairwise(cuts):
        code = int(codes[lo])
        key = venue_key(str(ex_names[code // width]), str(mt_names[code % width]))
        groups[key] = _in_time_order(grouped.take(slice(lo, hi)))
    return dict(sorted(groups.items()))


# --------------------------------------------------------------------------- queries
def listing_window(conn: Conn, settings: Settings, symbol: str, start_ns: int, end_ns: int) -> dict[str, TradeBatch]:
    """Every trade of ``symbol`` with ``start_ns <= ts <= end_ns``, per venue (only venues with trades).

    One query: the bound ``::timestamp_ns`` bounds become the designated-timestamp interval
    scan (only the window's rows are read, whatever the table size), the symbol test runs on
    those rows only, and ``ORDER BY ts`` is free on the designated timestamp.
    """
    symbol = normal_symbol(symbol)
    _check_range(start_ns, end_ns)
    table = settings.table("trades")
    cond, params = symbol_condition([symbol])
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE ts BETWEEN %s::timestamp_ns AND %s::timestamp_ns AND {cond} ORDER BY ts"
    ).format(cols=_TRADE_COLUMNS, table=sql.Identifier(table), cond=cond)
    rows = _fetch(conn, "listing window", table, query, [int(start_ns), int(end_ns), *params])
    return by_venue(_batch(rows))


def recent_trades(
    conn: Conn,
    settings: Settings,
    *,
    exchange: str | None = None,
    market_type: str | None = None,
    symbol: str | None = None,
    limit: int = 100,
    since_ns: int | None = None,
) -> TradeBatch:
    """The newest ``limit`` trades matching the filters, newest first (ties: higher trade_id first).

    The inner ``ORDER BY ts DESC LIMIT`` is a backward scan that stops after ``limit`` matches;
    only those rows are sorted again for the tie-break.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise QueryArgumentError("limit", limit, "must be an int in 1..1000000")
    table = settings.table("trades")
    where, params = _conditions(
        symbols=None if symbol is None else [normal_symbol(symbol)], exchange=exchange, market_type=market_type
    )
    if since_ns is not None:
        where.append(sql.SQL("ts >= %s::timestamp_ns"))
        params.append(_check_ns("since_ns", since_ns))
    query = sql.SQL(
        "SELECT {cols} FROM (SELECT * FROM {table} {where} ORDER BY ts DESC LIMIT %s) ORDER BY ts DESC, trade_id DESC"
    ).format(cols=_TRADE_COLUMNS, table=sql.Identifier(table), where=_where(where))
    return _batch(_fetch(conn, "recent trades", table, query, [*params, limit]))


def candle_bounds(start_ns: int, end_ns: int, step_ns: int) -> tuple[int, int]:
    """First and last bucket start of the candles overlapping ``[start_ns, end_ns]``.

    QuestDB aligns ``SAMPLE BY`` buckets (ALIGN TO CALENDAR, UTC) to multiples of the interval
    since the epoch, so the floor is plain integer arithmetic.
    """
    return start_ns // step_ns * step_ns, end_ns // step_ns * step_ns


def candles(
    conn: Conn,
    settings: Settings,
    symbol: str,
    start_ns: int,
    end_ns: int,
    *,
    interval: str = "1m",
    exchange: str | None = None,
    market_type: str | None = None,
    use_view: bool = True,
) -> list[Candle]:
    """OHLCV per venue and instrument for every bucket overlapping ``[start_ns, end_ns]``.

    One-minute candles come from the ``candles_1m`` materialized view (refreshed by QuestDB
    shortly after each commit, see ``wait_view_fresh``); other intervals, or ``use_view=False``,
    aggregate trades with ``SAMPLE BY``. Both give the same buckets and values.
    Ordered by (ts, exchange, market_type, symbol).
    """
    symbol = normal_symbol(symbol)
    _check_range(start_ns, end_ns)
    step = interval_ns(interval)
    first, last = candle_bounds(start_ns, end_ns, step)
    where, params = _conditions(symbols=[symbol], exchange=exchange, market_type=market_type)
    order = sql.SQL("ORDER BY ts, exchange, market_type, symbol")
    if use_view and step == VIEW_STEP_NS:
        table = settings.table(CANDLE_VIEW)
        query = sql.SQL(
            "SELECT {cols} FROM {table} WHERE ts BETWEEN %s::timestamp_ns AND %s::timestamp_ns AND {cond} {order}"
        ).format(cols=_CANDLE_COLUMNS, table=sql.Identifier(table), cond=sql.SQL(" AND ").join(where), order=order)
        rows = _fetch(conn, "candles (view)", table, query, [first, last, *params])
    else:
        table = settings.table("trades")
        query = sql.SQL(
            "SELECT {cols} FROM ("
            "SELECT ts, exchange, market_type, symbol, first(price) AS open, max(price) AS high, "
            "min(price) AS low, last(price) AS close, sum(quantity) AS volume, count() AS trades "
            "FROM {table} WHERE ts BETWEEN %s::timestamp_ns AND %s::timestamp_ns AND {cond} "
            "SAMPLE BY {interval} ALIGN TO CALENDAR) {order}"
        ).format(
            cols=_CANDLE_COLUMNS,
            table=sql.Identifier(table),
            cond=sql.SQL(" AND ").join(where),
            interval=sql.SQL(interval),  # matched INTERVAL_RE above
            order=order,
        )
        rows = _fetch(conn, f"candles (SAMPLE BY {interval})", table, query, [first, last + step - 1, *params])
    return [
        Candle(int(ts), str(ex), str(mt), str(sym), float(o), float(h), float(lo), float(c), float(v), int(n))
        for ts, ex, mt, sym, o, h, lo, c, v, n in rows
    ]


def latest_prices(
    conn: Conn,
    settings: Settings,
    symbols: Sequence[str] | None = None,
    *,
    exchange: str | None = None,
    market_type: str | None = None,
    since_ns: int | None = None,
) -> list[LatestPrice]:
    """The last trade per (exchange, market_type, symbol), ordered by those three.

    ``LATEST ON`` scans backwards until it has seen every key, i.e. the whole table when a
    key is idle; ``since_ns`` bounds that scan to an interval. ``symbols=[]`` asks for nothing.
    """
    if symbols is not None:
        if isinstance(symbols, str):
            raise QueryArgumentError("symbols", symbols, "must be a list of symbols, not one string")
        symbols = [normal_symbol(s, "symbols") for s in symbols]
        if not symbols:
            return []
    table = settings.table("trades")
    where, params = _conditions(symbols=symbols, exchange=exchange, market_type=market_type)
    if since_ns is not None:
        where.insert(0, sql.SQL("ts >= %s::timestamp_ns"))
        params.insert(0, _check_ns("since_ns", since_ns))
    query = sql.SQL(
        "SELECT ts::long, exchange, market_type, symbol, price, quantity, side, trade_id FROM {table} {where} "
        "LATEST ON ts PARTITION BY exchange, market_type, symbol ORDER BY exchange, market_type, symbol"
    ).format(table=sql.Identifier(table), where=_where(where))
    rows = _fetch(conn, "latest prices", table, query, params)
    return [
        LatestPrice(int(ts), str(ex), str(mt), str(sym), float(p), float(q), str(side), str(tid))
        for ts, ex, mt, sym, p, q, side, tid in rows
    ]


# --------------------------------------------------------------------------- view freshness
@dataclass(frozen=True, slots=True)
class ViewState:
    """Where a materialized view's refresh stands against its base table."""

    name: str
    status: str
    invalidation_reason: str
    refreshed_base_txn: int
    base_txn: int
    pending_wal: int

    @property
    def fresh(self) -> bool:
        return self.status == "valid" and self.refreshed_base_txn >= self.base_txn and self.pending_wal == 0


def view_state(conn: Conn, settings: Settings, view: str = CANDLE_VIEW) -> ViewState:
    """The refresh state of ``view`` (logical name) from ``materialized_views()`` and ``wal_tables()``."""
    name = settings.table(view)
    try:
        row = conn.execute(
            "SELECT view_status, invalidation_reason, refresh_base_table_txn, base_table_txn "
            "FROM materialized_views() WHERE view_name = %s",
            (name,),
        ).fetchone()
        pending = queries.wal_pending(conn, name) if row is not None else 0
    except psycopg.Error as exc:
        raise QueryError(f"state of view {name!r} unavailable: {exc.__class__.__name__}: {str(exc).strip()}") from exc
    if row is None:
        raise QueryError(f"no materialized view {name!r} (is migration 004 applied?)")
    status, reason, refreshed, base = row
    return ViewState(name, str(status), str(reason or ""), int(refreshed), int(base), pending)


def wait_view_fresh(conn: Conn, settings: Settings, view: str = CANDLE_VIEW, timeout: float = 30.0) -> float:
    """Block until the view has absorbed every applied base-table transaction; seconds waited.

    Call after ``queries.wait_visible`` on the base table: the view refresh starts from
    applied transactions only. Raises ``QueryError`` if QuestDB marked the view invalid (it
    then needs ``REFRESH MATERIALIZED VIEW ... FULL``), ``TimeoutError`` after ``timeout``.
    """
    started = time.monotonic()
    while True:
        state = view_state(conn, settings, view)
        if state.status == "invalid":  # "refreshing" is progress, not an error
            raise QueryError(f"view {state.name!r} is invalid: {state.invalidation_reason or 'no reason given'}")
        if state.fresh:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"{state.name}: refresh at base txn {state.refreshed_base_txn} of {state.base_txn}, "
                f"{state.pending_wal} WAL txn(s) pending after {timeout:.0f}s"
            )
        time.sleep(0.02)
