"""Bad input to ``pumpwatch`` ends in one line naming the variable, key or flag and exit 2, never a
traceback, a silently ignored typo or a run with a nonsense value."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from questdb_ingest.bench import replay_server as replay_bench
from questdb_ingest.cli import main
from questdb_ingest.cli.query import query
from questdb_ingest.cli.replay import replay_server
from questdb_ingest.config import load_settings
from questdb_ingest.errors import ConfigError

from .cli_env import isolate, no_traceback, one_error_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


# --------------------------------------------------------------------------- environment variables
@pytest.mark.parametrize(
    ("var", "says"),
    [
        ("PUMPWATCH_SENDR_WORKERS", "unknown section 'sendr'"),
        ("PUMPWATCH_SENDER_WORKRS", "unknown key sender.workrs"),
        ("PUMPWATCH_QUESTBD_PG_PORT", "unknown section 'questbd'"),
        ("PUMPWATCH_STATE_DIRECTORY", "unknown key state.directory"),
        ("PUMPWATCH_INGEST_BATCHROWS", "unknown key ingest.batchrows"),
    ],
)
def test_env_var_naming_no_setting_fails_naming_the_variable(var: str, says: str) -> None:
    result = CliRunner().invoke(main, ["questdb", "status"], env={var: "3"})
    line = one_error_line(result, var, says)
    assert len([x for x in result.output.splitlines() if x.strip()]) == 1, result.output
    assert "sections: questdb, ingest, sender" in line or "known keys: " in line  # the valid names are listed


def _names_used_outside_tests() -> set[str]:
    """Every PUMPWATCH_* name the code, scripts, CI, Docker files and docs use (the tests' own
    deliberate typos excepted; a name ending in ``_`` is a prefix filter, not a variable)."""
    places = [ROOT / "questdb_ingest", ROOT / "scripts", ROOT / "docker", ROOT / ".ci", ROOT / "config"]
    places += [ROOT / "benchmarks", ROOT / "tests" / "drills", ROOT / "tests" / "conftest.py", ROOT / "README.md"]
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*")) if p.is_file()]
    names: set[str] = set()
    for file in files:
        if file.suffix in {".parquet", ".pyc"}:
            continue
        names |= set(re.findall(r"PUMPWATCH_[A-Z0-9_]*[A-Z0-9]", file.read_text(encoding="utf-8", errors="replace")))
    return names


def test_every_pumpwatch_variable_the_project_uses_is_a_setting_or_allowed() -> None:
    names = _names_used_outside_tests()
    assert {"PUMPWATCH_CONFIG", "PUMPWATCH_STATE_DIR", "PUMPWATCH_QUESTDB_DATA_DIR", "PUMPWATCH_CACHE_DIR"} <= names
    refused = []
    for name in sorted(names):
        try:
            load_settings(env={name: "1"})
        except ConfigError as exc:  # "1" may be a bad value for the setting; it must not be an unknown name
            if exc.key == name:
                refused.append(str(exc))
    assert refused == []


def test_allowed_and_setting_variables_keep_working(tmp_path: Path) -> None:
    cfg = tmp_path / "named.toml"
    cfg.write_text('[schema]\ntable_prefix = "named_"\n')
    env = {
        "PUMPWATCH_CONFIG": str(cfg),
        "PUMPWATCH_CACHE_DIR": str(tmp_path / "cache"),
        "PUMPWATCH_DRILL_OUTAGE_S": "5",
        "PUMPWATCH_STATE_DIR": str(tmp_path / "root"),
        "PUMPWATCH_QUESTDB_DATA_DIR": str(tmp_path / "qdb"),
        "PUMPWATCH_SENDER_WORKERS": "3",
    }
    s = load_settings(env=env)
    assert (s.schema.table_prefix, s.state.dir, s.questdb.data_dir, s.sender.workers) == (
        "named_",
        str(tmp_path / "root"),
        str(tmp_path / "qdb"),
        3,
    )
    result = CliRunner().invoke(main, ["rollout", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- config file
def test_a_config_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes('[schema]\ntable_prefix = "caf\xe9"\n'.encode("latin-1"))
    for result in (
        CliRunner().invoke(main, ["--config", str(cfg), "questdb", "status"]),
        CliRunner().invoke(main, ["rollout", "status"], env={"PUMPWATCH_CONFIG": str(cfg)}),
        CliRunner().invoke(query, ["recent"], env={"PUMPWATCH_CONFIG": str(cfg)}),
    ):
        one_error_line(result, "'config'", "is not UTF-8 text", str(cfg))
        assert len([x for x in result.output.splitlines() if x.strip()]) == 1, result.output


# --------------------------------------------------------------------------- numeric flags
RUN = ["run", "--source", "synthetic", "--seconds", "1"]  # on the old code these examples end quickly


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ([*RUN, "--workers", "-1"], "--workers"),
        ([*RUN, "--rate", "-5"], "--rate"),
        ([*RUN, "--burst-rate", "-1"], "--burst-rate"),
        (["run", "--source", "synthetic", "--seconds", "-1"], "--seconds"),
        (["run", "--source", "synthetic", "--seconds", "0"], "--seconds"),
        ([*RUN, "--replay-symbols", "0"], "--replay-symbols"),
        (["load", "--duration", "1", "--burst-every", "0"], "--burst-every"),
        (["load", "--duration", "1", "--workers", "-1"], "--workers"),
        (["load", "--duration", "-1"], "--duration"),
        (["demo", "--trades", "0"], "--trades"),
        (["demo", "--trades", "1", "--symbols", "0"], "--symbols"),
        (["bench", "insert", "--records", "-1"], "--records"),
        (["bench", "insert", "--records", "10", "--repeat", "0"], "--repeat"),
        (["bench", "query", "--symbols", "0", "--trades", "1000", "--universe", "10", "--rounds", "1"], "--symbols"),
        (["bench", "stream", "--rate", "0", "--seconds", "1"], "--rate"),
        (["bench", "ring", "--venues", "0", "--trades", "1000", "--queries", "1"], "--venues"),
        (["bench", "e2e", "--symbols", "0", "--trades", "10"], "--symbols"),
        (["query", "window", "XYZ", "--at-ns", "-5"], "--at-ns"),
        (["questdb", "status", "--health-port", "0"], "--health-port"),
        (["questdb", "status", "--pg-port", "70000"], "--pg-port"),
        (["db", "status", "--ttl-days", "0"], "--ttl-days"),
        (["rollout", "set", "--", "-1"], "PHASE"),
        (["replay-server", "--port", "70000"], "--port"),
        (["replay-server", "--symbols", "0"], "--symbols"),
        (["replay-server", "--rate", "-1"], "--rate"),
        (["replay-server", "--max-trades", "-1"], "--max-trades"),
        (["replay-server", "--speed", "-1"], "--speed"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_numeric_flag_out_of_range_is_a_usage_error_naming_it(args: list[str], flag: str) -> None:
    one_error_line(CliRunner().invoke(main, args), f"'{flag}'")


def _commands(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}")


# A seed is any integer; every other number a command takes has a range.
UNBOUNDED = {"pumpwatch replay-server seed"}


def test_every_numeric_option_of_every_command_has_a_range() -> None:
    unbounded = [
        f"{path} {param.name}"
        for root, name in ((main, "pumpwatch"), (replay_bench.main, "replay-bench"))
        for path, cmd in _commands(root, name)
        for param in cmd.params
        if isinstance(param.type, click.types.IntParamType | click.types.FloatParamType)
        and not isinstance(param.type, click.IntRange | click.FloatRange)
    ]
    assert sorted(set(unbounded) - UNBOUNDED) == []


# --------------------------------------------------------------------------- replay-server
@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--connectors", "binance_spot,nosuch"], "replay.connectors"),
        (["--burst-every", "10", "--burst-seconds", "20"], "replay.burst_seconds"),
    ],
)
def test_replay_server_config_error_is_one_line_and_exit_2(args: list[str], key: str) -> None:
    for result in (CliRunner().invoke(main, ["replay-server", *args]), CliRunner().invoke(replay_server, args)):
        one_error_line(result, f"'{key}'")
        assert len([x for x in result.output.splitlines() if x.strip()]) == 1, result.output


def test_replay_server_bad_session_names_the_key(tmp_path: Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    (session / "binance_spot.jsonl").write_bytes(b"\xe9\xff not json\n")
    result = CliRunner().invoke(replay_server, ["--port", "0", "--session", str(session)])
    no_traceback(result)
    one_error_line(result, "'replay.session_dir'")
