"""Property tests: whatever arrives on a socket, a parser either yields trades, nothing, or a
``FrameError`` with a reason (dead-lettered by the feed) — it never crashes and never leaves half
a frame behind. Rows with impossible values (negative price, a timestamp in 2300, a symbol that is
not BASE-QUOTE) are the feed's to refuse: it checks each drained batch with
``TradeBatch.invalid_mask`` and dead-letters a bad row with its raw frame; what is left always
validates."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from questdb_ingest.config import ConnectorSettings
from questdb_ingest.connectors.core import FrameParser, TradeColumns
from questdb_ingest.connectors.deadletter import DeadLetters
from questdb_ingest.connectors.feed import Feed
from questdb_ingest.connectors.registry import CONNECTORS, connector
from questdb_ingest.errors import FrameError
from questdb_ingest.models import Trade

from .fixtures import FixtureRest, ListEvents, ListSink, load_frames, parser

NAMES = [c.name for c in CONNECTORS]
_PARSERS: dict[str, tuple[FrameParser, list[str | bytes]]] = {}


def parser_and_frames(name: str) -> tuple[FrameParser, list[str | bytes]]:
    if name not in _PARSERS:
        _PARSERS[name] = (parser(name), load_frames(name))
    return _PARSERS[name]


def check(parse: FrameParser, frame: str | bytes) -> None:
    out = TradeColumns()
    rejected: FrameError | None = None
    try:
        n = parse(frame, 1, out)
    except FrameError as exc:
        rejected = exc
    if rejected is not None:
        assert rejected.reason, "a rejection must say why"
        assert len(out) == 0, "a rejected frame must not leave rows behind"
        return
    assert n == len(out)
    batch = out.drain("venue", "spot")
    batch.take(~batch.invalid_mask()).validate()


json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(name: str, data: bytes) -> None:
    parse, _ = parser_and_frames(name)
    check(parse, data)
    check(parse, data.decode("latin-1"))


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(cut=st.integers(min_value=0, max_value=10_000), pick=st.integers(min_value=0, max_value=100))
def test_truncated_frames(name: str, cut: int, pick: int) -> None:
    parse, frames = parser_and_frames(name)
    frame = frames[pick % len(frames)]
    check(parse, frame[: cut % max(1, len(frame))])


def _mutate(value: object, path: list[int], replacement: object) -> object:
    """Replace one leaf/sub-tree of a decoded frame, chosen by ``path``."""
    if not path:
        return replacement
    if isinstance(value, dict) and value:
        keys = sorted(value)
        key = keys[path[0] % len(keys)]
        return {**value, key: _mutate(value[key], path[1:], replacement)}
    if isinstance(value, list) and value:
        i = path[0] % len(value)
        return [*value[:i], _mutate(value[i], path[1:], replacement), *value[i + 1 :]]
    return replacement


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(
    pick=st.integers(min_value=0, max_value=100),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    replacement=json_values,
)
def test_wrong_types_and_huge_numbers(name: str, pick: int, path: list[int], replacement: object) -> None:
    parse, frames = parser_and_frames(name)
    frame = frames[pick % len(frames)]
    try:
        decoded = json.loads(frame)
    except ValueError:
        return
    mutated = json.dumps(_mutate(decoded, path, replacement))
    check(parse, mutated)
    check(parse, mutated.encode())


@pytest.mark.parametrize("name", NAMES)
def test_non_json_and_empty_frames_are_rejected_with_a_reason(name: str) -> None:
    parse, _ = parser_and_frames(name)
    for frame in ("", "{", "[]", "null", "12", '"x"', "{}", b"\x00\xff"):
        out = TradeColumns()
        with contextlib.suppress(FrameError):
            parse(frame, 1, out)
        assert len(out) == 0


def _huge(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return 2**64 + value
    if isinstance(value, str) and value.lstrip("-").replace(".", "", 1).isdigit():
        return "9" * 400
    if isinstance(value, dict):
        return {k: _huge(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_huge(v) for v in value]
    return value


@pytest.mark.parametrize("name", NAMES)
def test_numbers_beyond_int64_and_float_range(name: str) -> None:
    parse, frames = parser_and_frames(name)
    for frame in frames:
        try:
            decoded = json.loads(frame)
        except ValueError:
            continue
        check(parse, json.dumps(_huge(decoded)))


_DEEP = 100_000
UNREADABLE_FRAMES: list[str | bytes] = [
    "[" * _DEEP,
    '{"a":' * _DEEP,
    '{"e":"trade","x":' + "[" * _DEEP,
    ('{"a":' * _DEEP).encode(),
    '{"e":"trade","s":"\ud800"}',  # a str frame with a lone surrogate: not encodable as UTF-8
    '{"event":"update","channel":"x","\udfff":1}',
]


@pytest.mark.parametrize("name", NAMES)
def test_deeply_nested_and_lone_surrogate_frames_are_frame_errors(name: str) -> None:
    """The JSON decoder gives up on these with RecursionError / UnicodeEncodeError; a parser must turn
    that into a FrameError (a dead letter), not let it escape."""
    parse, _ = parser_and_frames(name)
    for frame in UNREADABLE_FRAMES:
        out = TradeColumns()
        with pytest.raises(FrameError) as info:
            parse(frame, 1, out)
        assert info.value.reason.startswith("malformed frame") and len(out) == 0


_VALID_NS = 1_758_067_201_000_000_000
_2009_NS = 1_230_768_000_000_000_000  # 2009-01-01T00:00:00Z


def _through_a_feed(name: str, base: str, quote: str, ts_ns: int, tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    """One encoded trade through the venue's ``Feed``: rows handed on, and the dead letters."""
    proto = connector(name).protocol()
    inst = proto.instrument_for(base, quote)
    trade = Trade(ts_ns=ts_ns, exchange=proto.spec.exchange, market_type=proto.spec.market_type,
                  symbol=inst.symbol, price=2.5, quantity=inst.to_base(1), side="buy", trade_id="7")  # fmt: skip
    (frame,) = proto.encode_trades(inst, [trade])
    sink, letters = ListSink(), DeadLetters(tmp_path)
    feed = Feed(proto, settings=ConnectorSettings(), rest=FixtureRest(name, proto.spec.rest_url), sink=sink,
                events=ListEvents(), dead_letters=letters)  # fmt: skip
    feed.instruments.add(inst)  # the venue's table, without opening a connection for it
    feed._parse = proto.make_parser(feed.instruments)
    feed.frame(SimpleNamespace(scope=f"{name}#0"), frame, 5)  # type: ignore[arg-type]
    asyncio.run(feed.drain())
    letters.close()
    path = letters.path(name)
    dead = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for letter in dead:
        kept = letter["text"] if isinstance(frame, str) else base64.b64decode(letter["b64"])
        assert kept == frame, "the raw frame is kept"
    return sink.rows, dead


