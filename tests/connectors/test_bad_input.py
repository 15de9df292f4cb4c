"""Property tests: whatever arrives on a socket, a parser either yields trades, nothing, or a
``FrameError`` with a reason (dead-lettered by the feed) — it never crashes and never leaves half
a frame behind. Rows with impossible values (negative price, a timestamp in 2300) are caught by
``TradeBatch.invalid_mask``, which the feed uses to dead-letter them: what is left always validates."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from questdb_ingest.connectors.core import FrameParser, TradeColumns
from questdb_ingest.connectors.registry import CONNECTORS
from questdb_ingest.errors import FrameError

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
