"""PGWire connections to QuestDB (psycopg 3, autocommit, bound parameters only)."""

from __future__ import annotations

import psycopg

from ..config import Settings


def connect(settings: Settings, connect_timeout: int = 5) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection; QuestDB has no multi-statement transactions worth keeping open."""
    return psycopg.connect(settings.pg_conninfo(), autocommit=True, connect_timeout=connect_timeout)
