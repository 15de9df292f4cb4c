"""The shared connector pieces: instruments, exact conversions, trade columns, dead letters, backoff,
and how a feed handles venue errors, unknown events, rejected rows and unreadable frames."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
from rich.table import Table

from questdb_ingest.app.snapshot import feed_snapshot
from questdb_ingest.cli.views.feeds import feeds_table
from questdb_ingest.config import ConnectorSettings
from questdb_ingest.connectors.binance import BinanceProtocol
from questdb_ingest.connectors.connection import Backoff
from questdb_ingest.connectors.core import (
    Frame,
    FrameParser,
    Instrument,
    Instruments,
    TradeColumns,
    VenueProtocol,
    decimal_ms_to_ns,
    num_text,
    split_concatenated,
)
from questdb_ingest.connectors.deadletter import DeadLetters
from questdb_ingest.connectors.feed import Feed, select_instruments
from questdb_ingest.connectors.registry import CONNECTORS, connector, select
from questdb_ingest.errors import ConfigError
from questdb_ingest.models import Trade

from .fixtures import FixtureRest, ListEvents, ListSink


def test_contract_sizes_convert_exactly() -> None:
    okx = Instrument.make("BTC-USDT-SWAP", "BTC", "USDT", multiplier="0.01")
    gate = Instrument.make("BTC_USDT", "BTC", "USDT", multiplier="0.0001")
    assert (okx.size_num, okx.size_den) == (1, 100)
    assert okx.to_base(12) == 0.12 and okx.to_base(0.5) == 0.005
    assert gate.to_base(25) == 0.0025 and gate.to_base(3) == 0.0003
    assert gate.to_contracts(0.0025) == pytest.approx(25)
    with pytest.raises(ValueError, match="multiplier"):
        Instrument.make("X", "X", "USDT", multiplier="0")


def test_symbols_normalise_with_aliases_and_fallbacks() -> None:
    assert Instrument.make("XBTUSDTM", "XBT", "USDT").symbol == "BTC-USDT"
    assert split_concatenated("SOMIUSDT") == ("SOMI", "USDT")
    assert split_concatenated("USDT") is None
    known = Instruments([Instrument.make("1000PEPEUSDC", "1000PEPE", "USDC")])
    assert known.symbol_of("1000PEPEUSDC") == "1000PEPE-USDC"
    assert known.symbol_of("ETHFDUSD") == "ETH-FDUSD"  # not listed: quote-suffix fallback
    assert known.symbol_of("eth_btc") == "ETH-BTC"


def test_decimal_ms_is_exact_ns() -> None:
    assert decimal_ms_to_ns("1758067201193.4521") == 1_758_067_201_193_452_100
    assert decimal_ms_to_ns("1758067201345") == 1_758_067_201_345_000_000
    assert decimal_ms_to_ns("1758067201345.1234567") == 1_758_067_201_345_123_456
    for bad in ("", "1.2.3", "-5", "12a", "1e3"):
        with pytest.raises(ValueError):
            decimal_ms_to_ns(bad)


def test_num_text_round_trips_without_exponent() -> None:
    for value in (1.2345, 0.00001234, 115234.56, 1e-8, 3.0):
        text = num_text(value)
        assert "e" not in text.lower() and float(text) == value


def test_trade_columns_drain_builds_a_valid_batch_and_resets() -> None:
    cols = TradeColumns()
    cols.add(1_758_067_201_122_000_000, "SOMI-USDT", 1.2345, 812.0, "buy", "51234567", 5, 77)
    cols.add(1_758_067_201_129_000_000, "SOMI-USDT", 1.2341, 150.5, "sell", "51234568", 6)
    batch = cols.drain("binance", "spot")
    assert len(cols) == 0 and len(batch) == 2
    batch.validate(now=1_758_067_300_000_000_000)
    assert batch.exchange.tolist() == ["binance", "binance"]
    assert batch.sequence_number[0] == 77 and batch.recv_ns.tolist() == [5, 6]


def test_invalid_mask_flags_exactly_the_bad_rows() -> None:
    cols = TradeColumns()
    now = 1_758_067_300_000_000_000
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, 1.0, "buy", "1", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", -1.0, 1.0, "buy", "2", 1)
    cols.add(9_958_067_201_000_000_000, "A-USDT", 1.0, 1.0, "buy", "3", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, float("nan"), "buy", "4", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, 1.0, "hold", "5", 1)
    cols.add(1_758_067_201_000_000_000, "A-USDT", 1.0, 1.0, "sell", "", 1)
    batch = cols.drain("x", "spot")
    assert batch.invalid_mask(now).tolist() == [False, True, True, True, True, True]
    batch.take(~batch.invalid_mask(now)).validate(now)


def test_dead_letters_keep_text_and_binary_frames(tmp_path: Path) -> None:
    dl = DeadLetters(tmp_path / "dl")
    dl.write("okx_spot", '{"event":"error"}', "venue error: 60018", 11, scope="okx_spot#0")
    dl.write("upbit_spot", b"\x00\x01", "malformed frame", 12)
    dl.close()
    okx = [json.loads(line) for line in (tmp_path / "dl" / "okx_spot.jsonl").read_text().splitlines()]
    assert okx == [
        {"recv_ns": 11, "connector": "okx_spot", "reason": "venue error: 60018", "scope": "okx_spot#0",
         "text": '{"event":"error"}', "truncated": False}
    ]  # fmt: skip
    upbit = json.loads((tmp_path / "dl" / "upbit_spot.jsonl").read_text())
    assert upbit["b64"] == "AAE=" and dl.counts == {"okx_spot": 1, "upbit_spot": 1}


def test_backoff_grows_with_jitter_caps_and_resets() -> None:
    b = Backoff(0.5, 8.0)
    delays = [b.next_delay() for _ in range(10)]
    assert 0.25 <= delays[0] <= 0.75
    assert all(d <= 8.0 for d in delays) and max(delays) >= 4.0
    b.reset()
    assert b.next_delay() <= 0.75


def test_instrument_selection_by_quote_symbol_and_cap() -> None:
    found = [Instrument.make(f"{b}{q}", b, q) for b in ("BTC", "ETH", "SOL") for q in ("USDT", "BTC")]
    assert [i.symbol for i in select_instruments(found, ConnectorSettings())] == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    assert len(select_instruments(found, ConnectorSettings(quotes=""))) == 6
    only = select_instruments(found, ConnectorSettings(symbols="eth-btc, SOL-USDT"))
    assert [i.symbol for i in only] == ["ETH-BTC", "SOL-USDT"]
    assert len(select_instruments(found, ConnectorSettings(max_symbols=2))) == 2


def test_registry_selection_names_the_bad_key() -> None:
    assert len(select("all")) == len(CONNECTORS) == 14
    assert [c.name for c in select("okx_spot, upbit_spot")] == ["okx_spot", "upbit_spot"]
    with pytest.raises(ConfigError, match=r"connectors\.enabled.*nasdaq"):
        select("binance_spot,nasdaq")
    assert connector("bithumb_spot").protocol().spec.exchange == "bithumb"
    assert np.all([c.protocol().spec.connector == c.name for c in CONNECTORS])


# ---- the feed: venue errors, unknown events, rejected rows, unreadable frames -------------------
CONN = SimpleNamespace(scope="binance_spot#0")  # all the feed reads of a connection when it dead-letters


def _feed(tmp_path: Path, proto: VenueProtocol | None = None) -> tuple[Feed, ListSink, ListEvents]:
    proto = proto or connector("binance_spot").protocol()
    sink, events = ListSink(), ListEvents()
    feed = Feed(proto, settings=ConnectorSettings(), rest=FixtureRest(proto.spec.connector, proto.spec.rest_url),
                sink=sink, events=events, dead_letters=DeadLetters(tmp_path / "dl"))  # fmt: skip
    return feed, sink, events


def _dead_letters(feed: Feed) -> list[dict[str, object]]:
    feed.dead_letters.close()
    path = feed.dead_letters.path(feed.name)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _cell(table: Table, header: str) -> str:
    (column,) = [c for c in table.columns if c.header == header]
    (cell,) = list(column.cells)
    return str(cell)


def _trade_frame(symbol: str = "SOMIUSDT", trade_id: int = 1, ts_ms: int = 1758067201122) -> str:
    return json.dumps({"e": "trade", "E": ts_ms + 1, "s": symbol, "t": trade_id, "p": "1.2345", "q": "812",
                       "T": ts_ms, "m": False, "M": True})  # fmt: skip


def test_feed_counts_a_venue_error_shows_it_in_health_and_the_view_and_dead_letters_it(tmp_path: Path) -> None:
    feed, _, events = _feed(tmp_path)
    error = '{"code": 2, "msg": "Invalid request: unknown variant SUBSCRIBEX", "id": 3}'
    feed.frame(CONN, '{"result":null,"id":1}', 1)  # an ack is not an error
    feed.frame(CONN, error, 2)
    assert (feed.stats.venue_errors, feed.stats.dead_letters) == (1, 1)
    (health,) = events.healths
    assert health.status == "error" and "Invalid request" in health.error_message
    assert "venue errors: 1" in health.error_message and feed.stats.last_error == health.error_message
    assert _cell(feeds_table([feed_snapshot(feed, 0.0)], "t"), "venue err") == "[red]1[/]"
    (letter,) = _dead_letters(feed)
    assert letter["text"] == error and "Invalid request" in str(letter["reason"]) and letter["recv_ns"] == 2


def test_feed_counts_unknown_events_apart_and_dead_letters_them(tmp_path: Path) -> None:
    feed, _, events = _feed(tmp_path)
    frames = ['{"e":"kline","E":1}', '{"e":"serverShutdown","E":1}', '{"stream":"x@y","data":{"e":"newEvent"}}']
    for i, frame in enumerate(frames):
        feed.frame(CONN, frame, i)
    assert (feed.stats.unknown_events, feed.stats.venue_errors, feed.stats.dead_letters) == (2, 0, 2)
    assert events.healths == []  # a protocol change is counted, it does not mark the feed as failing
    assert _cell(feeds_table([feed_snapshot(feed, 0.0)], "t"), "unknown ev") == "[yellow]2[/]"
    assert [(d["text"], d["reason"]) for d in _dead_letters(feed)] == [
        (frames[0], "unknown event 'kline'"),
        (frames[2], "unknown event 'newEvent'"),
    ]


@pytest.mark.parametrize("symbol", [" ", "-", "KRW-", "-BTC"])
def test_a_binance_trade_with_a_broken_symbol_is_dead_lettered_raw(tmp_path: Path, symbol: str) -> None:
    feed, sink, _ = _feed(tmp_path)
    bad = _trade_frame(symbol)
    feed.frame(CONN, bad, 1)
    feed.frame(CONN, _trade_frame(trade_id=2, ts_ms=0), 2)  # 1970
    asyncio.run(feed.drain())
    assert sink.batches == [] and feed.stats.trades == 0
    letters = _dead_letters(feed)
    assert [d["text"] for d in letters] == [bad, _trade_frame(trade_id=2, ts_ms=0)]
    assert "symbol" in str(letters[0]["reason"]) and "ts_ns" in str(letters[1]["reason"])


class _UncheckedBinance(BinanceProtocol):
    """A parser that skips the value check (a bug the batch validation must still catch)."""

    def make_parser(self, instruments: Instruments) -> FrameParser:
        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            msg = json.loads(frame)
            out.add(msg["T"] * 1_000_000, "SOMI-USDT", float(msg["p"]), float(msg["q"]), "buy", msg["x"], recv_ns)
            return 1

        return parse


def test_a_row_rejected_by_validation_keeps_its_raw_frame(tmp_path: Path) -> None:
    feed, sink, _ = _feed(tmp_path, _UncheckedBinance(connector("binance_spot").protocol().spec))
    frames = [json.dumps({"T": 1758067201122, "p": "1.5", "q": "2", "x": x}) for x in ("1", "", "3")]
    for i, frame in enumerate(frames):
        feed.frame(CONN, frame, 10 + i)
    asyncio.run(feed.drain())
    (batch,) = sink.batches
    assert batch.trade_id.tolist() == ["1", "3"] and feed.stats.trades == 2
    (letter,) = _dead_letters(feed)
    assert letter["text"] == frames[1] and letter["source"] == "stream" and letter["recv_ns"] == 11
    assert "trade_id" in str(letter["reason"]) and letter["trade"]["trade_id"] == ""  # type: ignore[index]


def test_unreadable_frames_are_dead_letters_and_the_feed_carries_on(tmp_path: Path) -> None:
    feed, sink, _ = _feed(tmp_path)
    deep, surrogate = '{"a":' * 100_000, '{"e":"trade","s":"\ud800"}'
    for i, frame in enumerate((deep, "[" * 100_000, surrogate, _trade_frame())):
        feed.frame(CONN, frame, i)
    asyncio.run(feed.drain())
    assert [len(b) for b in sink.batches] == [1] and feed.stats.dead_letters == 3
    letters = _dead_letters(feed)
    assert [d["text"] for d in letters] == [deep, "[" * 100_000, '{"e":"trade","s":"\\ud800"}']
    assert [d.get("escaped", False) for d in letters] == [False, False, True]
    assert all(str(d["reason"]).startswith("malformed frame") for d in letters)


def test_dead_letters_escape_lone_surrogates_instead_of_failing(tmp_path: Path) -> None:
    dl = DeadLetters(tmp_path / "dl")
    dl.write("binance_spot", "\ud800{", "reason quoting \udfff", 5, scope="binance_spot#0")
    dl.write("binance_spot", "ok", "fine", 6)
    dl.close()
    raw = (tmp_path / "dl" / "binance_spot.jsonl").read_bytes()
    first, second = (msgspec.json.decode(line) for line in raw.splitlines())  # strict UTF-8 JSON, every line
    assert first == {"recv_ns": 5, "connector": "binance_spot", "reason": "reason quoting \\udfff",
                     "scope": "binance_spot#0", "text": "\\ud800{", "truncated": False, "escaped": True}  # fmt: skip
    assert second["text"] == "ok" and "escaped" not in second and dl.counts["binance_spot"] == 2


def test_the_benchmark_frame_mix_has_no_trade_id_holes() -> None:
    """``bench connectors|e2e`` frames number ids per instrument as Binance does; a global counter
    made each frame a hole in the stream, so the end-to-end run back-filled gaps it never had."""
    from questdb_ingest.bench.connectors import build_mix
    from questdb_ingest.connectors.continuity import TradeIds
    from questdb_ingest.connectors.core import TradeColumns
    from questdb_ingest.connectors.registry import connector

    (mix,) = build_mix([connector("binance_spot")], 2_000, symbols=5)
    out = TradeColumns()
    parse = mix.proto.make_parser(mix.instruments)
    for frame in mix.frames:
        parse(frame, 1, out)
    batch = out.drain("binance", "spot")
    assert len(batch) == 2_000
    assert TradeIds().check(batch) == []


class _ReplayRest:
    """A ``RestClient`` answered by the venue's own replay side from a fixed list of recent trades."""

    def __init__(self, proto: VenueProtocol, inst: Instrument, trades: list[Trade]) -> None:
        self.proto, self.inst, self.trades = proto, inst, trades

    async def get(self, url: str, params: dict[str, str] | None = None) -> bytes:
        path = url[len(self.proto.spec.rest_url) :]
        reply = self.proto.serve_rest("GET", path, params or {}, [self.inst], lambda _vs: self.trades, "")
        assert reply is not None and reply.status == 200, (path, reply)
        return reply.body


