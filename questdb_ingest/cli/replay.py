"""``pumpwatch replay-server``: run the local venue stand-in until Ctrl-C.

Prints the base URL to point connectors at (``VenueSpec.with_base_url``), then a small table of
per-connector counters every few seconds. SIGINT/SIGTERM close every client and exit 0.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..connectors.registry import select
from ..connectors.replay.config import ReplayConfig
from ..connectors.replay.server import ReplayServer
from .support import COUNT, NON_NEGATIVE, NON_NEGATIVE_INT, RATE, SECONDS, ErrorCommand

_console = Console() if sys.stdout.isatty() else Console(width=120)


def stats_table(stats: dict[str, Any]) -> Table:
    """Per-connector counters from ``ReplayServer.stats()``."""
    table = Table(title=f"replay {stats['mode']} · {stats['generated_total']:,} trades generated", title_justify="left")
    for column in ("connector", "conns", "subscribed", "generated", "delivered", "lost", "frames", "drops"):
        table.add_column(column, justify="left" if column == "connector" else "right")
    for name, row in stats["connectors"].items():
        table.add_row(
            name,
            str(row["open_connections"]),
            str(len(row["subscribed"])),
            f"{row['generated']['count']:,}",
            f"{row['trades_delivered']:,}",
            f"{row['trades_lost']:,}",
            f"{row['frames_sent']:,}",
            str(row["drops"] + row["slow_drops"] + row["timeouts"]),
        )
    return table


@click.command("replay-server", cls=ErrorCommand)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option("--connectors", default="all", show_default=True, help="Comma list of connectors to serve.")
@click.option("--symbols", type=COUNT, default=20, show_default=True, help="Instruments per connector.")
@click.option("--seed", type=int, default=7, show_default=True, help="Generator seed.")
@click.option("--rate", type=RATE, default=1_000.0, show_default=True, help="Trades/s across all connectors.")
@click.option("--burst-rate", type=RATE, default=5_000.0, show_default=True, help="Trades/s during bursts.")
@click.option("--burst-every", type=SECONDS, default=60.0, show_default=True, help="Seconds between bursts.")
@click.option("--burst-seconds", type=NON_NEGATIVE, default=5.0, show_default=True, help="Burst length (0: none).")
@click.option("--max-trades", type=NON_NEGATIVE_INT, default=None, help="Stop generating after this many trades.")
@click.option("--session", "session_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Play this recorded session (one <connector>.jsonl each) instead of generating.")  # fmt: skip
@click.option(
    "--speed", type=NON_NEGATIVE, default=1.0, show_default=True, help="Session pace (0: as fast as possible)."
)
@click.option("--loop/--no-loop", default=False, show_default=True, help="Start the session again when it ends.")
@click.option("--stats-every", type=SECONDS, default=5.0, show_default=True, help="Seconds between stats tables.")
def replay_server(
    port: int,
    connectors: str,
    symbols: int,
    seed: int,
    rate: float,
    burst_rate: float,
    burst_every: float,
    burst_seconds: float,
    max_trades: int | None,
    session_dir: Path | None,
    speed: float,
    loop: bool,
    stats_every: float,
) -> None:
    """Pretend to be the exchanges on 127.0.0.1 (WebSocket + REST) so connectors run offline.

    A bad value is a ``ConfigError`` naming its ``replay.*`` key: one line and exit 2, as in every
    other command (``ErrorCommand``)."""
    config = ReplayConfig(
        port=port,
        connectors=tuple(c.name for c in select(connectors, key="replay.connectors")),
        symbols=symbols,
        seed=seed,
        rate=rate,
        burst_rate=burst_rate,
        burst_every=burst_every,
        burst_seconds=burst_seconds,
        max_trades=max_trades,
        session_dir=session_dir,
        speed=speed,
        loop=loop,
    )
    server = ReplayServer(config)

    def ready(base_url: str) -> None:
        _console.print(f"replay server listening on [bold]{base_url}[/]  (ws: {base_url.replace('http', 'ws', 1)}"
                       "/<connector>/ws, control: /_replay/stats)", highlight=False)  # fmt: skip
        sys.stdout.flush()

    def report(stats: dict[str, Any]) -> None:
        _console.print(stats_table(stats))

    try:
        server.run_forever(ready=ready, report=report, report_every=stats_every)
    except OSError as exc:  # the port is taken, most likely
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    _console.print("replay server stopped")


if __name__ == "__main__":
    replay_server()