@pytest.mark.parametrize("name", NAMES)
def test_every_venue_refuses_impossible_times_and_broken_symbols_with_the_raw_frame(name: str, tmp_path: Path) -> None:
    """A trade time before 2009 (1970 is a zero or a unit slip) or beyond now + 1 day, or a symbol
    that is not BASE-QUOTE, is never stored: the feed's batch check dead-letters the row with the
    reason and the raw frame it came in (for a replay after a fix)."""
    assert _through_a_feed(name, "BTC", "USDT", _2009_NS, tmp_path / "ok") == (1, [])  # the window's first ns is fine
    far = time.time_ns() + 3 * 86_400 * 10**9
    for ts_ns in (1_000_000, _2009_NS - 1_000_000, far, 10_413_792_000_000_000_000):  # 1970, 2008, +3 days, 2300
        rows, dead = _through_a_feed(name, "BTC", "USDT", ts_ns, tmp_path / f"t{ts_ns}")
        # ts beyond int64 can make a venue's parser refuse the frame itself; either way nothing is stored
        assert rows == 0 and len(dead) == 1 and ("ts" in dead[0]["reason"] or "range" in dead[0]["reason"]), dead
    for i, (base, quote) in enumerate(((" ", "USDT"), ("", "BTC"), ("KRW", ""), ("B TC", "USDT"))):
        rows, dead = _through_a_feed(name, base, quote, _VALID_NS, tmp_path / f"s{i}")
        assert rows == 0 and len(dead) == 1 and "symbol" in dead[0]["reason"], dead
