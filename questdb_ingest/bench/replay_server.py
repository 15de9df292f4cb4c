"""How many trades/s the replay server generates, encodes and sends on one core.

The server runs in this process; a drain client in a child process does the WebSocket handshake,
subscribes with the venue's own messages and discards what arrives, so the figure is the
server's cost alone. ``cpu`` is this process's CPU time over wall time: at 100 % the target rate
is not sustained and ``generated/s`` is the ceiling.

    python -m questdb_ingest.bench.replay_server --rate 200000 binance_spot okx_futures
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import socket
import struct
import time
from dataclasses import dataclass

import click

from ..cli.support import COUNT, POSITIVE_RATE, SECONDS
from ..connectors.registry import connector
from ..connectors.replay.config import ReplayConfig
from ..connectors.replay.server import ReplayServer


def _client_frame(text: str) -> bytes:
    """A masked client text frame (zero mask key: the payload goes as is)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


def _drain(port: int, path: str, messages: list[str], seconds: float) -> None:
    """Handshake, subscribe, then read and discard for ``seconds``."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        for msg in messages:
            sock.sendall(_client_frame(msg))
        sock.settimeout(1.0)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if not sock.recv(1 << 20):
                    return
            except TimeoutError:
                continue


@dataclass(frozen=True)
class Result:
    connector: str
    target: float
    generated: float  # trades/s
    delivered: float  # trades/s
    trades_per_frame: float
    cpu: float  # fraction of one core
    dropped: int


async def measure(name: str, rate: float, seconds: float, symbols: int) -> Result:
    server = ReplayServer(ReplayConfig(connectors=(name,), symbols=symbols, rate=rate, burst_seconds=0))
    await server.start()
    proto = connector(name).protocol()
    messages = proto.subscribe_messages(server.generator.instruments(name))
    port = int(server.base_url.rsplit(":", 1)[1])
    proc = multiprocessing.get_context("spawn").Process(
        target=_drain, args=(port, f"/{name}/ws", messages, seconds + 5), daemon=True
    )
    proc.start()
    try:
        deadline = time.monotonic() + 10
        while server.stats()["connectors"][name]["trades_delivered"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # warm-up
        first = server.stats()["connectors"][name]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        last = server.stats()["connectors"][name]
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await server.stop()
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()
    frames = last["frames_sent"] - first["frames_sent"]
    delivered = last["trades_delivered"] - first["trades_delivered"]
    return Result(
        connector=name,
        target=rate,
        generated=(last["generated"]["count"] - first["generated"]["count"]) / wall,
        delivered=delivered / wall,
        trades_per_frame=delivered / frames if frames else 0.0,
        cpu=cpu / wall,
        dropped=last["slow_drops"] + last["drops"] + last["timeouts"],
    )


@click.command()
@click.argument("connectors", nargs=-1)
@click.option("--rate", type=POSITIVE_RATE, multiple=True, default=[100_000.0, 1_000_000.0], show_default=True)
@click.option("--seconds", type=SECONDS, default=4.0, show_default=True)
@click.option("--symbols", type=COUNT, default=20, show_default=True)
def main(connectors: tuple[str, ...], rate: tuple[float, ...], seconds: float, symbols: int) -> None:
    """Measure generation + encoding + sending per connector."""
    names = connectors or ("binance_spot", "okx_futures", "bybit_futures", "gate_futures", "phemex_futures")
    click.echo(f"{'connector':<16}{'target/s':>11}{'generated/s':>13}{'delivered/s':>13}{'trades/frame':>14}"
               f"{'cpu':>7}{'drops':>7}")  # fmt: skip
    for name in names:
        for r in rate:
            res = asyncio.run(measure(name, r, seconds, symbols))
            click.echo(f"{res.connector:<16}{res.target:>11,.0f}{res.generated:>13,.0f}{res.delivered:>13,.0f}"
                       f"{res.trades_per_frame:>14.1f}{res.cpu:>7.0%}{res.dropped:>7}")  # fmt: skip


if __name__ == "__main__":
    main()
