"""Property tests: whatever arrives on a socket, a parser either yields trades, nothing, or a
``FrameError`` with a reason (dead-lettered by the feed) — it never crashes and never leaves half
a frame behind. Rows with impossible values (negative price, a timestamp in 2300, a symbol that is
not BASE-QUOTE) are rejected by every parser's shared value check; ``TradeBatch.invalid_mask``,
which the feed uses to dead-letter what still slips through, is the second line: what is left
always validates."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from questdb_ingest.connectors.core import FrameParser, Instruments, TradeColumns
from questdb_ingest.connectors.registry import CONNECTORS, connector
from questdb_ingest.errors import FrameError
from questdb_ingest.models import Trade

from .fixtures import load_frames, parser

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


def _encoded(name: str, base: str, quote: str, ts_ns: int) -> tuple[FrameParser, str | bytes]:
    """A parser that knows ``base``/``quote`` and the replay encoder's frame of one trade of it."""
    proto = connector(name).protocol()
    inst = proto.instrument_for(base, quote)
    trade = Trade(ts_ns=ts_ns, exchange=proto.spec.exchange, market_type=proto.spec.market_type,
                  symbol=inst.symbol, price=2.5, quantity=inst.to_base(1), side="buy", trade_id="7")  # fmt: skip
    (frame,) = proto.encode_trades(inst, [trade])
    return proto.make_parser(Instruments([inst])), frame


@pytest.mark.parametrize("name", NAMES)
def test_every_venue_rejects_impossible_times_and_broken_symbols(name: str) -> None:
    """Every venue's parse path runs the shared value check: a trade time before 2009 (1970 is a
    zero or a unit slip) or beyond now + 1 day, or a symbol that is not BASE-QUOTE, rejects the
    whole frame with the reason, so the feed dead-letters it raw."""
    parse, frame = _encoded(name, "BTC", "USDT", _2009_NS)
    out = TradeColumns()
    assert parse(frame, 1, out) == 1 and out.ts_ns == [_2009_NS]  # the window's first ns is fine
    far = time.time_ns() + 3 * 86_400 * 10**9
    for ts_ns in (1_000_000, _2009_NS - 1_000_000, far, 10_413_792_000_000_000_000):  # 1970, 2008, +3 days, 2300
        parse, frame = _encoded(name, "BTC", "USDT", ts_ns)
        with pytest.raises(FrameError, match="ts_ns"):
            parse(frame, 1, TradeColumns())
    for base, quote in ((" ", "USDT"), ("", "BTC"), ("KRW", ""), ("B TC", "USDT")):
        parse, frame = _encoded(name, base, quote, _VALID_NS)
        with pytest.raises(FrameError, match="symbol"):
            parse(frame, 1, TradeColumns())
