"""Where the service's trades come from, behind one interface: the connector feeds (live venues or
the local replay server — the same code, another base URL) or synthetic trades generated in
process. Every generated rate comes from the one ``RateSchedule``/``Pacer`` (``pacing``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from ..config import Settings
from ..connectors.feed import EventSink, Feed, TradeSink
from ..connectors.pipeline import Pipeline
from ..connectors.registry import Connector
from ..connectors.run import SyntheticRun, run_feeds, run_synthetic
from ..errors import SenderError
from ..pacing import RateSchedule

Tick = Callable[[], None]


class Source(Protocol):
    """A running source of trades: what it received, what it could not hand over, and why it stopped."""

    kind: str  # live | replay | synthetic

    @property
    def received(self) -> int: ...

    @property
    def unsent(self) -> int: ...

    @property
    def failure(self) -> SenderError | None: ...

    @property
    def feeds(self) -> Sequence[Feed]: ...

    async def run(self, duration: float | None, stop: asyncio.Event, on_tick: Tick) -> None: ...


class FeedSource:
    """The connectors' feeds (``Pipeline``) into ``sink``, with health and gap rows to ``events``."""

    def __init__(
        self, kind: str, settings: Settings, connectors: Sequence[Connector], sink: TradeSink, events: EventSink
    ) -> None:
        self.kind = kind
        self.settings = settings
        self.connectors = connectors
        self.sink = sink
        self.events = events
        self.pipeline: Pipeline | None = None

    @property
    def received(self) -> int:
        return sum(f.stats.trades for f in self.feeds)

    @property
    def unsent(self) -> int:
        return self.pipeline.unsent if self.pipeline is not None else 0

    @property
    def failure(self) -> SenderError | None:
        return self.pipeline.failure if self.pipeline is not None else None

    @property
    def feeds(self) -> Sequence[Feed]:
        return self.pipeline.feeds if self.pipeline is not None else ()

    async def run(self, duration: float | None, stop: asyncio.Event, on_tick: Tick) -> None:
        def tick(pipeline: Pipeline, elapsed: float) -> None:
            self.pipeline = pipeline
            on_tick()

        self.pipeline = await run_feeds(
            self.settings, self.connectors, sink=self.sink, events=self.events, duration=duration, on_tick=tick,
            stop=stop,
        )  # fmt: skip


class SyntheticSource:
    """Generated trades across the 14 feeds at ``schedule``'s rate, straight into ``sink`` (no sockets)."""

    kind = "synthetic"

    def __init__(self, sink: TradeSink, schedule: RateSchedule, symbols: int = 300) -> None:
        self.sink = sink
        self.schedule = schedule
        self.symbols = symbols
        self.run_state: SyntheticRun | None = None

    @property
    def received(self) -> int:
        return self.run_state.trades if self.run_state is not None else 0

    @property
    def unsent(self) -> int:
        return self.run_state.unsent if self.run_state is not None else 0

    @property
    def failure(self) -> SenderError | None:
        return self.run_state.failure if self.run_state is not None else None

    @property
    def feeds(self) -> Sequence[Feed]:
        return ()

    @property
    def rate_now(self) -> float:
        return self.run_state.rate_now if self.run_state is not None else 0.0

    async def run(self, duration: float | None, stop: asyncio.Event, on_tick: Tick) -> None:
        def tick(run: SyntheticRun) -> None:
            self.run_state = run
            on_tick()

        self.run_state = await run_synthetic(
            self.sink, self.schedule, duration=duration, on_tick=tick, stop=stop, symbols=self.symbols
        )
