"""Remove exactly what one archive file (or one session) wrote, and mark its state so a rerun
ingests it again.

QuestDB has no row ``DELETE``, so a rollback rewrites each affected day partition: the rows that
stay are copied aside into ``<table>__rb_<YYYYMMDD>`` (counted against what the partition held),
the partition is dropped, the kept rows go back, and the copy is dropped only once the table holds
exactly them. A rollback that dies midway leaves the copy; the next rollback finds it and finishes
that day first (the partition empty: the copy goes back; else the copy was not yet used and is
made again), so a crash never loses a kept row.

Archive tables carry ``source_file`` (and ``session_id``), so the rows are named exactly. The
1-minute bars of a rolled-back scalp file are recomputed from the ticks that remain.
Rows an archive put into ``trades`` carry no file: the file is read again (it must be unchanged)
and the rows whose DEDUP key it holds are the ones that go (an anti-join against a keys table).
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from ..config import Settings
from ..errors import RollbackError
from ..ingest.writer import FrameWriter
from ..store.queries import wait_applied, wal_sequencer_txn
from .formats import Options
from .runner import ArchiveRunner, recompute_bars
from .sources import file_digest
from .state import FileState, StateStore, exclusive

# Archive table → designated timestamp column.
TABLES = {"scalp_ticks": "event_time", "scalp_gaps": "gap_start_ts", "swing_bars_10m": "bar_time"}
BARS = ("scalp_1m_bars", "bar_time")
DAY_NS = 86_400 * 10**9
Conn = psycopg.Connection[Any]


@dataclass
class TableRollback:
    table: str
    removed: int = 0
    kept: int = 0
    partitions: list[str] = field(default_factory=list)


@dataclass
class RollbackReport:
    target: str  # file:<path> | session:<id>
    dry_run: bool
    tables: list[TableRollback] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # ingest_state paths marked rolled_back
    bars_recomputed: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def removed(self) -> int:
        return sum(t.removed for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"removed": self.removed}


def _ident(settings: Settings, logical: str) -> sql.Identifier:
    return sql.Identifier(settings.table(logical))


def _wait(conn: Conn, table: str) -> None:
    txn = wal_sequencer_txn(conn, table)
    if not wait_applied(conn, table, txn, timeout=120):
        raise RollbackError(f"{table}: WAL not applied after 120 s")


def _exists(conn: Conn, table: str) -> bool:
    return conn.execute("SELECT 1 FROM tables() WHERE table_name = %s", (table,)).fetchone() is not None


def _count(conn: Conn, table: str, ts_col: str, day_ns: int, extra: sql.Composable | None = None) -> int:
    cond = sql.SQL("{ts} >= {lo}::timestamp_ns AND {ts} < {hi}::timestamp_ns").format(
        ts=sql.Identifier(ts_col), lo=sql.Literal(day_ns), hi=sql.Literal(day_ns + DAY_NS)
    )
    if extra is not None:
        cond = sql.SQL("{} AND ({})").format(cond, extra)
    row = conn.execute(sql.SQL("SELECT count() FROM {} WHERE {}").format(sql.Identifier(table), cond)).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Doomed:
    """Which rows go: those matching ``where`` (a filter on the table), or — for ``trades``, whose
    rows name no file — those whose DEDUP key is in the ``keys`` table (an anti-join keeps the rest)."""

    where: sql.Composable | None = None
    keys: str = ""  # a table of (ts, exchange, market_type, symbol, trade_id)

    def days(self, conn: Conn, table: str, ts_col: str) -> list[int]:
        source, col = (self.keys, "ts") if self.keys else (table, ts_col)
        filt = sql.SQL("") if self.keys else sql.SQL(" WHERE {}").format(self.where)
        rows = conn.execute(
            sql.SQL("SELECT DISTINCT timestamp_floor('d', {ts}) FROM {t}{f}").format(
                ts=sql.Identifier(col), t=sql.Identifier(source), f=filt
            )
        ).fetchall()
        return [int(calendar.timegm(r[0].timetuple())) * 10**9 for r in rows if r[0] is not None]

    def kept(self, table: str, in_day: sql.Composable) -> sql.Composable:
        """The query of the rows of one day that stay."""
        if not self.keys:
            return sql.SQL("SELECT * FROM {t} WHERE {d} AND NOT ({f})").format(
                t=sql.Identifier(table), d=in_day, f=self.where
            )
        on = sql.SQL(" AND ").join(sql.SQL("t.{c} = k.{c}").format(c=sql.Identifier(c)) for c in TRADE_KEY)
        return sql.SQL("SELECT t.* FROM {t} t LEFT JOIN {k} k ON {on} WHERE {d} AND k.trade_id IS NULL").format(
            t=sql.Identifier(table), k=sql.Identifier(self.keys), on=on, d=in_day
        )


TRADE_KEY = ("ts", "exchange", "market_type", "symbol", "trade_id")


def _in_day(ts_col: str, day: int, alias: str = "") -> sql.Composable:
    col = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(ts_col)) if alias else sql.Identifier(ts_col)
    return sql.SQL("{ts} >= {lo}::timestamp_ns AND {ts} < {hi}::timestamp_ns").format(
        ts=col, lo=sql.Literal(day), hi=sql.Literal(day + DAY_NS)
    )


def rewrite_without(
    conn: Conn, table: str, ts_col: str, doomed: Doomed, *, dry_run: bool = False, live: bool = False
) -> TableRollback:
    """Remove ``doomed``'s rows of ``table``, day partition by day partition (literals are quoted
    by psycopg: QuestDB's CREATE TABLE AS takes no bind parameters). ``live``: the table is one
    capture writes to, so a day that ended less than a day ago is refused before anything changes
    (a row captured between the copy and the drop would be lost)."""
    out = TableRollback(table)
    days = sorted(set(doomed.days(conn, table, ts_col)) | set(_leftovers(conn, table)))
    recent = [d for d in days if live and d + DAY_NS > time.time_ns() - DAY_NS]
    if recent:
        name = dt.datetime.fromtimestamp(recent[0] / 1e9, dt.UTC).strftime("%Y-%m-%d")
        raise RollbackError(
            f"{table}: the rows fall in {name}, a day live capture may still write to; nothing was changed — "
            "roll it back once that day is more than a day old"
        )
    for day in days:
        name = dt.datetime.fromtimestamp(day / 1e9, dt.UTC).strftime("%Y-%m-%d")
        total = _count(conn, table, ts_col, day)
        kept_query = doomed.kept(table, _in_day(ts_col, day, "t" if doomed.keys else ""))
        row = conn.execute(sql.SQL("SELECT count() FROM ({})").format(kept_query)).fetchone()
        keep = int(row[0]) if row else 0
        if total == keep and not _exists(conn, _aside_name(table, name)):
            continue  # nothing of it in this day
        out.partitions.append(name)
        out.removed += total - keep
        out.kept += keep
        if not dry_run:
            _rewrite_day(conn, table, ts_col, day, name, kept_query, keep, total)
    return out


def _aside_name(table: str, day_name: str) -> str:
    return f"{table}__rb_{day_name.replace('-', '')}"


def _leftovers(conn: Conn, table: str) -> list[int]:
    """Days whose rewrite an earlier rollback left unfinished (their copy still exists)."""
    rows = conn.execute("SELECT table_name FROM tables() WHERE table_name LIKE %s", (f"{table}__rb_%",)).fetchall()
    out = []
    for (name,) in rows:
        stamp = str(name).rsplit("__rb_", 1)[-1]
        try:
            out.append(int(dt.datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=dt.UTC).timestamp()) * 10**9)
        except ValueError:
            continue
    return out


def _rewrite_day(
    conn: Conn, table: str, ts_col: str, day: int, name: str, kept: sql.Composable, keep: int, total: int
) -> None:
    aside = _aside_name(table, name)
    t, a, ts = sql.Identifier(table), sql.Identifier(aside), sql.Identifier(ts_col)
    if _exists(conn, aside):
        if _count(conn, table, ts_col, day) == 0:  # dropped already: put the copy back
            _put_back(conn, table, aside, ts_col, day)
            return
        conn.execute(sql.SQL("DROP TABLE {}").format(a))  # made, never used: make it again
    conn.execute(
        sql.SQL("CREATE TABLE {a} AS ({q}) TIMESTAMP({ts}) PARTITION BY DAY BYPASS WAL").format(a=a, q=kept, ts=ts)
    )
    copied = conn.execute(sql.SQL("SELECT count() FROM {}").format(a)).fetchone()
    if copied is None or int(copied[0]) != keep:
        conn.execute(sql.SQL("DROP TABLE {}").format(a))
        raise RollbackError(
            f"{table} {name}: copied {copied[0] if copied else 0} rows aside, expected {keep}; "
            "nothing was removed (is something writing to it?)"
        )
    if _count(conn, table, ts_col, day) != total:  # a row arrived since it was counted: not ours to drop
        conn.execute(sql.SQL("DROP TABLE {}").format(a))
        raise RollbackError(f"{table} {name}: rows were written to it during the rollback; nothing was removed")
    conn.execute(sql.SQL("ALTER TABLE {} DROP PARTITION LIST {}").format(t, sql.Literal(name)))
    _wait(conn, table)
    _put_back(conn, table, aside, ts_col, day)


def _put_back(conn: Conn, table: str, aside: str, ts_col: str, day: int) -> None:
    t, a = sql.Identifier(table), sql.Identifier(aside)
    keep_row = conn.execute(sql.SQL("SELECT count() FROM {}").format(a)).fetchone()
    keep = int(keep_row[0]) if keep_row else 0
    if keep:
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(t, a))
        _wait(conn, table)
    have = _count(conn, table, ts_col, day)
    if have != keep:
        raise RollbackError(
            f"{table}: the day holds {have} rows after the rewrite, expected {keep}; the kept rows "
            f"stay in {aside} (rerun the rollback to finish)"
        )
    conn.execute(sql.SQL("DROP TABLE {}").format(a))


def rollback(
    conn: Conn,
    settings: Settings,
    *,
    file: str | None = None,
    session: str | None = None,
    dry_run: bool = False,
    on_table: Callable[[str], None] | None = None,
) -> RollbackReport:
    """Remove what ``file`` (a path as ingested) or ``session`` wrote; never while an archive
    ingest or another rollback runs on these tables (``state.exclusive``)."""
    if (file is None) == (session is None):
        raise RollbackError("give exactly one of a file or a session")
    with exclusive(settings):
        return _rollback(conn, settings, file, session, dry_run, on_table)


def _rollback(
    conn: Conn,
    settings: Settings,
    file: str | None,
    session: str | None,
    dry_run: bool,
    on_table: Callable[[str], None] | None,
) -> RollbackReport:
    started = time.monotonic()
    store = StateStore(conn, settings)
    states = store.latest()
    if file is not None:
        st = states.get(file)
        if st is None:
            raise RollbackError(f"{file}: no ingest of this path is recorded (see `pumpwatch archive status`)")
        if st.format not in ("swing", "scalp", "gaps"):
            return _rollback_trades(conn, settings, store, st, dry_run, started)
        column, value = "source_file", file
        report = RollbackReport(f"file:{file}", dry_run)
    else:
        column, value = "session_id", str(session)
        report = RollbackReport(f"session:{session}", dry_run)
    doomed = Doomed(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value)))
    touched: set[str] = set()
    spans: list[tuple[int, int]] = []
    for logical, ts_col in TABLES.items():
        table = settings.table(logical)
        if on_table:
            on_table(table)
        if file is None:
            rows = conn.execute(
                sql.SQL("SELECT DISTINCT source_file FROM {} WHERE session_id = %s").format(sql.Identifier(table)),
                (value,),
            ).fetchall()
            touched |= {str(r[0]) for r in rows if r[0] is not None}
        if logical == "scalp_ticks" and file is not None:
            span = conn.execute(
                sql.SQL("SELECT min(event_time)::long, max(event_time)::long FROM {} WHERE {}").format(
                    sql.Identifier(table), doomed.where
                )
            ).fetchone()
            if span and span[0] is not None:
                spans.append((int(span[0]) * 1000, int(span[1]) * 1000))
        report.tables.append(rewrite_without(conn, table, ts_col, doomed, dry_run=dry_run))
    bars_table = settings.table(BARS[0])
    if file is None:
        report.tables.append(rewrite_without(conn, bars_table, BARS[1], doomed, dry_run=dry_run))
    for lo, hi in spans:
        start, end = lo - lo % 60_000_000_000, hi - hi % 60_000_000_000 + 60_000_000_000
        minutes = Doomed(
            sql.SQL("bar_time >= {}::timestamp_ns AND bar_time < {}::timestamp_ns").format(
                sql.Literal(start), sql.Literal(end)
            )
        )
        bars = rewrite_without(conn, bars_table, BARS[1], minutes, dry_run=dry_run)
        report.tables.append(bars)
        if not dry_run:
            recompute_bars(conn, settings, start, end - 1)
        report.bars_recomputed.append((start, end))
    if file is not None:
        touched.add(file)
    report.files = sorted(p for p in touched if p in states)
    if not dry_run:
        for path in report.files:
            store.put(states[path].replace(status="rolled_back", watermark=0, error=f"rolled back ({report.target})"))
    report.seconds = time.monotonic() - started
    return report


def _rollback_trades(
    conn: Conn, settings: Settings, store: StateStore, st: FileState, dry_run: bool, started: float
) -> RollbackReport:
    """A file whose rows went to ``trades``: read it again exactly as it was ingested (same hash,
    same options), put its rows' DEDUP keys in a keys table, and rewrite the days they fall in
    without the rows whose key is there. Rows the file shares with live capture (same trade)
    go too: they are the same rows."""
    path = Path(st.path)
    if not path.exists():
        raise RollbackError(f"{st.path}: the file is gone; its trades rows cannot be told from the others without it")
    if file_digest(path)[1] != st.sha256:
        raise RollbackError(f"{st.path}: the file changed since it was ingested; a rollback needs what was ingested")
    report = RollbackReport(f"file:{st.path}", dry_run)
    trades = settings.table("trades")
    keys = f"{trades}__rbkeys"
    k = sql.Identifier(keys)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(k))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (ts TIMESTAMP_NS, exchange SYMBOL, market_type SYMBOL, symbol SYMBOL, trade_id VARCHAR) "
            "TIMESTAMP(ts) PARTITION BY DAY WAL"  # ILP writes only WAL tables
        ).format(k)
    )
    try:
        reader = ArchiveRunner(settings, fmt=st.format, options=Options.from_json(st.options), dry_run=True)
        with FrameWriter(settings.client_conf(), keys, symbols=TRADE_KEY[1:4], at="ts", batch_rows=1 << 40,
                         background_flush=False) as writer:  # fmt: skip
            for _, _, _, decoded in reader.decoded_batches(path, st.format):
                batch = decoded.trades
                if batch is None or not len(batch):
                    continue
                frame = pd.DataFrame({
                    "ts": batch.ts_ns.astype("datetime64[ns]"), "exchange": pd.Categorical(batch.exchange),
                    "market_type": pd.Categorical(batch.market_type), "symbol": pd.Categorical(batch.symbol),
                    "trade_id": pd.Series(batch.trade_id, dtype=object),
                })  # fmt: skip
                writer.write(frame)
                writer.flush()
        _wait(conn, keys)
        report.tables.append(rewrite_without(conn, trades, "ts", Doomed(keys=keys), dry_run=dry_run, live=True))
    finally:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(k))
    report.files = [st.path]
    if not dry_run:
        store.put(st.replace(status="rolled_back", watermark=0, error=f"rolled back ({report.target})"))
    report.seconds = time.monotonic() - started
    return report
