"""The picows-based client under the connection layer, against a hand-written server on loopback:
fragmented messages reassembled, binary kept binary, pongs answer pings, close codes reported."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from questdb_ingest.connectors.replay import wire
from questdb_ingest.connectors.ws import WsClient, WsClosedError, WsHandshakeError, describe

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return wire.header((0x80 if fin else 0) | opcode, len(payload)) + payload


async def serve(script: bytes, *, reply_pong: bool = False, upgrade: bool = True) -> tuple[asyncio.Server, str]:
    """A server that completes the upgrade, writes ``script`` and (optionally) answers one ping."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        if not upgrade:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + script
        )
        await writer.drain()
        if reply_pong:
            first = await reader.readexactly(2)  # a masked client ping: header, 4-byte mask, payload
            await reader.readexactly((first[1] & 0x7F) + 4)
            writer.write(frame(0x0A, b""))
            await writer.drain()
        await asyncio.sleep(1.0)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/ws"


def test_fragments_are_reassembled_and_frame_types_kept() -> None:
    script = (
        frame(0x01, b'{"a":', fin=False) + frame(0x00, b'"b"}') + frame(0x02, b"\x00\x01") + frame(0x01, "ü".encode())
    )
    script += frame(0x08, (4001).to_bytes(2, "big") + b"bye")

    async def main() -> None:
        server, url = await serve(script)
        async with server:
            ws = await WsClient.open(url, timeout=5, max_frame_bytes=1 << 20)
            got: list[str | bytes] = []
            closed: WsClosedError | None = None
            while closed is None:
                try:
                    got.extend(await ws.frames())
                except WsClosedError as exc:
                    closed = exc
            assert got == ['{"a":"b"}', b"\x00\x01", "ü"]
            assert (closed.code, closed.reason) == (4001, "bye")
            assert describe(closed) == "connection closed (code 4001 bye)"

    asyncio.run(main())


def test_ping_resolves_on_pong_and_a_lost_connection_has_no_close_code() -> None:
    async def main() -> None:
        server, url = await serve(b"", reply_pong=True)
        async with server:
            ws = await WsClient.open(url, timeout=5, max_frame_bytes=1 << 20)
            await asyncio.wait_for(await ws.ping(), 2)
            with pytest.raises(WsClosedError) as closed:
                await asyncio.wait_for(ws.frames(), 3)
            assert closed.value.code is None and "connection lost" in describe(closed.value)

    asyncio.run(main())


def test_a_refused_upgrade_is_a_handshake_error() -> None:
    async def main() -> None:
        server, url = await serve(b"", upgrade=False)
        async with server:
            with pytest.raises(WsHandshakeError) as err:
                await WsClient.open(url, timeout=5, max_frame_bytes=1 << 20)
            assert describe(err.value).startswith("handshake failed")

    asyncio.run(main())
