"""``pumpwatch top``: the live view of a service running in another process, read from its API
(``/api/snapshot``) and refreshed — for an operator on the box (or through an SSH tunnel)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from ..errors import PumpwatchError
from .support import SECONDS, ErrorCommand, cli_settings, console


def fetch_snapshot(url: str, timeout: float = 5.0) -> Any:
    """The service's snapshot from ``url`` (``http://host:port``) as a ``ServiceSnapshot``."""
    import msgspec

    from ..app.snapshot import ServiceSnapshot

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/snapshot", timeout=timeout) as resp:  # noqa: S310
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PumpwatchError(f"no pumpwatch API at {url} ({reason}); is `pumpwatch run` running?") from None
    return msgspec.convert(body, ServiceSnapshot)


def _render(snap: Any, url: str) -> RenderableType:
    from .views.service import service_view

    problems = snap.health_problems()
    head = Text.assemble(
        ("healthy" if not problems else "UNHEALTHY", "bold green" if not problems else "bold red"),
        f"  {url}  {snap.state}, {snap.source}, up {snap.uptime_s:,.0f}s, {snap.trades_per_s:,.0f} trades/s, "
        f"QuestDB {snap.questdb.version or '?'} "
        + ("" if snap.questdb.disk_used_ratio is None else f"(disk {snap.questdb.disk_used_ratio:.0%})"),
    )
    parts: list[RenderableType] = [head, *(Text(f"  - {p}", style="red") for p in problems)]
    parts.append(service_view(snap, f"pumpwatch {snap.version}"))
    return Group(*parts)


@click.command("top", cls=ErrorCommand)
@click.option("--url", help="The service's API (default: http://api.host:api.port from the settings).")
@click.option("--interval", type=SECONDS, default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one view and exit (exit 1 when the service is unhealthy).")
@click.pass_context
def top(ctx: click.Context, url: str | None, interval: float, once: bool) -> None:
    """A terminal dashboard of a running `pumpwatch run`, read from its HTTP API."""
    if url is None:
        api = cli_settings(ctx).api
        url = f"http://{api.host}:{api.port}"
    if once:
        snap = fetch_snapshot(url)
        console.print(_render(snap, url))
        ctx.exit(0 if snap.healthy else 1)
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        try:
            while True:
                try:
                    live.update(_render(fetch_snapshot(url), url))
                except PumpwatchError as exc:  # the service restarts: keep trying, say so
                    live.update(Text(f"{exc} — retrying every {interval:g}s (Ctrl-C to quit)", style="yellow"))
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
