"""The HTTP API of a running service (aiohttp), JSON, on ``api.host``:``api.port`` (127.0.0.1).

It runs in a process of its own (``ApiServer`` starts it): the service publishes its snapshot
each tick into shared memory (``channel``, never blocking) and the API answers the state
endpoints from the newest one; the data endpoints query QuestDB over PGWire in a small thread
pool there. A burst of requests therefore costs the feeds' process nothing but the per-tick
publish, and a hung or crashed API cannot stall capture. Endpoints (see the README):

    GET /api/health               200 healthy / 503 with the reasons (a container or k8s probe)
    GET /api/system/status        version, uptime, rollout phase, QuestDB version and disk, spool, workers
    GET /api/metrics              the dashboard figures: trades/s per feed, QuestDB health, disk, ring hits, …
    GET /api/feeds                per-feed state, last trade, reconnects, dead letters
    GET /api/trades/recent        ?symbol=&exchange=&market_type=&limit=  newest trades from QuestDB
    GET /api/listings             ?limit=  recent listing_events with their windows' per-venue counts
    GET /api/listings/{id}/window the ±window trades of one listing, per venue
    GET /api/gaps                 ?since=1h  connector gaps
    GET /api/archive/bars         ?symbol=&interval=10m&start=&end=&limit=  archive bars (store.archive)
    GET /api/archive/ticks        ?symbol=&start=&end=&limit=  archive scalp ticks
    GET /api/archive/gaps         ?scope=&source=all&since=24h|start=&end=&min_seconds=&count=  both gap ledgers
    GET /api/alerts               ?limit=  recent alerts
    GET /api/snapshot             the whole ServiceSnapshot (what ``pumpwatch top`` renders)
    GET /metrics                  Prometheus text format
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import psycopg
from aiohttp import web

from ..app.snapshot import ServiceSnapshot
from ..config import Settings
from ..errors import ApiRequestError, PumpwatchError
from ..store import archive
from ..store.market import QueryArgumentError
from ..timefmt import iso, parse_time_ns
from . import queries
from .prometheus import exposition, registry_for

log = logging.getLogger(__name__)

QUERY_THREADS = 2
QUERY_CACHE_S = 1.0
NS = 1_000_000_000
STALE_S = 10.0  # a running service whose snapshot is older than this is reported unhealthy (loop stalled)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ServiceView(Protocol):
    """What the API needs of the service: its newest snapshot, its settings, its recent alerts."""

    settings: Settings

    def latest(self) -> ServiceSnapshot: ...

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]: ...


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, default=str, separators=(",", ":")), status=status, content_type="application/json"
    )


class ApiApp:
    """The routes, over a ``ServiceView`` (in the API process: the shared snapshot)."""

    def __init__(self, service: ServiceView, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.requests = 0
        self._registry = registry_for(self._fresh)
        # QuestDB shares the box with capture: at most QUERY_THREADS API queries at a time, and an
        # answer is reused for QUERY_CACHE_S, so a dashboard burst costs QuestDB little.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="api-query")
        self._cache: dict[tuple[Any, ...], tuple[float, asyncio.Future[Any]]] = {}

    # -- the application --------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/api/health", self.health)
        app.router.add_get("/api/system/status", self.system_status)
        app.router.add_get("/api/metrics", self.dashboard)
        app.router.add_get("/api/feeds", self.feeds)
        app.router.add_get("/api/trades/recent", self.recent_trades)
        app.router.add_get("/api/listings", self.listings)
        app.router.add_get("/api/listings/{id}/window", self.listing_window)
        app.router.add_get("/api/gaps", self.gaps)
        app.router.add_get("/api/archive/bars", self.archive_bars)
        app.router.add_get("/api/archive/ticks", self.archive_ticks)
        app.router.add_get("/api/archive/gaps", self.archive_gaps)
        app.router.add_get("/api/alerts", self.alerts)
        app.router.add_get("/api/snapshot", self.snapshot)
        app.router.add_get("/api", self.index)
        app.router.add_get("/metrics", self.metrics)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except (ApiRequestError, QueryArgumentError) as exc:
            return _json({"error": str(exc)}, 400)
        except PumpwatchError as exc:  # QuestDB refusing or the query failed: the data endpoints cannot answer
            return _json({"error": str(exc)}, 503)
        except psycopg.Error as exc:  # QuestDB not reachable over PGWire
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            return _json({"error": f"QuestDB is not reachable: {reason}"}, 503)

    def _fresh(self) -> ServiceSnapshot:
        return self.service.latest()

    async def _query(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(settings, *args)`` in the query pool (PGWire never runs on an event loop); identical
        requests within ``QUERY_CACHE_S`` share one query (in flight or answered)."""
        loop = asyncio.get_running_loop()
        key = (fn.__name__, *args)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < QUERY_CACHE_S and not (hit[1].done() and hit[1].exception()):
            return await asyncio.shield(hit[1])
        future = loop.run_in_executor(self._pool, fn, self.settings, *args)
        self._cache = {k: v for k, v in self._cache.items() if now - v[0] < QUERY_CACHE_S}
        self._cache[key] = (now, future)
        return await asyncio.shield(future)

    # -- state endpoints (the snapshot) -------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        routes = sorted({r.resource.canonical for r in request.app.router.routes() if r.resource is not None})
        return _json({"endpoints": routes})

    async def health(self, request: web.Request) -> web.Response:
        s = self._fresh()
        problems = s.health_problems()
        age = (time.time_ns() - s.taken_ns) / 1e9
        if s.state == "running" and age > STALE_S:
            problems.append(f"the service has not updated its state for {age:,.0f}s (event loop stalled?)")
        body = {"status": "ok" if not problems else "unhealthy", "problems": problems, "state": s.state,
                "feeds": {f.name: f.status for f in s.feeds}, "questdb_writes_confirmed": s.questdb.writes_confirmed,
                "checked": iso(time.time_ns())}  # fmt: skip
        return _json(body, 200 if not problems else 503)

    async def system_status(self, request: web.Request) -> web.Response:
        s = self._fresh()
        m = s.sender
        body: dict[str, Any] = {
            "version": s.version, "state": s.state, "source": s.source, "started": s.started, "uptime_s": s.uptime_s,
            "api": s.api_url,
            "rollout": None if s.hybrid is None else {
                "phase": s.hybrid.rollout_phase, "name": s.hybrid.rollout_phase_name,
                "questdb_percentage": s.hybrid.questdb_percentage, "compare": s.hybrid.compare,
            },
            "questdb": _struct(s.questdb),
            "schema": _struct(s.schema),
            "spool": None if m is None else {"bytes": m.spool_bytes, "rows": m.books.spooled_now,
                                            "dir": self.settings.sender.spool_dir},
            "workers": [] if m is None else [
                {"shard": w.shard, "pid": w.pid, "state": w.state, "alive": w.alive, "restarts": w.restarts,
                 "queue_rows": w.queue_rows, "confirmed": w.confirmed, "spooled": w.spooled, "alarm": w.alarm}
                for w in m.per_worker
            ],
            "books": None if m is None else m.to_dict()["books"],
            "alarms": s.alarms,
            "maintenance": s.maintenance,
            "paths": self.settings.paths(),
        }  # fmt: skip
        return _json(body)

    async def dashboard(self, request: web.Request) -> web.Response:
        """The seed's ``DashboardMetrics``."""
        s = self._fresh()
        h = s.hybrid
        body = {
            "timestamp": iso(s.taken_ns),
            "trades_per_second": s.trades_per_s,
            "trades_per_second_by_feed": {f.name: f.trades_per_s for f in s.feeds},
            "received": s.received,
            "confirmed": None if s.sender is None else s.sender.books.confirmed + s.sender.books.replayed,
            "questdb": {"reachable": s.questdb.reachable, "writes_confirmed": s.questdb.writes_confirmed,
                        "version": s.questdb.version, "error": s.questdb.error},
            "disk": {"used_ratio": s.questdb.disk_used_ratio, "used_bytes": s.questdb.disk_used_bytes,
                     "total_bytes": s.questdb.disk_total_bytes},
            "ring_buffer_hit_rate": None if h is None else h.ring_hit_rate,
            "active_connections": sum(f.connections_up for f in s.feeds),
            "feeds_connected": sum(f.connected for f in s.feeds),
            "feeds": len(s.feeds),
            "last_listing": None if h is None or h.last_listing is None else _struct(h.last_listing),
            "healthy": s.healthy,
        }  # fmt: skip
        return _json(body)

    async def snapshot(self, request: web.Request) -> web.Response:
        return _json(self._fresh().to_dict())

    async def feeds(self, request: web.Request) -> web.Response:
        return _json([_struct(f) for f in self._fresh().feeds])

    async def alerts(self, request: web.Request) -> web.Response:
        limit = _int(request, "limit", 100, 1, 10_000)
        return _json(self.service.recent_alerts(limit))

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = exposition(self._registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    # -- data endpoints (QuestDB) -------------------------------------------------------------
    async def recent_trades(self, request: web.Request) -> web.Response:
        q = request.query
        limit = _int(request, "limit", 100, 1, self.settings.api.max_trades)
        rows = await self._query(
            queries.recent_trades, q.get("symbol") or None, q.get("exchange") or None, q.get("market_type") or None,
            limit,
        )  # fmt: skip
        return _json(rows)

    async def listings(self, request: web.Request) -> web.Response:
        limit = _int(request, "limit", 20, 1, 500)
        return _json(await self._query(queries.listings, limit))

    async def listing_window(self, request: web.Request) -> web.Response:
        listing_id = request.match_info["id"]
        found = await self._query(queries.listing_window, listing_id)
        if found is None:
            return _json({"error": f"no listing {listing_id!r} in listing_events"}, 404)
        return _json(found)

    async def gaps(self, request: web.Request) -> web.Response:
        since = request.query.get("since", "24h")
        try:
            since_ns = parse_time_ns(since, "since")
        except PumpwatchError as exc:
            raise ApiRequestError(str(exc)) from None
        limit = _int(request, "limit", 1000, 1, 100_000)
        since_ns -= since_ns % 1_000_000_000  # to the second: "since=1h" polled by a dashboard shares a query
        return _json(await self._query(queries.gaps, since_ns, limit))

    # -- archive tables (store.archive); parameters mirror ``pumpwatch query bars|ticks|gaps`` ----------
    def _archive_range(self, request: web.Request) -> tuple[int, int] | None:
        """``start``/``end`` as ``[start, end)`` ns (``end`` defaults to now, up to the second so a
        polling dashboard shares a query), or None for neither."""
        start, end = _time(request, "start"), _time(request, "end")
        if start is None:
            if end is not None:
                raise ApiRequestError("end: needs start")
            return None
        if end is None:
            end = -(-time.time_ns() // NS) * NS
        if end < start:
            raise ApiRequestError(f"end: {end} is before start={start}")
        return start, end

    async def archive_bars(self, request: web.Request) -> web.Response:
        symbol = _symbol(request)
        interval = request.query.get("interval") or archive.SWING_INTERVAL
        archive.check_interval(interval)
        window = self._archive_range(request)
        if window is None and interval != archive.SWING_INTERVAL:
            raise ApiRequestError(f"interval: {interval!r} needs start (the newest bars are the swing 10m bars)")
        high = self.settings.api.max_trades
        limit = _int(request, "limit", 100 if window is None else high, 1, high)
        start, end = window if window is not None else (None, None)
        return _json(await self._query(queries.archive_bars, symbol, interval, start, end, limit))

    async def archive_ticks(self, request: web.Request) -> web.Response:
        symbol = _symbol(request)
        window = self._archive_range(request)
        high = self.settings.api.max_trades
        limit = _int(request, "limit", 100 if window is None else high, 1, high)
        start, end = window if window is not None else (None, None)
        return _json(await self._query(queries.archive_ticks, symbol, start, end, limit))

    async def archive_gaps(self, request: web.Request) -> web.Response:
        q = request.query
        source = archive.check_source(q.get("source") or "all")
        scope = q.get("scope") or None
        since = q.get("since")
        if since and q.get("start"):
            raise ApiRequestError("since: give since or start/end, not both")
        window = self._archive_range(request)
        if window is None:
            since_ns = _time(request, "since", "24h")
            assert since_ns is not None
            since_ns -= since_ns % NS  # to the second, as /api/gaps
            window = (since_ns, -(-time.time_ns() // NS) * NS)
        min_seconds = _float(request, "min_seconds", 0.0)
        count = _bool(request, "count")
        limit = _int(request, "limit", 1000, 1, 100_000)
        return _json(await self._query(queries.archive_gaps, scope, source, *window, min_seconds, count, limit))


def _symbol(request: web.Request) -> str:
    """The required ``symbol``, as the archive wrote it (matched exactly)."""
    raw = request.query.get("symbol")
    if not raw:
        raise ApiRequestError("symbol: required (as the archive wrote it, e.g. 005930 or BTC-USDT)")
    return archive.check_symbol(raw)


def _time(request: web.Request, name: str, default: str | None = None) -> int | None:
    """A time parameter (ns, ISO-8601 or a duration ago) as epoch ns; a 400 naming it when malformed."""
    raw = request.query.get(name) or default
    if raw is None:
        return None
    try:
        return parse_time_ns(raw, name)
    except PumpwatchError as exc:
        raise ApiRequestError(f"{name}: {str(exc).split(': ', 1)[-1]}") from None


def _float(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiRequestError(f"{name}: expected a number, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise ApiRequestError(f"{name}: must be a finite number >= 0, got {raw!r}")
    return value


def _bool(request: web.Request, name: str) -> bool:
    raw = (request.query.get(name) or "false").lower()
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ApiRequestError(f"{name}: expected true or false, got {raw!r}")
    return raw in ("1", "true", "yes")


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiRequestError(f"{name}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiRequestError(f"{name}: must be in {low}..{high}, got {value}")
    return value


def _struct(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)
