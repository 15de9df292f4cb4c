"""PGWire logins against a real server: passwords with spaces and ``=`` reach it as they are, and a
refused login is ``QuestDBAuthError`` ("authentication failed"), never the advice to start QuestDB
that an unreachable server gets. A throw-away PostgreSQL stands in for QuestDB: same protocol,
and it checks passwords for real (SCRAM)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from questdb_ingest.app.schema import SchemaWatch
from questdb_ingest.cli import main
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import QuestDBAuthError
from questdb_ingest.store.pg import connect
from tests.conftest import Postgres

pytestmark = pytest.mark.postgres

START_HINT = "pumpwatch questdb start"


def _cli_env(port: int, password: str, user: str = "pumpwatch") -> dict[str, str]:
    return {
        "PUMPWATCH_QUESTDB_HOST": "127.0.0.1",
        "PUMPWATCH_QUESTDB_PG_PORT": str(port),
        "PUMPWATCH_QUESTDB_USER": user,
        "PUMPWATCH_QUESTDB_PASSWORD": password,
        "PUMPWATCH_QUESTDB_DATABASE": "postgres",
    }


def test_password_with_spaces_and_equals_logs_in(postgres: Postgres) -> None:
    assert " " in postgres.password and "=" in postgres.password
    with connect(postgres.settings()) as conn:
        row = conn.execute("SELECT current_user, inet_server_port()").fetchone()
    assert row == (postgres.user, postgres.port)  # the "host=evil" tail was not taken as an option


def test_wrong_password_is_an_auth_error(postgres: Postgres) -> None:
    with pytest.raises(QuestDBAuthError, match="authentication failed") as err:
        connect(postgres.settings(password="wrong password=1"))
    assert err.value.user == postgres.user and err.value.port == postgres.port
    assert "wrong password" not in str(err.value)  # the message never carries a password
    assert START_HINT not in str(err.value)


def test_cli_says_authentication_failed_not_start_questdb(postgres: Postgres) -> None:
    result = CliRunner().invoke(main, ["db", "migrate"], env=_cli_env(postgres.port, "wrong"))
    assert result.exit_code == 1, result.output
    assert "authentication failed" in result.output
    assert START_HINT not in result.output


def test_cli_on_an_unreachable_server_says_start_it() -> None:
    result = CliRunner().invoke(main, ["db", "migrate"], env=_cli_env(free_port(), "p w=x"))
    assert result.exit_code == 1, result.output
    assert START_HINT in result.output
    assert "authentication failed" not in result.output


def test_run_refuses_to_start_on_a_refused_login(postgres: Postgres) -> None:
    """``run`` spools and waits while QuestDB is down; a refused login is reported as such instead."""
    watch = SchemaWatch(postgres.settings(password="nope"), apply=False)
    assert watch.check() == "refused"
    assert "authentication failed" in watch.message
    assert isinstance(watch.refusal, QuestDBAuthError)
