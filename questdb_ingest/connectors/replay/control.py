"""An async client for the replay server's ``/_replay/`` control API (tests and tooling)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp
import msgspec


class ReplayControl:
    """Stats, faults, listings, rate and pause of a running replay server at ``base_url``."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owned = session is None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        client = await self._client()
        data = msgspec.json.encode(body) if body is not None else None
        async with client.request(method, f"{self.base_url}/_replay/{path}", data=data) as resp:
            payload = msgspec.json.decode(await resp.read())
            if resp.status != 200:
                raise RuntimeError(f"replay control {path}: HTTP {resp.status}: {payload}")
            return payload

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "stats")
        return result

    async def fault(self, connector: str, kind: str, seconds: float = 5.0) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", "fault", {"connector": connector, "kind": kind, "seconds": seconds}
        )
        return result

    async def list_instrument(self, connector: str, base: str, quote: str = "USDT") -> dict[str, str]:
        result = await self._call("POST", "list", {"connector": connector, "base": base, "quote": quote})
        listed: dict[str, str] = result["listed"]
        return listed

    async def set_rate(self, **changes: float | int | None) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "rate", dict(changes))
        return result

    async def pause(self) -> None:
        await self._call("POST", "pause")

    async def resume(self) -> None:
        await self._call("POST", "resume")

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> ReplayControl:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
