"""ILP client configuration and the mapping from our records to client buffers."""

from __future__ import annotations

import questdb

from ..errors import ConfigError

# The writers flush explicitly (rows/interval) and clear only after success, so the client
# must never flush on its own; protocol version 2 carries nanosecond timestamps.
_FORCED = {"auto_flush": "off"}
# While QuestDB is unreachable rows accumulate in the buffer; allow 1 GiB (client default: 100 MiB).
_DEFAULTS = {"protocol_version": "2", "max_buf_size": str(1 << 30)}


def parse_conf(conf: str) -> tuple[str, dict[str, str]]:
    """Split ``proto::k=v;k=v;`` into the protocol and its keys (``;;`` escapes a semicolon)."""
    proto, sep, rest = conf.strip().partition("::")
    if not sep or not proto:
        raise ConfigError("ingest.client_conf", f"expected '<protocol>::key=value;...', got {conf!r}")
    keys: dict[str, str] = {}
    for part in rest.replace(";;", "\0").split(";"):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError("ingest.client_conf", f"expected key=value, got {part!r}")
        keys[key.strip()] = value.replace("\0", ";")
    return proto, keys


def writer_conf(conf: str) -> str:
    """The client conf the writers use: ILP/HTTP(S) only, auto-flush off, protocol v2 by default."""
    proto, keys = parse_conf(conf)
    if proto not in ("http", "https"):
        raise ConfigError(
            "ingest.client_conf", f"the batch writers need ILP over HTTP(S) to confirm commits, got {proto!r}"
        )
    for key, value in _FORCED.items():
        if keys.get(key, value) != value:
            raise ConfigError("ingest.client_conf", f"{key}={keys[key]} is not supported; writers need {key}={value}")
        keys[key] = value
    for key, value in _DEFAULTS.items():
        keys.setdefault(key, value)
    body = "".join(f"{k}={v.replace(';', ';;')};" for k, v in keys.items())
    return f"{proto}::{body}"


def open_sender(conf: str) -> questdb.Sender:
    """A connected ``Sender`` for ``conf`` (after ``writer_conf`` rules)."""
    return questdb.Sender.from_conf(writer_conf(conf))
