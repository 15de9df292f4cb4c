"""Run the selected connectors for a while (or until a stop signal) and report what happened."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence

from ..config import Settings
from .feed import EventSink, FrameTap, TradeSink
from .pipeline import Pipeline
from .registry import Connector

Tick = Callable[[Pipeline, float], None]


async def run_feeds(
    settings: Settings,
    connectors: Sequence[Connector],
    *,
    sink: TradeSink,
    events: EventSink,
    duration: float | None,
    on_tick: Tick | None = None,
    tick: float = 0.5,
    tap: FrameTap | None = None,
    stop: asyncio.Event | None = None,
) -> Pipeline:
    """Start every feed, run ``duration`` seconds (None: until SIGINT/SIGTERM or ``stop``), stop cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    pipeline = Pipeline(settings, connectors, sink=sink, events=events, tap=tap)
    started = time.monotonic()
    pipeline.start()
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            wait = tick if duration is None else max(0.0, min(tick, duration - elapsed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            if on_tick is not None:
                on_tick(pipeline, time.monotonic() - started)
    finally:
        await pipeline.stop()
        for sig in handled:
            loop.remove_signal_handler(sig)
    return pipeline
