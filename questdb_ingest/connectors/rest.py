"""The venues' REST side over aiohttp: symbol lists, recent trades, KuCoin tokens.

Requests to one host are spaced by ``min_interval`` (the venues' start-up rate limits), retried
with backoff on transport errors, 429 and 5xx, and fail with ``VenueRequestError`` naming the URL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from ..errors import VenueRequestError

_USER_AGENT = "pumpwatch/0.1 (+questdb_ingest)"


class HttpRest:
    """A shared aiohttp session with per-host pacing and retries (implements ``RestClient``)."""

    def __init__(self, *, min_interval: float = 0.2, timeout: float = 10.0, attempts: int = 4) -> None:
        self.min_interval = min_interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.attempts = attempts
        self._session: aiohttp.ClientSession | None = None
        self._next_slot: dict[str, float] = {}
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

    async def _pace(self, url: str) -> None:
        host = urlsplit(url).netloc
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, 0.0))
            self._next_slot[host] = slot + self.min_interval
        if slot > now:
            await asyncio.sleep(slot - now)

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        return await self._request("GET", url, params=params)

    async def post(self, url: str, body: bytes = b"") -> bytes:
        return await self._request("POST", url, data=body)

    async def _request(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None, data: bytes | None = None
    ) -> bytes:
        last = ""
        for attempt in range(self.attempts):
            await self._pace(url)
            self.requests += 1
            try:
                async with self._client().request(method, url, params=params, data=data) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        return body
                    last = f"HTTP {resp.status}: {body[:200]!r}"
                    if resp.status != 429 and resp.status < 500:
                        break  # a client error does not get better by retrying
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            if attempt + 1 < self.attempts:
                await asyncio.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))
        raise VenueRequestError(url, last or "request failed")
