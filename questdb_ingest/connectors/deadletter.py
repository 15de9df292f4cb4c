"""Dead-letter files for frames no parser could use: one JSONL file per connector.

Each line keeps the venue, the reason and the raw frame (text, or base64 for binary frames) so
nothing received is lost and a parser fix can be replayed against exactly what arrived. A text
frame that is not valid Unicode (a lone surrogate, which UTF-8 cannot encode) is kept with those
code points written as ``\\uXXXX`` escapes and ``"escaped": true``: writing a dead letter must never
fail because of what the frame holds.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from pathlib import Path
from typing import IO, Any

import msgspec

from .core import Frame

MAX_FRAME_BYTES = 1 << 20  # a frame larger than this is cut (and marked) in the dead-letter line


class DeadLetters:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.counts: Counter[str] = Counter()
        self._files: dict[str, IO[bytes]] = {}
        self._lock = threading.Lock()

    def path(self, connector: str) -> Path:
        return self.directory / f"{connector}.jsonl"

    def write(self, connector: str, frame: Frame | None, reason: str, recv_ns: int, **context: object) -> None:
        record: dict[str, object] = {"recv_ns": recv_ns, "connector": connector, "reason": reason, **context}
        if isinstance(frame, bytes):
            record["b64"] = base64.b64encode(frame[:MAX_FRAME_BYTES]).decode()
            record["truncated"] = len(frame) > MAX_FRAME_BYTES
        elif frame is not None:
            record["text"] = frame[:MAX_FRAME_BYTES]
            record["truncated"] = len(frame) > MAX_FRAME_BYTES
        try:
            line = msgspec.json.encode(record) + b"\n"
        except UnicodeEncodeError:  # a lone surrogate in the frame (or in a reason quoting it)
            line = msgspec.json.encode({**_escaped(msgspec.to_builtins(record)), "escaped": True}) + b"\n"
        with self._lock:
            fh = self._files.get(connector)
            if fh is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                fh = self._files[connector] = self.path(connector).open("ab")
            fh.write(line)
            fh.flush()
            self.counts[connector] += 1

    def close(self) -> None:
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()


def _escaped(value: Any) -> Any:
    """``value`` with every string made UTF-8-encodable (lone surrogates → ``\\udXXX`` text)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value
