"""Helpers for tests that run ``pumpwatch`` commands in process (click's ``CliRunner``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import Result

from questdb_ingest import config
from questdb_ingest.connectors.replay_process import free_port


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A clean machine for the command: no PUMPWATCH_* (or QDB_CLIENT_CONF) from the outer
    environment, no config file to find, the state root under ``tmp_path``, and every QuestDB port
    one that nothing listens on, so a command that gets as far as connecting never reaches the
    shared server."""
    for name in list(os.environ):
        if name.startswith("PUMPWATCH_") or name == "QDB_CLIENT_CONF":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setattr(config, "SYSTEM_CONFIG_DIR", tmp_path / "etc")
    monkeypatch.setenv("PUMPWATCH_STATE_DIR", str(tmp_path / "state"))
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    for key, port in zip(("HTTP_PORT", "PG_PORT", "ILP_TCP_PORT", "HEALTH_PORT"), sorted(ports), strict=True):
        monkeypatch.setenv(f"PUMPWATCH_QUESTDB_{key}", str(port))


def no_traceback(result: Result) -> None:
    """The command ended by exiting, not by an exception escaping it."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output


def one_error_line(result: Result, *needles: str) -> str:
    """Exit 2 with one line, ``error: …``, holding every needle (no usage block around it)."""
    no_traceback(result)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, result.output
    assert [line for line in result.output.splitlines() if line.strip()] == errors, result.output  # nothing else
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
