"""Transports a worker writes through: ILP/HTTP (confirmed), QWP/WebSocket (confirmed), ILP/TCP (not).

A sink gathers decoded batches and sends them as one request on ``send()``; it keeps them until
``send()`` succeeds, so a failed send can be retried unchanged or moved to the spool.
"""

from __future__ import annotations

from typing import Any, Protocol

import questdb

from ..config import Settings
from ..errors import ConfigError, FlushTransportError, TransportUnsupportedError
from ..ingest.ilp import parse_conf, writer_conf
from ..ingest.writer import classify_flush_error
from ..models import TRADE_SYMBOL_COLUMNS
from .codec import Decoded

TRANSPORTS = ("http", "ws", "tcp")
CLIENT_RETRY_MS = 200  # in-client retries; the worker backs off and spools on its own
_SYMBOLS = list(TRADE_SYMBOL_COLUMNS)


def transport_conf(settings: Settings, transport: str) -> str:
    """Client configuration for ``transport`` against the configured QuestDB."""
    q = settings.questdb
    if transport == "http":
        conf = settings.client_conf()
        if parse_conf(conf)[0] not in ("http", "https"):
            raise ConfigError("ingest.client_conf", "transport http needs an http:: or https:: client conf")
        return conf
    if transport == "ws":
        return f"ws::addr={q.host}:{q.http_port};"
    if transport == "tcp":
        return f"tcp::addr={q.host}:{q.ilp_tcp_port};protocol_version=2;"
    raise ConfigError("transport", f"must be one of {', '.join(TRANSPORTS)}, got {transport!r}")


class Sink(Protocol):
    @property
    def rows(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def add(self, batch: Decoded) -> None: ...

    def send(self) -> None: ...

    def discard(self) -> None: ...

    def close(self) -> None: ...


class IlpSink:
    """ILP over HTTP (answers after the commit: confirmed) or TCP (no answer: not confirmed)."""

    def __init__(self, conf: str, table: str) -> None:
        proto, _ = parse_conf(conf)
        confirms = proto in ("http", "https")  # ILP/TCP has no answer to wait for
        self.table = table
        full = writer_conf(conf) if confirms else conf
        if confirms and "retry_timeout=" not in full:
            # The worker retries with its own backoff and spools after sender.spool_after; a long
            # in-client retry loop would only make it slower to notice an outage.
            full += f"retry_timeout={CLIENT_RETRY_MS};"
        try:
            self._sender = questdb.Sender.from_conf(full)
            self._sender.establish()  # type: ignore[no-untyped-call]
        except questdb.QuestDBError as exc:
            raise FlushTransportError(table, 0, f"cannot open ILP sender: {exc}") from exc
        self._buffer: Any = self._sender.new_buffer()
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def nbytes(self) -> int:
        return len(self._buffer)

    def add(self, batch: Decoded) -> None:
        self._buffer.dataframe(batch.frame, table_name=batch.table or self.table, symbols=_SYMBOLS, at="ts")
        self._rows += batch.rows

    def send(self) -> None:
        if not self._rows:
            return
        try:
            self._sender.flush(self._buffer, clear=False)
        except questdb.QuestDBError as exc:
            raise classify_flush_error(self.table, self._rows, exc) from exc
        self.discard()

    def discard(self) -> None:
        self._buffer.clear()
        self._rows = 0

    def close(self) -> None:
        self._sender.close()


class WebSocketSink:
    """QWP over WebSocket via ``questdb.connect``; ``dataframe`` returns after the commit."""

    def __init__(self, conf: str, table: str) -> None:
        self.table = table
        self._conf = conf
        self._db: Any = None
        self._pending: list[Decoded] = []

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self._pending)

    @property
    def nbytes(self) -> int:
        return sum(int(b.frame.memory_usage(deep=False).sum()) for b in self._pending)

    def _connect(self) -> Any:
        if self._db is None:
            try:
                self._db = questdb.connect(self._conf)
            except questdb.QuestDBError as exc:
                if _no_websocket(exc):
                    raise _unsupported(self._conf, exc) from exc
                raise classify_flush_error(self.table, self.rows, exc) from exc
        return self._db

    def add(self, batch: Decoded) -> None:
        self._pending.append(batch)

    def send(self) -> None:
        db = self._connect()
        while self._pending:
            batch = self._pending[0]
            try:
                db.dataframe(batch.frame, table_name=batch.table or self.table, symbols=_SYMBOLS, at="ts")
            except questdb.QuestDBError as exc:
                raise classify_flush_error(self.table, self.rows, exc) from exc
            self._pending.pop(0)

    def discard(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _no_websocket(exc: Exception) -> bool:
    return "upgrade failed" in str(exc) and "404" in str(exc)


def _unsupported(conf: str, exc: Exception) -> TransportUnsupportedError:
    return TransportUnsupportedError(
        f"the server at {conf!r} does not accept QWP/WebSocket ingestion (HTTP 404 on the upgrade: {exc}); "
        "it needs QuestDB 10.0 or newer — use the http transport"
    )


def check_websocket(conf: str) -> None:
    """Raise ``TransportUnsupportedError`` if the server answers but has no QWP/WebSocket endpoint.

    An unreachable server passes: the workers retry and spool as for any outage."""
    try:
        with questdb.connect(conf):
            return
    except questdb.QuestDBError as exc:
        if _no_websocket(exc):
            raise _unsupported(conf, exc) from exc


def check_conf(conf: str) -> None:
    """Everything ``open_sink`` would refuse in a worker, refused here first (``ConfigError`` naming
    ``ingest.client_conf``): the router runs it before spawning, so a bad conf fails at start-up
    instead of crash-looping every worker."""
    proto, _ = parse_conf(conf)
    if proto in ("http", "https"):
        writer_conf(conf)
    elif proto not in ("ws", "wss", "tcp", "tcps"):
        raise ConfigError("ingest.client_conf", f"unsupported protocol {proto!r}")


def open_sink(conf: str, table: str) -> Sink:
    check_conf(conf)
    proto, _ = parse_conf(conf)
    if proto in ("ws", "wss"):
        return WebSocketSink(conf, table)
    return IlpSink(conf, table)
