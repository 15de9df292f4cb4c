"""Does the HTTP API cost the feeds anything? ``pumpwatch run``'s service over the replay server at
a steady rate, in alternating phases: quiet, then a burst of API requests from another process
(every endpoint, as fast as ``concurrency`` clients can go), then quiet again, …

Per phase: trades/s the feeds received and how late the service's 0.5 s tick fired (a stalled
event loop shows there first). Per endpoint: request latency p50/p99 (HDR). The target: trades/s
under API load ≥ 95 % of without (median of the rounds).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..histogram import Histogram
from .connectors import against_replay
from .cpu import CpuMeter, questdb_pid
from .insert import _drop, fresh_tables
from .machine import machine_info

PREFIX = "bench_api_"
TARGET = 0.95
ENDPOINTS = (
    "/api/health", "/api/system/status", "/api/metrics", "/api/feeds", "/api/snapshot", "/metrics",
    "/api/trades/recent?limit=100", "/api/gaps?since=1h", "/api/listings",
)  # fmt: skip


@dataclass
class Phase:
    loaded: bool
    seconds: float
    trades: int
    trades_per_s: float
    tick_late_max_ms: float
    requests: int = 0
    errors: int = 0


@dataclass
class ApiResult:
    rate: float
    phase_s: float
    rounds: int
    concurrency: int
    connectors: int
    phases: list[Phase]
    latency_ms: dict[str, dict[str, float]]  # endpoint → count/mean/p50/p90/p99/max
    cpu_s: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def _median(self, loaded: bool) -> float:
        return statistics.median(p.trades_per_s for p in self.phases if p.loaded == loaded)

    @property
    def ratio(self) -> float:
        quiet = self._median(False)
        return self._median(True) / quiet if quiet else 0.0

    @property
    def met(self) -> bool:
        return self.ratio >= TARGET

    def to_json(self) -> str:
        body = asdict(self) | {"benchmark": "api", "ratio": self.ratio, "target": TARGET, "met": self.met}
        return json.dumps(body, indent=2)


def _client(url: str, seconds: float, concurrency: int, out: Any) -> None:
    """The load: ``concurrency`` aiohttp clients cycling over every endpoint for ``seconds``."""
    import aiohttp

    latency = {e: Histogram() for e in ENDPOINTS}
    counts = {"requests": 0, "errors": 0}

    async def worker(offset: int, session: aiohttp.ClientSession, until: float) -> None:
        i = offset
        while time.monotonic() < until:
            path = ENDPOINTS[i % len(ENDPOINTS)]
            i += 1
            t0 = time.perf_counter()
            try:
                async with session.get(url + path) as resp:
                    await resp.read()
                    ok = resp.status < 500 or path == "/api/health"  # health may say 503 during a burst
            except aiohttp.ClientError:
                ok = False
            latency[path].add((time.perf_counter() - t0) * 1000.0)
            counts["requests"] += 1
            counts["errors"] += 0 if ok else 1

    async def main() -> None:
        until = time.monotonic() + seconds
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(worker(k, session, until) for k in range(concurrency)))

    asyncio.run(main())
    out.put({"latency": {e: h.to_dict() for e, h in latency.items()}, **counts})


def bench_api(
    settings: Settings,
    *,
    rate: float,
    phase_s: float,
    rounds: int,
    concurrency: int,
    workers: int,
    symbols: int,
    console: Console,
) -> ApiResult:
    from ..app import Service, ServiceOptions

    scoped = fresh_tables(settings, PREFIX)
    ctx = multiprocessing.get_context("spawn")
    phases: list[Phase] = []
    latency = {e: Histogram() for e in ENDPOINTS}
    with tempfile.TemporaryDirectory() as tmp:
        run_settings = against_replay(scoped, "", tmp)
        run_settings = replace(run_settings, api=replace(run_settings.api, port=0))
        options = ServiceOptions(
            source="replay", rate=rate, burst_rate=0.0, replay_symbols=symbols, workers=workers, api=True,
            operations=False,
        )  # fmt: skip
        service = Service(run_settings, options).start()
        ticks: list[float] = []
        service.on_tick(lambda snap: ticks.append(time.monotonic()))
        meter_box: list[CpuMeter] = []
        failure: list[BaseException] = []
        stop_at = threading.Event()

        def control() -> None:
            try:
                assert service.api is not None and service.sender is not None
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:  # every feed up before the clock starts
                    snap = service.latest()
                    if snap.feeds and all(f.connected for f in snap.feeds) and snap.trades_per_s > 0:
                        break
                    time.sleep(0.2)
                time.sleep(2.0)
                replay = service.replay_pid
                roles = {"service (feeds + router)": [os.getpid()],
                         "API process": [service.api.pid] if service.api.pid else [],
                         "sender workers": service.sender.worker_pids(),
                         "replay server": [replay] if replay else [],
                         "questdb": [p for p in [questdb_pid(settings)] if p]}  # fmt: skip
                meter_box.append(CpuMeter(roles).start())
                order = [False, True]
                for r in range(rounds):
                    for loaded in order if r % 2 == 0 else order[::-1]:
                        phases.append(_phase(service, loaded, phase_s, concurrency, ctx, latency, ticks))
            except BaseException as exc:  # reported after the service stops
                failure.append(exc)
            finally:
                stop_at.set()

        async def drive() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            threading.Thread(target=lambda: (stop_at.wait(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
            await service.run(None, stop=stop)

        thread = threading.Thread(target=control, name="bench-api", daemon=True)
        with console.status(f"{rate:,.0f} trades/s, {rounds} rounds of {phase_s:g} s quiet / {phase_s:g} s API load …"):
            thread.start()
            asyncio.run(drive())
            thread.join()
        cpu = meter_box[0].stop() if meter_box else {}
        service.stop()
        if failure:
            raise failure[0]
    _drop(settings, PREFIX)
    result = ApiResult(
        rate=rate, phase_s=phase_s, rounds=rounds, concurrency=concurrency, connectors=len(service.connectors),
        phases=phases, latency_ms={e: h.summary() for e, h in latency.items()}, cpu_s=cpu,
        machine=machine_info("http"),
    )  # fmt: skip
    print_api(result, console)
    return result


def _phase(
    service: Any, loaded: bool, seconds: float, concurrency: int, ctx: Any, latency: dict[str, Histogram],
    ticks: list[float],
) -> Phase:  # fmt: skip
    start_n, start_t, first_tick = service.latest().received, time.monotonic(), len(ticks)
    client = None
    out = ctx.Queue()
    if loaded:
        client = ctx.Process(target=_client, args=(service.api.url, seconds, concurrency, out), daemon=True)
        client.start()
    time.sleep(seconds)
    end_n, end_t = service.latest().received, time.monotonic()
    requests = errors = 0
    if client is not None:
        report = out.get(timeout=seconds + 60)
        client.join(timeout=30)
        requests, errors = report["requests"], report["errors"]
        for e, h in report["latency"].items():
            latency[e].merge(Histogram.from_dict(h))
    gaps = [b - a for a, b in zip(ticks[first_tick:], ticks[first_tick + 1 :], strict=False)]
    late = max((g - 0.5 for g in gaps), default=0.0)
    return Phase(
        loaded=loaded, seconds=round(end_t - start_t, 3), trades=end_n - start_n,
        trades_per_s=round((end_n - start_n) / (end_t - start_t), 1), tick_late_max_ms=round(max(late, 0.0) * 1000, 1),
        requests=requests, errors=errors,
    )  # fmt: skip


def print_api(r: ApiResult, console: Console) -> None:
    table = Table(title=f"feeds at {r.rate:,.0f} trades/s ({r.connectors} connectors), quiet vs API load")
    for col in ("phase", "API load", "trades", "trades/s", "tick late max", "API requests", "errors"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for i, p in enumerate(r.phases, 1):
        table.add_row(
            str(i), f"{r.concurrency} clients" if p.loaded else "-", f"{p.trades:,}", f"{p.trades_per_s:,.1f}",
            f"{p.tick_late_max_ms:,.1f} ms", f"{p.requests:,}" if p.loaded else "-",
            f"{p.errors:,}" if p.loaded else "-",
        )  # fmt: skip
    console.print(table)
    lat = Table(title="API latency per endpoint (all loaded phases)")
    for col in ("endpoint", "requests", "p50", "p90", "p99", "max"):
        lat.add_column(col, justify="left" if col == "endpoint" else "right")
    for e, s in r.latency_ms.items():
        lat.add_row(
            e,
            f"{int(s.get('count', 0)):,}",
            *(f"{s.get(k, 0.0):,.1f} ms" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
        )
    console.print(lat)
    verdict = "[green]met[/]" if r.met else "[red]NOT met[/]"
    console.print(
        f"trades/s under API load / without (median of {r.rounds}): {r.ratio:.3f} — target ≥ {TARGET:.2f}: {verdict}"
    )
    if r.cpu_s:
        console.print("CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_s.items()))
