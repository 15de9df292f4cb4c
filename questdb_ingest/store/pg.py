"""PGWire connections to QuestDB (psycopg 3, autocommit, bound parameters only)."""

from __future__ import annotations

import re

import psycopg

from ..config import Settings
from ..errors import QuestDBAuthError

# What libpq says when the server answered and refused the login: PostgreSQL's "password
# authentication failed for user", QuestDB's "invalid username/password", a server asking for a
# password none was given for, and a server refusing this user from this host.
_REFUSED_LOGIN = re.compile(
    r"authentication failed|invalid username/password|no password supplied|pg_hba\.conf", re.IGNORECASE
)


def connect(settings: Settings, connect_timeout: int = 5) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection; QuestDB has no multi-statement transactions worth keeping open.

    A refused login raises ``QuestDBAuthError``; an unreachable server stays ``psycopg.OperationalError``
    (the CLI tells to start it), so the two failures get different advice."""
    try:
        return psycopg.connect(settings.pg_conninfo(), autocommit=True, connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        message = str(exc).strip()
        if not _REFUSED_LOGIN.search(message):
            raise
        q = settings.questdb
        reason = message.splitlines()[-1].rsplit("failed: ", 1)[-1].strip() if message else type(exc).__name__
        raise QuestDBAuthError(q.host, q.pg_port, q.user, reason) from exc
