"""Shared set-up for hybrid tests: a migrated namespace, trades written and visible, a manager."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from questdb_ingest.config import Settings
from questdb_ingest.hybrid.manager import HybridDataManager
from questdb_ingest.hybrid.reader import QuestDBReader
from questdb_ingest.hybrid.ring import RingBuffer
from questdb_ingest.hybrid.rollout import Rollout
from questdb_ingest.ingest import TradeWriter
from questdb_ingest.models import TradeBatch, now_ns
from questdb_ingest.store import queries
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect

from ..conftest import QuestDB, scoped_settings

NS = 1_000_000_000


def fresh_settings(qdb: QuestDB, tmp_path: Path, **hybrid: object) -> Settings:
    """A migrated namespace of the test's own, with rollout state and exports under ``tmp_path``."""
    settings = scoped_settings(qdb.new_prefix())
    with connect(settings) as conn:
        migrate(conn, settings)
    return replace(
        settings,
        hybrid=replace(
            settings.hybrid,
            rollout_state=str(tmp_path / "rollout.json"),
            export_dir=str(tmp_path / "listings"),
            compare_sync_timeout=10.0,
            **hybrid,  # type: ignore[arg-type]
        ),
    )


def write_visible(settings: Settings, batch: TradeBatch) -> None:
    with TradeWriter.from_settings(settings) as writer:
        writer.write(batch)
    with connect(settings) as conn:
        queries.wait_visible(conn, settings.table("trades"), timeout=60)


def venue_trades(
    exchange: str, market: str, n: int, *, base: str = "XYZ", quote: str = "USDT", start_ns: int | None = None
) -> TradeBatch:
    """``n`` trades one second apart ending now, ids ``<exchange>-<i>``."""
    start = now_ns() - n * NS if start_ns is None else start_ns
    return TradeBatch.from_columns(
        ts_ns=[start + i * NS + 123 for i in range(n)],
        exchange=[exchange] * n,
        market_type=[market] * n,
        symbol=[f"{base}-{quote}"] * n,
        price=list(np.round(np.linspace(1.0, 2.0, n), 6)),
        quantity=[float(i + 1) for i in range(n)],
        side=["buy" if i % 2 else "sell" for i in range(n)],
        trade_id=[f"{exchange}-{i}" for i in range(n)],
    )


def manager_for(
    settings: Settings,
    *,
    compare: bool,
    phase: int = 0,
    reader: QuestDBReader | None = None,
    write_compares: bool = True,
) -> HybridDataManager:
    rollout = Rollout.from_settings(settings)
    if rollout.current().number != phase:
        rollout.set_phase(phase, "test set-up")
    ring = RingBuffer(hot_window_s=3600, memory_cap_bytes=16 << 20, segment_rows=1024)
    return HybridDataManager(
        settings,
        ring,
        rollout,
        reader or QuestDBReader(settings),
        compare=compare,
        compare_writer=HybridDataManager.compare_writer_for(settings) if write_compares else None,
    )
