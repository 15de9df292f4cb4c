"""The pipeline contest is fair: the simple baseline stores exactly the rows the product stores."""

from __future__ import annotations

from pathlib import Path

import questdb
from psycopg import sql
from rich.console import Console

from questdb_ingest.bench.connectors import build_mix
from questdb_ingest.bench.contest import CONTENDERS, PRODUCT, RAW, SIMPLE, SimpleHandler, _conf, run_contest
from questdb_ingest.connectors.core import TradeColumns
from questdb_ingest.connectors.registry import select
from questdb_ingest.sender import ShardedSender
from questdb_ingest.store import queries
from questdb_ingest.store.pg import connect
from tests.conftest import QuestDB
from tests.integration.sender_helpers import sender_settings

COLUMNS = "ts, exchange, market_type, symbol, price, quantity, side, trade_id, sequence_number"


def _rows(settings: object, table: str) -> list[tuple[object, ...]]:
    with connect(settings) as conn:  # type: ignore[arg-type]
        queries.wait_visible(conn, table, timeout=120)
        query = sql.SQL("SELECT " + COLUMNS + " FROM {} ORDER BY ts, symbol, trade_id").format(sql.Identifier(table))
        return conn.execute(query).fetchall()


def test_the_simple_handler_stores_the_same_rows_as_the_product(qdb: QuestDB, tmp_path: Path) -> None:
    mix = build_mix(select("binance_spot"), 3_000, symbols=20)[0]
    simple = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "s1")
    with questdb.Sender.from_conf(_conf(simple)) as client:
        handler = SimpleHandler(mix, client, simple.table("trades"))
        for i in range(0, len(mix.frames), 1_000):
            handler.write(mix.frames[i : i + 1_000])
    product = sender_settings(qdb.settings, qdb.new_prefix(), tmp_path / "s2", workers=1)
    parse = mix.proto.make_parser(mix.instruments)
    out = TradeColumns()
    with ShardedSender(product) as snd:
        for frame in mix.frames:
            parse(frame, 1, out)
        snd.submit(out.drain("binance", "spot"))
        assert snd.flush(timeout=120)
    ours, theirs = _rows(product, product.table("trades")), _rows(simple, simple.table("trades"))
    assert len(ours) == mix.trades == 3_000
    assert ours == theirs


def test_one_round_of_every_contender_lands_every_row(qdb: QuestDB) -> None:
    mix = build_mix(select("binance_spot"), 2_000, symbols=10)[0]
    result = run_contest(qdb.settings, mix, workers=1, repeat=1, console=Console(quiet=True))
    assert [r["contender"] for r in result.rounds] == list(CONTENDERS)  # each checks count() == 2,000
    summary = result.summary()
    assert summary[SIMPLE]["vs_simple"] == 1.0 and summary[RAW]["vs_raw"] == 1.0
    assert summary[PRODUCT]["median_rows_per_s"] > 0
