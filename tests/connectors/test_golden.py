"""Every connector: recorded frames → exactly the expected normalised trades (golden, not counts)."""

from __future__ import annotations

import contextlib
import json

import pytest

from questdb_ingest.connectors.core import TradeColumns
from questdb_ingest.connectors.registry import CONNECTORS, connector
from questdb_ingest.errors import VenueError

from .fixtures import expected_rows, fixture_instruments, load_frames

NAMES = [c.name for c in CONNECTORS]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_frames_give_exactly_the_expected_trades(name: str) -> None:
    proto = connector(name).protocol()
    parse = proto.make_parser(fixture_instruments(proto))
    out = TradeColumns()
    for frame in load_frames(name):
        # The only unusable frames in the recordings are explicit venue errors; any other
        # FrameError fails the test.
        with contextlib.suppress(VenueError):
            parse(frame, 1, out)
    assert out.rows() == expected_rows(name)
    assert out.recv_ns == [1] * len(out)


@pytest.mark.parametrize("name", NAMES)
def test_replay_encoding_round_trips_through_the_parser(name: str) -> None:
    """What the replay server sends for a venue parses back to the same trades."""
    proto = connector(name).protocol()
    trades = [row for row in expected_rows(name)]
    instruments = fixture_instruments(proto)
    parse = proto.make_parser(instruments)
    by_symbol = {inst.symbol: inst for inst in instruments.values()}
    out = TradeColumns()
    from questdb_ingest.models import Trade

    for row in trades:
        inst = by_symbol[str(row["symbol"])]
        trade = Trade(exchange=proto.spec.exchange, market_type=proto.spec.market_type, **row)  # type: ignore[arg-type]
        for frame in proto.encode_trades(inst, [trade]):
            parse(frame, 1, out)
    got = out.rows()
    assert [(r["symbol"], r["price"], r["quantity"], r["side"]) for r in got] == [
        (r["symbol"], r["price"], r["quantity"], r["side"]) for r in trades
    ]


@pytest.mark.parametrize(("name", "channel"), [("binance_spot", "trade"), ("binance_futures", "aggTrade")])
def test_binance_combined_stream_frames_give_the_same_trades(name: str, channel: str) -> None:
    """On a combined stream (``/stream?streams=``) every payload arrives as
    ``{"stream": "<sym>@<channel>", "data": <payload>}``; acks stay bare. Text and binary alike."""
    proto = connector(name).protocol()
    parse = proto.make_parser(fixture_instruments(proto))
    out = TradeColumns()
    wrapped = 0
    for frame in load_frames(name):
        payload = json.loads(frame)
        if "e" in payload:
            stream = f"{str(payload.get('s', '')).lower()}@{channel}" if "s" in payload else "!shutdown"
            frame = json.dumps({"stream": stream, "data": payload})
            wrapped += 1
        parse(frame, 1, out)
        parse(frame.encode() if isinstance(frame, str) else frame, 1, out)
    expected = expected_rows(name)
    assert wrapped >= len(expected) == 3  # every trade (and spot's serverShutdown) came wrapped
    assert out.rows() == [row for row in expected for _ in (0, 1)]
