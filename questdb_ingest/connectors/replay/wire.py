"""Server-to-client WebSocket frames (RFC 6455) built by hand.

The replay server writes a whole tick's frames for a connection with one transport write: the
per-frame cost is a header pack, and a slow client only fills its own buffer instead of making
every other connection wait on an awaited send. Server frames are never masked; the server
offers no compression extension, so plain frames are what the client negotiated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack

TEXT = 0x81  # FIN + text
BINARY = 0x82  # FIN + binary
PING = 0x89
PONG = 0x8A


def header(opcode: int, length: int) -> bytes:
    if length < 126:
        return _LEN1(opcode, length)
    if length < 65536:
        return _LEN2(opcode, 126, length)
    return _LEN3(opcode, 127, length)


def encode(frames: Iterable[str | bytes]) -> bytes:
    """Text frames for ``str``, binary frames for ``bytes``, concatenated."""
    parts: list[bytes] = []
    append = parts.append
    for frame in frames:
        if isinstance(frame, str):
            payload = frame.encode()
            opcode = TEXT
        else:
            payload = bytes(frame)
            opcode = BINARY
        n = len(payload)
        append(_LEN1(opcode, n) if n < 126 else header(opcode, n))
        append(payload)
    return b"".join(parts)


def control(opcode: int, payload: bytes = b"") -> bytes:
    """A ping or pong frame (payload at most 125 bytes, as the RFC requires)."""
    payload = payload[:125]
    return _LEN1(opcode, len(payload)) + payload
