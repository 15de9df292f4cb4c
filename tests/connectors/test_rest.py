"""``HttpRest`` against a real aiohttp server on 127.0.0.1 answering 429/418: how many requests it
makes and how long it asks to sleep (the sleep and both clocks are injected; nothing waits)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from questdb_ingest.connectors.rest import BAN_DEFAULT_S, HttpRest, retry_after_seconds
from questdb_ingest.errors import VenueRequestError

T = TypeVar("T")
WALL = 1_700_000_000.0  # the fake wall clock's start (a whole second: HTTP-dates have no fractions)


class FakeTime:
    """Monotonic and wall clocks that only move when the client sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = WALL
        self.sleeps: list[float] = []

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def client(self, **kwargs: Any) -> HttpRest:
        clocks: dict[str, Any] = {"clock": lambda: self.now, "wall_clock": lambda: self.wall}
        return HttpRest(min_interval=0.0, sleep=self.sleep, **clocks, **kwargs)


class Venue:
    """Answers requests in order from ``script`` (status, headers), then 200s; counts them."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = list(script)
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.script:
            status, headers = self.script.pop(0)
            return web.Response(status=status, headers=headers, text='{"code":-1003,"msg":"Too many requests"}')
        return web.json_response({"ok": True})


def run(venue: Venue, body: Callable[[str], Awaitable[T]]) -> T:
    async def main() -> T:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", venue.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            return await body(str(server.make_url("/api/v3/exchangeInfo")))
        finally:
            await server.close()

    return asyncio.run(main())


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def test_429_retry_after_seconds_is_waited_before_each_retry(fake: FakeTime) -> None:
    venue = Venue([(429, {"Retry-After": "3"}), (429, {"Retry-After": "3"})])

    async def body(url: str) -> bytes:
        async with fake.client(attempts=4) as rest:
            return await rest.get(url)

    assert run(venue, body) == b'{"ok": true}'
    assert venue.requests == 3
    assert fake.sleeps == [3.0, 3.0]


def test_429_retry_after_http_date_is_waited(fake: FakeTime) -> None:
    venue = Venue([(429, {"Retry-After": formatdate(WALL + 7, usegmt=True)})])

    async def body(url: str) -> bytes:
        async with fake.client() as rest:
            return await rest.get(url)

    assert run(venue, body) == b'{"ok": true}'
    assert venue.requests == 2
    assert fake.sleeps == [7.0]


def test_429_without_retry_after_backs_off_exponentially(fake: FakeTime) -> None:
    venue = Venue([(429, {}), (429, {})])

    async def body(url: str) -> bytes:
        async with fake.client(backoff_initial=0.25, backoff_max=8.0) as rest:
            return await rest.get(url)

    run(venue, body)
    assert venue.requests == 3
    first, second = fake.sleeps
    assert 0.125 <= first <= 0.375 and 0.25 <= second <= 0.75  # 0.25 * 2^n, jittered x 0.5..1.5


def test_a_hold_carries_over_to_the_next_call(fake: FakeTime) -> None:
    """A one-attempt caller (the listing poll) asking again right after a 429 waits it out first."""
    venue = Venue([(429, {"Retry-After": "5"})])

    async def body(url: str) -> bytes:
        async with fake.client(attempts=1) as rest:
            with pytest.raises(VenueRequestError, match="HTTP 429"):
                await rest.get(url)
            assert fake.sleeps == []
            return await rest.get(url)

    assert run(venue, body) == b'{"ok": true}'
    assert venue.requests == 2
    assert fake.sleeps == [5.0]


def test_418_ban_is_not_hammered(fake: FakeTime) -> None:
    """A ban longer than a call waits fails at once, and the host is not asked again until it ends."""
    venue = Venue([(418, {"Retry-After": "600"})])

    async def body(url: str) -> bytes:
        async with fake.client(attempts=4, max_wait=60.0) as rest:
            with pytest.raises(VenueRequestError, match=r"HTTP 418.*600s"):
                await rest.get(url)
            assert venue.requests == 1
            for _ in range(3):
                with pytest.raises(VenueRequestError, match="IP banned"):
                    await rest.get(url)
            assert venue.requests == 1  # no request while banned
            assert rest.held_for(url) == pytest.approx(600.0)
            fake.advance(600.0)
            return await rest.get(url)

    assert run(venue, body) == b'{"ok": true}'
    assert venue.requests == 2
    assert fake.sleeps == []


def test_418_without_retry_after_holds_the_host_for_the_default_ban(fake: FakeTime) -> None:
    venue = Venue([(418, {})])

    async def body(url: str) -> float:
        async with fake.client(attempts=4, max_wait=60.0) as rest:
            with pytest.raises(VenueRequestError, match="HTTP 418"):
                await rest.get(url)
            with pytest.raises(VenueRequestError, match="IP banned"):
                await rest.get(url)
            return rest.held_for(url)

    assert run(venue, body) == pytest.approx(BAN_DEFAULT_S)
    assert BAN_DEFAULT_S >= 120.0
    assert venue.requests == 1
    assert fake.sleeps == []


def test_418_with_a_short_retry_after_waits_then_retries(fake: FakeTime) -> None:
    venue = Venue([(418, {"Retry-After": "30"})])

    async def body(url: str) -> bytes:
        async with fake.client(attempts=4, max_wait=60.0) as rest:
            return await rest.get(url)

    assert run(venue, body) == b'{"ok": true}'
    assert venue.requests == 2
    assert fake.sleeps == [30.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("-5", 0.0),
        (formatdate(WALL + 90, usegmt=True), 90.0),
        (formatdate(WALL - 90, usegmt=True), 0.0),  # in the past: now
        ("Tue, 14 Nov 2023 22:13:20 -0000", 0.0),  # = WALL, UTC written as -0000
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, WALL) == seconds
