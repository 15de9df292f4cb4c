"""The confirmation ledger: what QuestDB confirmed, per table, exchange, market and minute of the
trades' own timestamps, written by each sender worker — what ``pumpwatch verify`` compares with
what QuestDB holds.

A worker adds every batch QuestDB confirmed (a flush, or a spool chunk replayed) to an in-memory
tally (numpy, one ``np.unique`` per batch), and appends the tally every ``FLUSH_S`` and on close
to ``<state>/ledger/shard-<n>.<YYYYMMDD>.jsonl`` — one JSON line per (table, exchange, market,
minute) increment. Files older than ``KEEP_DAYS`` are removed as new days begin.

Delivery is at least once: rows a worker had sent when it died are sent again by its successor
(DEDUP keys make QuestDB keep them once), and a spool segment a worker was replaying when it died
is replayed again. Such rows are counted a second time with ``resent`` set, so a minute is
consistent when ``confirmed - resent <= stored``: fewer stored than that is rows lost after
QuestDB confirmed them. A worker killed before its last append leaves up to ``FLUSH_S`` of
confirmations unledgered; verify reports that (QuestDB holding more than the ledger) apart.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..timefmt import iso
from .codec import Decoded

FLUSH_S = 2.0
KEEP_DAYS = 7
MINUTE_NS = 60_000_000_000


@dataclass(frozen=True)
class LedgerKey:
    table: str
    exchange: str
    market_type: str
    minute_ns: int


class Ledger:
    """One worker's tally of confirmed rows, appended to its own file (no two writers share one)."""

    def __init__(self, directory: str | Path, shard: int, default_table: str) -> None:
        self.directory = Path(directory)
        self.shard = shard
        self.default_table = default_table
        self._rows: dict[LedgerKey, list[int]] = {}  # key → [rows, resent]
        self._last_flush = time.monotonic()
        self._pruned_day = ""

    def add(self, d: Decoded, *, resent: bool = False) -> None:
        """Count a confirmed batch, per exchange, market and minute (vectorised: one unique per batch)."""
        if not d.rows:
            return
        markets = d.frame["market_type"].array  # a Categorical (``.cat`` costs ~10x more per call)
        market_codes = np.asarray(markets.codes, dtype=np.int64)
        market_names = [str(c) for c in markets.categories]
        minutes = d.ts_ns // MINUTE_NS
        n_markets = max(len(market_names), 1)
        combined = (minutes * len(d.exchanges) + d.exchange_codes) * n_markets + market_codes
        keys, counts = np.unique(combined, return_counts=True)
        table = d.table or self.default_table
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            rest, market = divmod(key, n_markets)
            minute, exchange = divmod(rest, len(d.exchanges))
            entry = self._rows.setdefault(
                LedgerKey(table, d.exchanges[exchange], market_names[market], minute * MINUTE_NS), [0, 0]
            )
            entry[0] += count
            entry[1] += count if resent else 0

    def maybe_flush(self) -> None:
        if self._rows and time.monotonic() - self._last_flush >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Append the tally (one line per key) and start a new one."""
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        now_ns = time.time_ns()
        day = iso(now_ns, 0)[:10].replace("-", "")
        self.directory.mkdir(parents=True, exist_ok=True)
        at = iso(now_ns)
        lines = [
            json.dumps({
                "table": k.table, "exchange": k.exchange, "market_type": k.market_type, "minute_ns": k.minute_ns,
                "rows": rows, "resent": resent, "at": at,
            }, separators=(",", ":"))
            for k, (rows, resent) in self._rows.items()
        ]  # fmt: skip
        with open(self.directory / f"shard-{self.shard}.{day}.jsonl", "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self._rows = {}
        if day != self._pruned_day:
            self._pruned_day = day
            prune(self.directory, now_ns)


def prune(directory: Path, now_ns: int, keep_days: int = KEEP_DAYS) -> list[Path]:
    """Remove ledger files of days more than ``keep_days`` before ``now_ns``; returns them."""
    cutoff = iso(now_ns - keep_days * 86_400 * 10**9, 0)[:10].replace("-", "")
    removed = []
    for path in directory.glob("shard-*.*.jsonl"):
        day = path.name.rsplit(".", 2)[-2]
        if day.isdigit() and day < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read(directory: str | Path, table: str, since_ns: int, until_ns: int) -> Iterator[tuple[LedgerKey, int, int]]:
    """Every ledger increment for ``table`` whose minute overlaps [since_ns, until_ns): (key, rows, resent).
    A line cut short by a crash mid-append is skipped."""
    root = Path(directory)
    if not root.is_dir():
        return
    for path in sorted(root.glob("shard-*.*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                minute = int(rec["minute_ns"])
                if rec["table"] != table or minute + MINUTE_NS <= since_ns or minute >= until_ns:
                    continue
                yield (
                    LedgerKey(table, rec["exchange"], rec["market_type"], minute),
                    int(rec["rows"]),
                    int(rec["resent"]),
                )


def ledger_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "ledger")
