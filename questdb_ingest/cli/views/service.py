"""The live view of ``pumpwatch run``: one render of a ``ServiceSnapshot`` (feeds, books, alarms,
hybrid panel). ``pumpwatch top`` renders the same value read from another process's API."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from ...app.snapshot import ServiceSnapshot
from .feeds import feeds_table
from .hybrid import hybrid_table
from .sender import books_line


def service_view(snap: ServiceSnapshot, title: str) -> RenderableType:
    parts: list[RenderableType] = []
    if snap.feeds:
        parts.append(feeds_table(snap.feeds, title))
    else:
        parts.append(Text(f"{title}: {snap.received:,} trades, {snap.trades_per_s:,.0f} trades/s now"))
    if snap.sender is not None:
        parts.append(books_line(snap.sender))
    parts += [Text(f"ALARM {alarm}", style="bold red") for alarm in snap.alarms]
    if snap.hybrid is not None:
        parts.append(hybrid_table(snap.hybrid))
    if snap.api_url:
        parts.append(Text(f"API {snap.api_url}/api/health · {snap.api_url}/metrics", style="dim"))
    return Group(*parts)
