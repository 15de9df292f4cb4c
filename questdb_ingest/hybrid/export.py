"""A collected listing window on disk: ``trades.parquet``, ``trades.json`` and ``summary.json``.

Each export is its own directory, ``<dir>/<BASE>_<trigger UTC yyyymmddThhmmss>/``. It is written
under a hidden temporary name and renamed into place only when every file is complete and synced,
so a reader (or a crash) never sees a half-written export under the final name.

Timestamps stay integer nanoseconds: ``ts_ns`` is an int64 column in Parquet and a JSON integer
(exact above 2**53, unlike a JSON float); ``ts`` adds a readable ``timestamp[ns, UTC]`` / ISO form.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..models import TradeBatch
from ..timefmt import iso_ns
from .window import ListingData

PARQUET_NAME = "trades.parquet"
TRADES_JSON_NAME = "trades.json"
SUMMARY_JSON_NAME = "summary.json"

# Column order of the Parquet table and of each JSON trade record.
COLUMNS = ("venue", "exchange", "market_type", "symbol", "ts_ns", "ts", "price", "quantity", "side", "trade_id")
SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("exchange", pa.string()),
        ("market_type", pa.string()),
        ("symbol", pa.string()),
        ("ts_ns", pa.int64()),
        ("ts", pa.timestamp("ns", tz="UTC")),
        ("price", pa.float64()),
        ("quantity", pa.float64()),
        ("side", pa.string()),
        ("trade_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class ExportPaths:
    """Where one window was exported (the directory and its three files)."""

    directory: Path
    parquet: Path
    trades_json: Path
    summary_json: Path


def export_name(symbol: str, trigger_ns: int) -> str:
    """Directory name of a window: ``NEWCOIN_20240501T120000`` (trigger second, UTC)."""
    stamp = datetime.fromtimestamp(trigger_ns // 1_000_000_000, tz=UTC).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in symbol) or "listing"
    return f"{safe}_{stamp}"


def window_columns(data: ListingData) -> dict[str, np.ndarray[Any, Any]]:
    """Every venue's trades as one set of columns, ordered by (ts, venue, trade id).

    A single time-ordered table is what a reader of a listing window wants (who traded first);
    the venue column keeps each row's origin since two venues can share exchange names."""
    parts: list[TradeBatch] = []
    venues: list[np.ndarray[Any, Any]] = []
    for venue, batch in sorted(data.venues.items()):
        if len(batch):
            parts.append(batch)
            venues.append(np.full(len(batch), venue, dtype=object))
    merged = TradeBatch.concat(parts)
    venue_col = np.concatenate(venues) if venues else np.empty(0, dtype=object)
    order = np.lexsort((merged.trade_id.astype(str), venue_col.astype(str), merged.ts_ns))
    return {
        "venue": venue_col[order],
        "exchange": merged.exchange[order],
        "market_type": merged.market_type[order],
        "symbol": merged.symbol[order],
        "ts_ns": merged.ts_ns[order],
        "price": merged.price[order],
        "quantity": merged.quantity[order],
        "side": merged.side[order],
        "trade_id": merged.trade_id[order],
    }


def window_table(data: ListingData) -> pa.Table:
    """The window as the Parquet table (see ``SCHEMA``)."""
    return _table(window_columns(data))


def _table(cols: dict[str, np.ndarray[Any, Any]]) -> pa.Table:
    arrays = [
        pa.array(cols["ts_ns"], type=pa.timestamp("ns", tz="UTC"))
        if name == "ts"
        else pa.array(cols[name], type=SCHEMA.field(name).type)
        for name in COLUMNS
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def summary(data: ListingData) -> dict[str, Any]:
    """What was collected, without the trades: small enough for a live view to read many of."""
    return {
        "symbol": data.symbol,
        "trigger_ns": data.trigger_ns,
        "trigger": iso_ns(data.trigger_ns),
        "window": {
            "start_ns": data.start_ns,
            "end_ns": data.end_ns,
            "start": iso_ns(data.start_ns),
            "end": iso_ns(data.end_ns),
        },
        "source": data.source,
        "fell_back": data.fell_back,
        "latency_ms": data.latency_ms,
        "counts": data.counts(),
        "total": data.total_trades,
        "exchanges_with_data": data.exchanges_with_data,
        "notes": list(data.notes),
        "exported_ns": time.time_ns(),
        "files": [PARQUET_NAME, TRADES_JSON_NAME, SUMMARY_JSON_NAME],
    }


def trade_records(data: ListingData) -> list[dict[str, Any]]:
    """The window's trades as JSON-ready records, in the Parquet table's order."""
    return _records(window_columns(data))


def _records(cols: dict[str, np.ndarray[Any, Any]]) -> list[dict[str, Any]]:
    lists = {name: cols[name].tolist() for name in cols}  # Python ints/floats/strs, exact
    return [
        {
            "venue": lists["venue"][i],
            "exchange": lists["exchange"][i],
            "market_type": lists["market_type"][i],
            "symbol": lists["symbol"][i],
            "ts_ns": lists["ts_ns"][i],
            "ts": iso_ns(lists["ts_ns"][i]),
            "price": lists["price"][i],
            "quantity": lists["quantity"][i],
            "side": lists["side"][i],
            "trade_id": lists["trade_id"][i],
        }
        for i in range(len(lists["ts_ns"]))
    ]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_window(data: ListingData, directory: Path) -> ExportPaths:
    """Write ``data`` under ``directory/<BASE>_<trigger>/`` atomically and return the paths.

    An earlier export of the same listing (same name) is replaced. Raises ``OSError`` when the
    directory cannot be written; nothing is left under the final name in that case."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / export_name(data.symbol, data.trigger_ns)
    tmp = directory / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        cols = window_columns(data)
        pq.write_table(_table(cols), tmp / PARQUET_NAME)
        meta = summary(data)
        (tmp / TRADES_JSON_NAME).write_bytes(msgspec.json.encode({**meta, "trades": _records(cols)}))
        (tmp / SUMMARY_JSON_NAME).write_bytes(msgspec.json.encode(meta))
        for name in (PARQUET_NAME, TRADES_JSON_NAME, SUMMARY_JSON_NAME):
            _fsync(tmp / name)
        _fsync(tmp)
        if final.exists():
            old = directory / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(final)
        with contextlib.suppress(OSError):  # not every filesystem syncs directories
            _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportPaths(final, final / PARQUET_NAME, final / TRADES_JSON_NAME, final / SUMMARY_JSON_NAME)
