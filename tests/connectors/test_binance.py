"""Binance control frames: errors (``{"code", "msg", "id"}``) are venue errors, acks are not, and an
event the connector does not know is an ``UnknownEventError`` (``serverShutdown`` is known)."""

from __future__ import annotations

import json

import pytest

from questdb_ingest.connectors.core import TradeColumns
from questdb_ingest.errors import UnknownEventError, VenueError

from .fixtures import parser, proto

BINANCE = ["binance_spot", "binance_futures"]

# The error frames of binance-spot-api-docs web-socket-streams.md ("Error Messages"), with and without id.
ERRORS = [
    ('{"code": 0, "msg": "Unknown property", "id": 5}', "Unknown property"),
    ('{"code": 1, "msg": "Invalid value type: expected Boolean"}', "expected Boolean"),
    ('{"code": 2, "msg": "Invalid request: request ID must be an unsigned integer", "id": 1}', "request ID"),
    ('{"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 73", "id": null}', "method"),
    ('{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}', "Invalid JSON"),
]
ACKS = ['{"result":null,"id":1}', '{"result":["btcusdt@trade"],"id":3}', '{"result":true,"id":2}']


@pytest.mark.parametrize("name", BINANCE)
@pytest.mark.parametrize(("frame", "text"), ERRORS)
def test_error_frames_are_venue_errors_with_the_message(name: str, frame: str, text: str) -> None:
    out = TradeColumns()
    with pytest.raises(VenueError) as info:
        parser(name)(frame, 1, out)
    assert text in info.value.reason and str(json.loads(frame)["code"]) in info.value.reason
    assert len(out) == 0


@pytest.mark.parametrize("name", BINANCE)
def test_acks_and_server_shutdown_are_quiet(name: str) -> None:
    parse = parser(name)
    for frame in [*ACKS, '{"e":"serverShutdown","E":1758070800000}']:
        assert parse(frame, 1, TradeColumns()) == 0


@pytest.mark.parametrize("name", BINANCE)
def test_unknown_events_are_unknown_event_errors(name: str) -> None:
    parse = parser(name)
    for frame in (
        '{"e":"kline","E":1758067201123,"s":"BTCUSDT","k":{}}',
        '{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1758067201123}}',
    ):
        with pytest.raises(UnknownEventError) as info:
            parse(frame, 1, TradeColumns())
        assert info.value.event == "kline" and "kline" in info.value.reason


@pytest.mark.parametrize("name", BINANCE)
def test_replay_errors_have_the_venue_shape_and_parse_as_venue_errors(name: str) -> None:
    p = proto(name)
    for bad in ("garbage", '{"method":"LOGIN","id":9}', "[" * 100_000):
        (reply,) = p.answer(bad).replies
        assert {"code", "msg"} <= set(json.loads(reply))
        with pytest.raises(VenueError):
            parser(name)(reply, 1, TradeColumns())
