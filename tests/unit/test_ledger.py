"""The confirmation ledger: exact per-minute tallies from confirmed batches, appended per worker,
read back by table and range, pruned by day."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from questdb_ingest.connectors import SyntheticMarket
from questdb_ingest.sender.codec import decode, encode_batch
from questdb_ingest.sender.ledger import MINUTE_NS, Ledger, prune, read

T0 = 1_764_000_000 * 10**9 // MINUTE_NS * MINUTE_NS


def test_tallies_per_exchange_market_and_minute_match_a_plain_count(tmp_path: Path) -> None:
    batch = SyntheticMarket(symbols=20, seed=3).batch(5_000, start_ns=T0, span_ns=5 * MINUTE_NS)
    ledger = Ledger(tmp_path, shard=1, default_table="trades")
    half = len(batch) // 2
    ledger.add(decode(encode_batch(batch.take(np.arange(half)))))
    ledger.add(decode(encode_batch(batch.take(np.arange(half, len(batch))))), resent=True)
    ledger.flush()
    got: dict[tuple[str, str, int], list[int]] = {}
    for key, rows, resent in read(tmp_path, "trades", T0, T0 + 5 * MINUTE_NS):
        entry = got.setdefault((key.exchange, key.market_type, key.minute_ns), [0, 0])
        entry[0] += rows
        entry[1] += resent
    want: dict[tuple[str, str, int], list[int]] = {}
    for i, (ex, mt, ts) in enumerate(zip(batch.exchange, batch.market_type, batch.ts_ns, strict=True)):
        entry = want.setdefault((str(ex), str(mt), int(ts) // MINUTE_NS * MINUTE_NS), [0, 0])
        entry[0] += 1
        entry[1] += i >= half
    assert got == want
    assert list(read(tmp_path, "other_trades", T0, T0 + 5 * MINUTE_NS)) == []
    assert [k.minute_ns for k, _, _ in read(tmp_path, "trades", T0 + 4 * MINUTE_NS, T0 + 5 * MINUTE_NS)] != []
    assert all(k.minute_ns == T0 + 4 * MINUTE_NS for k, _, _ in read(tmp_path, "trades", T0 + 4 * MINUTE_NS + 1,
                                                                      T0 + 5 * MINUTE_NS))  # fmt: skip


def test_a_torn_last_line_is_skipped_and_old_days_are_pruned(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, shard=0, default_table="trades")
    ledger.add(decode(encode_batch(SyntheticMarket(symbols=2).batch(10, start_ns=T0, span_ns=1000))))
    ledger.flush()
    (path,) = tmp_path.glob("shard-0.*.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"table":"trades","exchange":"binance","minute')  # a crash mid-append
    assert sum(rows for _, rows, _ in read(tmp_path, "trades", T0, T0 + MINUTE_NS)) == 10
    old = tmp_path / "shard-0.20200101.jsonl"
    old.write_text("")
    assert prune(tmp_path, now_ns=T0) == [old] and path.exists()
