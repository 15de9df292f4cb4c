"""Integrity check: per exchange, market and minute, what the sender's workers say QuestDB
confirmed (the confirmation ledger, ``sender/ledger.py``) against what QuestDB holds, plus the
connector gaps recorded in the range.

A minute is
* ``ok`` when ``confirmed - resent <= stored`` (resent rows may be stored once: DEDUP);
* ``missing`` when QuestDB holds fewer: rows lost after QuestDB confirmed them — the failure;
* ``unledgered`` when QuestDB holds more than the ledger: rows written by another process, before
  the ledger existed, or confirmed by a worker killed before its last ledger append. Reported,
  and a failure only with ``strict``.
Committed rows become visible when QuestDB applies its WAL; the check waits for that first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from ..config import Settings
from ..sender.ledger import MINUTE_NS, read
from ..store.pg import connect
from ..store.queries import wait_visible
from ..timefmt import iso

US = 1000  # the gaps table keeps microsecond TIMESTAMPs


@dataclass
class MinuteCheck:
    exchange: str
    market_type: str
    minute: str
    minute_ns: int
    confirmed: int
    resent: int
    stored: int
    status: str  # ok | missing | unledgered


@dataclass
class VerifyReport:
    table: str
    since: str
    until: str
    strict: bool
    minutes: list[MinuteCheck] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def missing(self) -> list[MinuteCheck]:
        return [m for m in self.minutes if m.status == "missing"]

    @property
    def unledgered(self) -> list[MinuteCheck]:
        return [m for m in self.minutes if m.status == "unledgered"]

    @property
    def ok(self) -> bool:
        return not self.missing and not (self.strict and self.unledgered)

    def totals(self) -> dict[tuple[str, str], dict[str, int]]:
        out: dict[tuple[str, str], dict[str, int]] = {}
        for m in self.minutes:
            t = out.setdefault((m.exchange, m.market_type), {"confirmed": 0, "resent": 0, "stored": 0, "minutes": 0,
                                                             "missing": 0, "unledgered": 0})  # fmt: skip
            t["confirmed"] += m.confirmed
            t["resent"] += m.resent
            t["stored"] += m.stored
            t["minutes"] += 1
            t[m.status] = t.get(m.status, 0) + (m.status != "ok")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table, "since": self.since, "until": self.until, "strict": self.strict, "ok": self.ok,
            "missing_minutes": len(self.missing), "unledgered_minutes": len(self.unledgered),
            "totals": [{"exchange": e, "market_type": m, **t} for (e, m), t in sorted(self.totals().items())],
            "minutes": [asdict(m) for m in self.minutes], "gaps": self.gaps,
        }  # fmt: skip


def verify(
    settings: Settings, since_ns: int, until_ns: int, *, exchange: str | None = None, strict: bool = False
) -> VerifyReport:
    """Compare the ledger and QuestDB over whole minutes covering [since_ns, until_ns)."""
    start = since_ns - since_ns % MINUTE_NS
    end = until_ns + (-until_ns) % MINUTE_NS
    table = settings.table("trades")
    report = VerifyReport(table=table, since=iso(start), until=iso(end), strict=strict)
    ledger: dict[tuple[str, str, int], list[int]] = {}
    for lkey, rows, resent in read(settings.sender.ledger_dir, table, start, end):
        if exchange is None or lkey.exchange == exchange:
            entry = ledger.setdefault((lkey.exchange, lkey.market_type, lkey.minute_ns), [0, 0])
            entry[0] += rows
            entry[1] += resent
    where = sql.SQL(" AND exchange = %s") if exchange else sql.SQL("")
    query = sql.SQL(
        "SELECT exchange, market_type, timestamp_floor('m', ts)::long, count() FROM {t} "
        "WHERE ts >= %s::timestamp_ns AND ts < %s::timestamp_ns{w} GROUP BY 1, 2, 3"
    ).format(t=sql.Identifier(table), w=where)
    gaps_q = sql.SQL(
        "SELECT gap_start_ts::long, gap_end_ts::long, gap_ms, exchange, market_type, scope, reason, filled, "
        "backfilled_trades FROM {t} WHERE gap_start_ts < %s::timestamp_ns AND (gap_end_ts >= %s::timestamp_ns "
        "OR gap_end_ts IS NULL){w} ORDER BY gap_start_ts"
    ).format(t=sql.Identifier(settings.table("gaps")), w=where)
    params: list[object] = [start, end, *([exchange] if exchange else [])]
    with connect(settings) as conn:
        wait_visible(conn, table, timeout=60)
        stored_rows: list[tuple[Any, ...]] = conn.execute(query, params).fetchall()
        gap_rows: list[tuple[Any, ...]] = conn.execute(gaps_q, [end, start, *params[2:]]).fetchall()
    stored = {(str(e), str(m), int(minute)): int(n) for e, m, minute, n in stored_rows}
    for key in sorted(set(ledger) | set(stored), key=lambda k: (k[2], k[0], k[1])):
        confirmed, resent = ledger.get(key, [0, 0])
        have = stored.get(key, 0)
        status = "missing" if have < confirmed - resent else "unledgered" if have > confirmed else "ok"
        report.minutes.append(MinuteCheck(key[0], key[1], iso(key[2], 0), key[2], confirmed, resent, have, status))
    report.gaps = [
        {"start": iso(int(g[0]) * US), "end": iso(int(g[1]) * US) if g[1] is not None else None, "gap_ms": g[2],
         "exchange": g[3], "market_type": g[4], "scope": g[5], "reason": g[6], "filled": g[7],
         "backfilled_trades": g[8]}
        for g in gap_rows
    ]  # fmt: skip
    return report
