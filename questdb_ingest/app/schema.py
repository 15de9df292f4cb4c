"""The schema check of a running service: read-only (``--migrate`` applies pending migrations),
retried in the background while QuestDB cannot be reached, so capture never waits for it."""

from __future__ import annotations

import logging
import threading

import psycopg

from ..config import Settings
from ..errors import MigrationError, QuestDBAuthError
from ..store.migrations import check_schema, migrate
from ..store.pg import connect

log = logging.getLogger(__name__)

SCHEMA_RETRY_S = 5.0


class SchemaWatch:
    """The schema check of ``run``: at start and then, while QuestDB cannot be reached, every
    ``SCHEMA_RETRY_S`` in a thread of its own, so capture never waits for it. It only reads, except
    with ``--migrate`` (pending migrations are applied; a TTL is never changed here)."""

    def __init__(self, settings: Settings, *, apply: bool) -> None:
        self.settings = settings
        self.apply = apply
        self.state = "unchecked"  # unchecked | unreachable | refused | ok | pending | error
        self.refusal: QuestDBAuthError | None = None  # why QuestDB refused the login (state "refused")
        self.message = ""
        self.problems = ""  # what is wrong with the schema (pending/edited/unknown migrations)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alarm(self) -> str:
        return "" if self.state == "ok" else self.message

    def check(self) -> str:
        """One check; returns the new state. Pending or broken schema is reported, never raised."""
        try:
            with connect(self.settings, connect_timeout=3) as conn:
                status = check_schema(conn, self.settings)
                if status.pending and self.apply and not (status.edited or status.unknown):
                    report = migrate(conn, self.settings, reconcile_ttl=False)
                    log.warning("schema: applied %s", ", ".join(m.path.name for m in report.applied))
                    status = check_schema(conn, self.settings)
        except QuestDBAuthError as exc:  # up but refusing us: no spool-and-wait, the password is wrong
            self.refusal = exc
            self._set("refused", str(exc))
            return self.state
        except psycopg.OperationalError as exc:
            q = self.settings.questdb
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self._set("unreachable", f"QuestDB is not reachable over PGWire at {q.host}:{q.pg_port} ({reason})")
            return self.state
        except (psycopg.Error, MigrationError) as exc:
            self._set("error", f"schema check failed: {exc}")
            return self.state
        if not status.ok:
            self.problems = status.problems(self.settings)
            self._set("pending", f"schema: {self.problems}; trades wait in the spool until then")
        else:
            self._set("ok", "schema up to date")
            for change in status.ttl:
                log.warning(
                    "schema: %s differs from schema.ttl_days; run does not change it (pumpwatch db migrate does)",
                    change.describe(),
                )
        return self.state

    def _set(self, state: str, message: str) -> None:
        if (state, message) != (self.state, self.message):
            (log.info if state == "ok" else log.error)("%s", message)
        self.state, self.message = state, message

    def watch(self) -> None:
        """Keep checking in the background until the schema is up to date."""
        if self.state != "ok" and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="schema-watch", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SCHEMA_RETRY_S):
            if self.check() == "ok":
                return

    def close(self) -> None:
        self._stop.set()