@pytest.mark.parametrize(
    ("ages_s", "filled"),
    [
        ([-0.5, -0.2, -0.1], True),  # listed after the gap began: three trades are its whole history
        ([-0.002 * i for i in range(500, 0, -1)], False),  # a full page, all after the start: unknown before
        ([1.0] + [-0.002 * i for i in range(499, 0, -1)], True),  # a full page reaching back past the start
    ],
)
def test_a_gap_is_filled_when_the_recent_page_reaches_back_or_holds_every_trade(
    tmp_path: Path, ages_s: list[float], filled: bool
) -> None:
    """A venue answers with up to one page of recent trades; only a full page that starts after the
    gap leaves trades unknown (an instrument whose first trade came after the gap start is whole)."""
    okx = connector("okx_spot").protocol()
    inst = Instrument.make("NEW-USDT", "NEW", "USDT")
    start = (time.time_ns() // 1_000_000 - 60_000) * 1_000_000  # a minute ago, whole ms (OKX times)
    trades = [
        Trade(ts_ns=start - int(age * 1e9), exchange="okx", market_type="spot", symbol=inst.symbol, price=1.5,
              quantity=2.0, side="buy", trade_id=str(n + 1))
        for n, age in enumerate(ages_s)
    ]  # fmt: skip
    sink, events = ListSink(), ListEvents()
    feed = Feed(okx, settings=ConnectorSettings(), rest=_ReplayRest(okx, inst, trades), sink=sink, events=events,
                dead_letters=DeadLetters(tmp_path / "dl"))  # fmt: skip
    conn = SimpleNamespace(scope="okx_spot#0")
    asyncio.run(feed._close_gap(conn, start, start + 2_000_000_000, "watchdog", [inst]))  # type: ignore[arg-type]
    (gap,) = events.gaps
    assert (gap.filled, gap.backfilled_trades) == (filled, len(trades))
    assert sum(len(b) for b in sink.batches) == len(trades)
