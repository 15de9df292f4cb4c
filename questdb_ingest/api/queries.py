"""The API's reads from QuestDB (PGWire, bound parameters; the archive tables through ``store.archive``):
each opens a short connection in the API's thread pool, never on an event loop, and returns
JSON-ready values."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..config import Settings
from ..store import archive, market
from ..store.pg import connect
from ..timefmt import iso, iso_ns

NS = 1_000_000_000
US = 1000  # listing_events and gaps keep microsecond TIMESTAMPs: ::long is µs there


def recent_trades(
    settings: Settings, symbol: str | None, exchange: str | None, market_type: str | None, limit: int
) -> list[dict[str, Any]]:
    with connect(settings, connect_timeout=3) as conn:
        batch = market.recent_trades(
            conn, settings, symbol=symbol, exchange=exchange, market_type=market_type, limit=limit
        )
    return market.trade_records(batch)


def _listing_id(symbol: str, ts_ns: int) -> str:
    return f"{symbol}-{ts_ns}"


def _window(settings: Settings, ts_ns: int) -> tuple[int, int]:
    h = settings.hybrid
    return ts_ns - int(h.window_before * NS), ts_ns + int(h.window_after * NS)


def listings(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """Recent ``listing_events``, newest first, each with its window's trade count per venue."""
    table = settings.table("listing_events")
    query = sql.SQL(
        "SELECT ts::long, symbol, announced_at::long, detected_at::long, trigger_delay_ms, collected_trades, "
        "exchanges_with_data FROM {t} ORDER BY ts DESC LIMIT %s"
    ).format(t=sql.Identifier(table))
    out: list[dict[str, Any]] = []
    with connect(settings, connect_timeout=3) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(query, [limit]).fetchall()
        for ts_us, symbol, announced, detected, delay, collected, venues in rows:
            ts = int(ts_us) * US
            start, end = _window(settings, ts)
            counts = {
                venue: len(b) for venue, b in market.listing_window(conn, settings, str(symbol), start, end).items()
            }
            out.append({
                "id": _listing_id(str(symbol), int(ts)), "symbol": symbol, "ts": iso(int(ts)),
                "announced_at": iso(int(announced) * US) if announced is not None else None,
                "detected_at": iso(int(detected) * US) if detected is not None else None,
                "trigger_delay_ms": delay, "collected_trades": collected, "exchanges_with_data": venues,
                "window": {"start": iso(start), "end": iso(end)}, "counts": counts,
            })  # fmt: skip
    return out


def listing_window(settings: Settings, listing_id: str) -> dict[str, Any] | None:
    """The trades of one listing's window, per venue; None when no such listing was recorded."""
    symbol, _, ts_text = listing_id.rpartition("-")
    if not symbol or not ts_text.isdigit():
        return None
    ts_ns = int(ts_text)
    table = settings.table("listing_events")
    query = sql.SQL("SELECT count() FROM {t} WHERE ts = %s::timestamp_ns AND symbol = %s").format(
        t=sql.Identifier(table)
    )
    start, end = _window(settings, ts_ns)
    with connect(settings, connect_timeout=3) as conn:
        row: tuple[Any, ...] | None = conn.execute(query, [ts_ns, symbol]).fetchone()
        if not row or not int(row[0]):
            return None
        venues = market.listing_window(conn, settings, symbol, start, end)
    return {
        "id": listing_id, "symbol": symbol, "trigger": iso_ns(ts_ns), "start": iso_ns(start), "end": iso_ns(end),
        "counts": {v: len(b) for v, b in venues.items()},
        "venues": {v: market.trade_records(b) for v, b in venues.items()},
    }  # fmt: skip


def gaps(settings: Settings, since_ns: int, limit: int) -> list[dict[str, Any]]:
    table = settings.table("gaps")
    query = sql.SQL(
        "SELECT gap_start_ts::long, gap_end_ts::long, gap_ms, exchange, market_type, scope, reason, filled, "
        "backfilled_trades, symbols FROM {t} WHERE gap_start_ts >= %s::timestamp_ns ORDER BY gap_start_ts DESC LIMIT %s"
    ).format(t=sql.Identifier(table))
    with connect(settings, connect_timeout=3) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(query, [since_ns, limit]).fetchall()
    return [
        {"start": iso(int(r[0]) * US), "end": iso(int(r[1]) * US) if r[1] is not None else None, "gap_ms": r[2],
         "exchange": r[3], "market_type": r[4], "scope": r[5], "reason": r[6], "filled": r[7],
         "backfilled_trades": r[8], "symbols": r[9]}
        for r in rows
    ]  # fmt: skip


# --------------------------------------------------------------------------- archive tables (store.archive)
def archive_bars(
    settings: Settings, symbol: str, interval: str, start_ns: int | None, end_ns: int | None, limit: int
) -> list[dict[str, Any]]:
    """The newest swing 10m bars (no range), or the ``interval`` bars starting in ``[start_ns, end_ns)``."""
    with connect(settings, connect_timeout=3) as conn:
        if start_ns is None or end_ns is None:
            return archive.bar_records(archive.get_latest_bars(conn, settings, symbol, limit))
        bars = archive.get_bars_in_range(conn, settings, symbol, start_ns, end_ns, interval, limit=limit)
    return archive.bar_records(bars)


def archive_ticks(
    settings: Settings, symbol: str, start_ns: int | None, end_ns: int | None, limit: int
) -> list[dict[str, Any]]:
    """The newest scalp ticks (no range), or those in ``[start_ns, end_ns)``."""
    with connect(settings, connect_timeout=3) as conn:
        if start_ns is None or end_ns is None:
            return archive.tick_records(archive.get_latest_ticks(conn, settings, symbol, limit))
        ticks = archive.get_ticks_in_range(conn, settings, symbol, start_ns, end_ns, limit=limit)
    return archive.tick_records(ticks)


def archive_gaps(
    settings: Settings,
    scope: str | None,
    source: archive.GapSource,
    start_ns: int,
    end_ns: int,
    min_seconds: float,
    count: bool,
    limit: int,
) -> list[dict[str, Any]] | dict[str, Any]:
    """Gaps of either ledger (or both) starting in ``[start_ns, end_ns)``, or their counts."""
    with connect(settings, connect_timeout=3) as conn:
        if count:
            counts = archive.count_gaps(conn, settings, scope, start_ns, end_ns, source, min_seconds=min_seconds)
            return archive.gap_count_record(counts)
        gaps = archive.get_critical_gaps(conn, settings, min_seconds, start_ns, end_ns, source, scope, limit=limit)
    return archive.gap_records(gaps)
