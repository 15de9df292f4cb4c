"""Recorded venue frames, their expected normalised trades, and REST fixtures served offline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

from questdb_ingest.connectors.core import Frame, FrameParser, Instruments, TradeColumns, VenueProtocol
from questdb_ingest.connectors.registry import connector
from questdb_ingest.models import GapEvent, HealthEvent, TradeBatch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "exchanges"
SAMPLES = FIXTURES / "samples"
REST = FIXTURES / "rest"


def load_frames(connector: str) -> list[Frame]:
    """Frames in arrival order; a line holding a bare JSON string is a non-JSON text frame."""
    frames: list[Frame] = []
    for line in (SAMPLES / f"{connector}.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        value = json.loads(line)
        frames.append(value if isinstance(value, str) else line)
    return frames


def expected_rows(connector: str) -> list[dict[str, object]]:
    keys = ("symbol", "price", "quantity", "side", "trade_id", "ts_ns")
    rows = []
    for line in (SAMPLES / "expected.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["connector"] == connector:
            rows.append({k: row[k] for k in keys})
    return rows


class FixtureRest:
    """A ``RestClient`` answering from ``fixtures/exchanges/rest/<connector>/<path>.json``."""

    def __init__(self, connector: str, rest_url: str) -> None:
        self.root = REST / connector
        self.rest_url = rest_url
        self.calls: list[tuple[str, str, Mapping[str, str] | None]] = []

    def _file(self, url: str) -> bytes:
        assert url.startswith(self.rest_url), url
        path = url[len(self.rest_url) :].strip("/")
        return (self.root / f"{path}.json").read_bytes()

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        self.calls.append(("GET", url, params))
        return self._file(url)

    async def post(self, url: str, body: bytes = b"") -> bytes:
        self.calls.append(("POST", url, None))
        return self._file(url)


def fixture_instruments(proto: VenueProtocol) -> Instruments:
    rest = FixtureRest(proto.spec.connector, proto.spec.rest_url)
    return Instruments(asyncio.run(proto.fetch_instruments(rest)))


def proto(name: str) -> VenueProtocol:
    """A connector's protocol with its real endpoints."""
    return connector(name).protocol()


def parser(name: str) -> FrameParser:
    """A connector's parser over the instruments of its REST fixture."""
    p = proto(name)
    return p.make_parser(fixture_instruments(p))


def parse_one(name: str, frame: str | bytes) -> list[dict[str, object]]:
    out = TradeColumns()
    parser(name)(frame, 7, out)
    return out.rows()


class ListSink:
    """A feed's sink that keeps every batch handed to it."""

    def __init__(self) -> None:
        self.batches: list[TradeBatch] = []

    async def submit(self, batch: TradeBatch) -> None:
        self.batches.append(batch)

    @property
    def rows(self) -> int:
        return sum(len(b) for b in self.batches)


class ListEvents:
    """A feed's event writer that keeps the health and gap events."""

    def __init__(self) -> None:
        self.healths: list[HealthEvent] = []
        self.gaps: list[GapEvent] = []

    def health(self, event: HealthEvent) -> None:
        self.healths.append(event)

    def gap(self, event: GapEvent) -> None:
        self.gaps.append(event)
