"""Recorded sessions: one ``<connector>.jsonl`` per connector, one received frame per line.

Next to each, ``<connector>.instruments.json`` keeps the instruments the feed subscribed (venue
symbol, base, quote, contract size as an exact ratio), so a recording can be parsed again later
(``pumpwatch archive ingest``) by parsers that need a contract size.

A line is ``{"recv_ns": int, "text": "<frame>"}`` for a text frame or
``{"recv_ns": int, "b64": "<base64>"}`` for a binary one, so a recording replays byte for byte
with its original frame types. The writer flushes every line: a recorder that dies loses at most
the line it was writing, and the reader skips such a torn last line instead of failing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import msgspec

from ...errors import ArchiveFormatError, ConfigError
from ..core import Instrument

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


def instruments_path(recording: Path) -> Path:
    """The instruments sidecar of ``<dir>/<connector>.jsonl``."""
    return recording.with_name(recording.name.split(".", 1)[0] + ".instruments.json")


def write_instruments(path: Path, instruments: Iterable[Instrument]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(_ENCODER.encode(list(instruments)))  # msgspec encodes the dataclass field by field
    tmp.replace(path)


def read_instruments(path: Path) -> list[Instrument]:
    """The sidecar's instruments; none when there is no sidecar (spot parsers need none)."""
    if not path.exists():
        return []
    try:
        return msgspec.json.decode(path.read_bytes(), type=list[Instrument])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArchiveFormatError(str(path), f"unusable instruments file: {exc}") from None


class SessionWriter:
    """Appends received frames to a session directory, flushing each line (not thread-safe)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {}
        self._written: dict[str, int] = {}

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

    def instruments(self, connector: str, instruments: Iterable[Instrument]) -> None:
        """Keep ``connector``'s instruments next to its frames (rewritten when they change)."""
        if not _NAME.match(connector):
            raise ValueError(f"connector name {connector!r} is not a safe file name")
        rows = sorted(instruments, key=lambda i: i.venue_symbol)
        if self._written.get(connector) == len(rows):
            return
        write_instruments(self.directory / f"{connector}.instruments.json", rows)
        self._written[connector] = len(rows)

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
