"""Logging for every pumpwatch process: one line format (text or JSON), one time format (UTC,
ISO 8601 with milliseconds), to stderr and optionally to a file.

The CLI configures it once from ``[log]`` / ``--log-level`` / ``--log-format`` / ``--log-file``;
sender workers get the same ``LogSpec`` so their lines look like the main process's and land in
the same file. Library users who never call ``configure`` keep Python's defaults.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from .timefmt import iso_s

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# Libraries that log every request at INFO: an operator wants ours, not theirs.
_QUIET = ("aiohttp.access", "asyncio", "websockets", "picows", "urllib3")


@dataclass(frozen=True)
class LogSpec:
    """How a process logs; picklable, so the sender hands it to its workers."""

    level: str = "warning"
    format: str = "text"
    file: str = ""  # absolute path, or "" for stderr only
    process: str = "main"  # shown in every line: main, worker-0, …

    def for_process(self, name: str) -> LogSpec:
        return replace(self, process=name)


_current: LogSpec | None = None


def current() -> LogSpec | None:
    """The spec this process was configured with (None: never configured, e.g. library use)."""
    return _current


class _TextFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line = f"{iso_s(record.created)} {record.levelname:<7} {self.process} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per line (journald, Loki and friends parse it without a regex)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": iso_s(record.created),
            "level": record.levelname,
            "process": self.process,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so rich's live view, which swaps it for a
    proxy while it draws, prints log lines above the view instead of through it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(spec: LogSpec) -> None:
    """Replace this process's handlers by the ones ``spec`` asks for (idempotent)."""
    global _current
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_pumpwatch", False):
            root.removeHandler(h)
            h.close()
    formatter: logging.Formatter = (
        _JsonFormatter(spec.process) if spec.format == "json" else _TextFormatter(spec.process)
    )
    handlers: list[logging.Handler] = [_StderrHandler()]
    if spec.file:
        Path(spec.file).parent.mkdir(parents=True, exist_ok=True)
        # Watched: logrotate may move the file; the next line reopens it.
        handlers.append(logging.handlers.WatchedFileHandler(spec.file, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(formatter)
        h._pumpwatch = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(spec.level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    _current = spec
