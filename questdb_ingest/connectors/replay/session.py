"""Recorded sessions: one ``<connector>.jsonl`` per connector, one received frame per line.

A line is ``{"recv_ns": int, "text": "<frame>"}`` for a text frame or
``{"recv_ns": int, "b64": "<base64>"}`` for a binary one, so a recording replays byte for byte
with its original frame types. The writer flushes every line: a recorder that dies loses at most
the line it was writing, and the reader skips such a torn last line instead of failing.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import msgspec

from ...errors import ConfigError

_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    recv_ns: int
    frame: str | bytes


class _Line(msgspec.Struct, frozen=True):
    recv_ns: int
    text: str | None = None
    b64: str | None = None


_DECODER = msgspec.json.Decoder(_Line)
_ENCODER = msgspec.json.Encoder()


def _decode_line(raw: bytes) -> RecordedFrame:
    line = _DECODER.decode(raw)
    if (line.text is None) == (line.b64 is None):
        raise ValueError('needs exactly one of "text" and "b64"')
    if line.text is not None:
        return RecordedFrame(line.recv_ns, line.text)
    assert line.b64 is not None
    return RecordedFrame(line.recv_ns, base64.b64decode(line.b64, validate=True))


def read_file(path: Path) -> list[RecordedFrame]:
    """Frames of one connector's recording, in file order."""
    frames: list[RecordedFrame] = []
    with path.open("rb") as fh:
        lines = fh.read().split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            frames.append(_decode_line(raw))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, binascii.Error) as exc:
            if number == len(lines):  # no newline after it: a write cut short, not corruption
                break
            raise ConfigError("replay.session_dir", f"{path}:{number}: unusable recorded frame: {exc}") from None
    return frames


def read_session(path: str | Path) -> dict[str, list[RecordedFrame]]:
    """Every connector's recorded frames, by connector name (the file stem)."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError("replay.session_dir", f"{root} is not a directory")
    return {file.stem: read_file(file) for file in sorted(root.glob("*.jsonl"))}


class SessionWriter:
    """Appends received frames to a session directory, flushing each line (not thread-safe)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {}

    def write(self, connector: str, recv_ns: int, frame: str | bytes) -> None:
        fh = self._files.get(connector)
        if fh is None:
            if not _NAME.match(connector):
                raise ValueError(f"connector name {connector!r} is not a safe file name")
            fh = self._files[connector] = (self.directory / f"{connector}.jsonl").open("ab")
        record: dict[str, object] = {"recv_ns": recv_ns}
        if isinstance(frame, str):
            record["text"] = frame
        else:
            record["b64"] = base64.b64encode(frame).decode("ascii")
        fh.write(_ENCODER.encode(record) + b"\n")
        fh.flush()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
