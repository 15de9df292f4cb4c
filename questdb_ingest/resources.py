"""Locate the project's non-Python files (version pin, server.conf, schema, scripts).

A wheel carries them under ``questdb_ingest/_data``; an editable install or a checkout
reads them from the repository root. Either way there is one copy of each file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import PumpwatchError

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATE_ROOTS = (_PACKAGE_DIR / "_data", _PACKAGE_DIR.parent)


def resource(name: str) -> Path:
    """Path of a top-level project file or directory, e.g. ``resource("server.conf")``."""
    for root in _CANDIDATE_ROOTS:
        path = root / name
        if path.exists():
            return path
    raise PumpwatchError(f"project file {name!r} not found in {', '.join(map(str, _CANDIDATE_ROOTS))}")


@dataclass(frozen=True)
class QuestDBPin:
    """The pinned QuestDB release (from ``questdb.env``)."""

    version: str
    min_java: int


@cache
def questdb_pin() -> QuestDBPin:
    values: dict[str, str] = {}
    for line in resource("questdb.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return QuestDBPin(version=values["QUESTDB_VERSION"], min_java=int(values["QUESTDB_MIN_JAVA"]))
