"""The venues' REST side over aiohttp: symbol lists, recent trades, KuCoin tokens.

Requests to one host are spaced by ``min_interval`` (the venues' start-up rate limits), retried
with the connectors' ``Backoff`` on transport errors, 429 and 5xx, and fail with
``VenueRequestError`` naming the URL.

A 429 (rate limited) or 418 (Binance's IP ban, sent to whoever kept going after 429s) holds the
whole host for as long as its ``Retry-After`` says (seconds or an HTTP-date; a 418 without one:
``BAN_DEFAULT_S``): every request to it waits until then, so retries and concurrent calls never
hammer a venue into a longer ban. A hold longer than ``max_wait`` is not waited out inside a call:
the call fails at once, and so does every call to that host until the hold ends, without a request.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from ..errors import VenueRequestError
from .connection import Backoff

_USER_AGENT = "pumpwatch/0.1 (+questdb_ingest)"

RATE_LIMITED = 429
IP_BANNED = 418  # Binance: "an IP was banned for continuing to send requests after receiving 429"
BAN_DEFAULT_S = 300.0  # a 418 that does not say for how long (Binance bans last 2 minutes to 3 days)
MAX_WAIT_S = 60.0  # the longest one call waits out a hold before it gives up instead


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (RFC 9110: delay-seconds or an HTTP-date, compared
    with the wall clock ``now``); None when absent or unreadable, so the caller falls back to backoff."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 5322 "-0000": UTC
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


class HttpRest:
    """A shared aiohttp session with per-host pacing, holds and retries (implements ``RestClient``).

    ``sleep``, ``clock`` (monotonic) and ``wall_clock`` (for HTTP-date ``Retry-After``) are
    injectable so tests can check what was waited for without waiting."""

    def __init__(
        self,
        *,
        min_interval: float = 0.2,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff_initial: float = 0.25,
        backoff_max: float = 8.0,
        max_wait: float = MAX_WAIT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.min_interval = min_interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None
        self._next_slot: dict[str, float] = {}
        self._held: dict[str, tuple[float, str]] = {}  # host → (clock time it may be asked again, why)
        self._lock = asyncio.Lock()
        self.requests = 0
        self.failures = 0

    async def __aenter__(self) -> HttpRest:
        return self

    async def __aexit__(self, *exc: object | TracebackType) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers={"User-Agent": _USER_AGENT})
        return self._session

    def held_for(self, url: str) -> float:
        """Seconds until the host of ``url`` may be asked again (0: not held)."""
        until, _ = self._held.get(urlsplit(url).netloc, (0.0, ""))
        return max(0.0, until - self._clock())

    async def _pace(self, url: str) -> None:
        """Wait for this host's next slot: ``min_interval`` after the previous request, and not before
        a hold ends. A hold longer than ``max_wait`` fails the call without a request."""
        host = urlsplit(url).netloc
        async with self._lock:
            now = self._clock()
            until, why = self._held.get(host, (0.0, ""))
            if until - now > self.max_wait:
                raise VenueRequestError(url, f"{why}; {host} is not asked again for {until - now:.0f}s more")
            slot = max(now, self._next_slot.get(host, 0.0), until)
            self._next_slot[host] = slot + self.min_interval
        if slot > now:
            await self._sleep(slot - now)

    def _hold(self, url: str, status: int, header: str | None, backoff: Backoff) -> float:
        """Hold the host after a 429/418 for as long as it asked (at least the backoff); returns the
        hold in seconds."""
        asked = retry_after_seconds(header, self._wall_clock())
        floor = backoff.next_delay()  # never straight back, even on "Retry-After: 0"
        if asked is not None:
            seconds, source = max(asked, floor), f"Retry-After {header}"
        elif status == IP_BANNED:
            seconds, source = BAN_DEFAULT_S, f"no Retry-After, assumed {BAN_DEFAULT_S:.0f}s"
        else:
            seconds, source = floor, "no Retry-After, backoff"
        host = urlsplit(url).netloc
        kind = "IP banned" if status == IP_BANNED else "rate limited"
        until = self._clock() + seconds
        if until > self._held.get(host, (0.0, ""))[0]:
            self._held[host] = (until, f"HTTP {status} ({kind}, {source})")
        return seconds

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        return await self._request("GET", url, params=params)

    async def post(self, url: str, body: bytes = b"") -> bytes:
        return await self._request("POST", url, data=body)

    async def _request(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None, data: bytes | None = None
    ) -> bytes:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        last = ""
        for attempt in range(self.attempts):
            await self._pace(url)
            self.requests += 1
            held: float | None = None
            try:
                async with self._client().request(method, url, params=params, data=data) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        return body
                    last = f"HTTP {resp.status}: {body[:200]!r}"
                    if resp.status in (RATE_LIMITED, IP_BANNED):
                        held = self._hold(url, resp.status, resp.headers.get("Retry-After"), backoff)
                    elif resp.status < 500:
                        self.failures += 1
                        break  # a client error does not get better by retrying
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            if held is not None and held > self.max_wait:
                raise VenueRequestError(
                    url,
                    f"{last}; asked to wait {held:.0f}s, more than the {self.max_wait:.0f}s a call waits: not retried",
                )
            if attempt + 1 < self.attempts and held is None:
                await self._sleep(backoff.next_delay())  # a hold is waited out by the next _pace
        raise VenueRequestError(url, last or "request failed")
