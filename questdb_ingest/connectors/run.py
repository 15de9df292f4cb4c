"""Run the selected connectors for a while (or until a stop signal) and report what happened."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..errors import SenderError
from ..pacing import Pacer, RateSchedule
from .feed import EventSink, FrameTap, TradeSink
from .pipeline import Pipeline
from .registry import Connector
from .synthetic import SyntheticMarket

Tick = Callable[[Pipeline, float], None]


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (where the loop allows handlers) for the duration."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


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
    """Start every feed, run ``duration`` seconds (None: until SIGINT/SIGTERM or ``stop``), stop cleanly.

    Stops early, with ``pipeline.failure`` set, when the sink fails for good (the feeds halted)."""
    stop = stop or asyncio.Event()
    pipeline = Pipeline(settings, connectors, sink=sink, events=events, tap=tap)
    started = time.monotonic()
    with stop_on_signals(stop):
        pipeline.start()
        try:
            while not stop.is_set() and not pipeline.halted.is_set():
                elapsed = time.monotonic() - started
                if duration is not None and elapsed >= duration:
                    break
                wait = tick if duration is None else max(0.0, min(tick, duration - elapsed))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_either(stop, pipeline.halted), timeout=wait)
                if on_tick is not None:
                    on_tick(pipeline, time.monotonic() - started)
        finally:
            await pipeline.stop()
    return pipeline


async def _either(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@dataclass
class SyntheticRun:
    """What ``run_synthetic`` generated (its live view and final report)."""

    trades: int = 0
    rate_now: float = 0.0
    elapsed: float = 0.0
    unsent: int = 0  # generated but not taken: the sink had failed (generation stopped there)
    failure: SenderError | None = None


async def run_synthetic(
    sink: TradeSink,
    pattern: RateSchedule,
    *,
    duration: float | None,
    on_tick: Callable[[SyntheticRun], None] | None = None,
    stop: asyncio.Event | None = None,
    symbols: int = 300,
    tick: float = 0.05,
) -> SyntheticRun:
    """Synthetic trades across the 14 feeds at ``pattern``'s rate, straight into ``sink`` (no
    sockets): the offline source for a quick look at hybrid mode without a replay server."""
    stop = stop or asyncio.Event()
    market = SyntheticMarket(symbols=symbols)
    run = SyntheticRun()
    started = time.monotonic()
    pacer = Pacer(pattern, started)
    last_view = 0.0
    with stop_on_signals(stop):
        while not stop.is_set():
            now_mono = time.monotonic()
            run.elapsed = now_mono - started
            if duration is not None and run.elapsed >= duration:
                break
            run.rate_now = pattern.rate_at(run.elapsed)
            rows = pacer.due(now_mono)
            if rows:
                now = time.time_ns()
                run.trades += rows
                try:
                    await sink.submit(market.batch(rows, start_ns=now - rows - 1000, span_ns=rows + 1000))
                except SenderError as exc:  # the sender stopped: stop generating, count what it refused
                    run.unsent += rows
                    run.failure = exc
                    break
            if on_tick is not None and run.elapsed - last_view >= 0.5:
                last_view = run.elapsed
                on_tick(run)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, started + run.elapsed + tick - time.monotonic()))
    run.elapsed = time.monotonic() - started
    return run
