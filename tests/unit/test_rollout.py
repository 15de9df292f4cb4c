"""Staged rollout: YAML validation naming the key, stable routing, the persisted phase, and the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from questdb_ingest.cli.rollout import rollout
from questdb_ingest.config import Settings, load_settings
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.errors import ConfigError, ValidationError
from questdb_ingest.hybrid.rollout import (
    BUFFER_PHASE,
    HISTORY_LIMIT,
    RollbackThresholds,
    Rollout,
    RolloutBoundsError,
    RolloutConfig,
    RolloutState,
    RolloutStateError,
    RolloutStore,
    route_bucket,
    routes_to_questdb,
)
from questdb_ingest.timefmt import duration_s as parse_duration
from questdb_ingest.timefmt import format_duration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "migration.yaml"
FIXTURES = REPO / "tests" / "fixtures" / "rollout"
SYMBOLS = [f"SYM{i}-USDT" for i in range(10_000)]


def _rollout(tmp_path: Path, config: RolloutConfig | None = None, clock: list[int] | None = None) -> Rollout:
    store = RolloutStore(tmp_path / "state" / "rollout.json")
    if clock is None:
        return Rollout(config or RolloutConfig.default(), store)
    return Rollout(config or RolloutConfig.default(), store, clock=lambda: clock[0])


# --------------------------------------------------------------------------- config
def test_example_file_is_the_built_in_default() -> None:
    example, default = RolloutConfig.load(EXAMPLE), RolloutConfig.load("")
    assert example.phases == default.phases
    assert [(p.questdb_percentage, p.duration_s, p.fallback_enabled) for p in default.phases] == [
        (10, 3 * 86_400, True),
        (50, 5 * 86_400, True),
        (100, 5 * 86_400, True),
        (100, 5 * 86_400, False),
    ]
    assert example.rollback == default.rollback == RollbackThresholds()
    assert example.rollback.max_spool_growth_bytes == 64 << 20
    assert example.auto_advance is default.auto_advance is False
    assert RolloutConfig.load(None) == default
    assert default.phase(0) == BUFFER_PHASE
    assert default.phase(0).questdb_percentage == 0
    assert default.phase(0).fallback_enabled
    assert default.last == 4
    assert [p.number for p in default.all_phases()] == [0, 1, 2, 3, 4]


def test_custom_file_with_optional_keys() -> None:
    cfg = RolloutConfig.load(FIXTURES / "custom.yaml")
    assert [(p.name, p.questdb_percentage, p.duration_s, p.fallback_enabled) for p in cfg.phases] == [
        ("phase_1", 25, 12 * 3600, True),  # fallback_enabled defaults to true
        ("phase_2", 100, 90, False),
    ]
    assert cfg.rollback == RollbackThresholds(
        interval_s=0.5, max_error_rate=0.01, max_spool_growth_mb=0, target="buffer"
    )
    assert cfg.rollback.to_buffer
    assert cfg.auto_advance is True


@pytest.mark.parametrize(
    ("fixture", "key", "fragment"),
    [
        ("percent_120", "migration.phase_2.questdb_percentage", "must be in 0..100, got 120"),
        ("percent_negative", "migration.phase_1.questdb_percentage", "got -1"),
        ("unknown_phase_key", "migration.phase_1.speed", "unknown key"),
        ("unknown_migration_key", "migration.warmup", "unknown key"),
        ("unknown_top_key", "foo", "unknown key"),
        ("unknown_rollback_key", "rollback.bogus", "unknown key"),
        ("phase_order", "migration.phase_3", "expected phase_2"),
        ("phase_gap", "migration.phase_3", "expected phase_2"),
        ("decreasing", "migration.phase_3.questdb_percentage", "must not decrease: 40 after 50"),
        ("fallback_not_bool", "migration.phase_1.fallback_enabled", "expected true or false"),
        ("bad_duration", "migration.phase_1.duration", "'3y'"),
        ("zero_duration", "migration.phase_1.duration", "must be > 0"),
        ("empty_migration", "migration", "at least one phase"),
        ("bad_rollback_target", "rollback.target", "previous, buffer"),
        ("syntax_error", "rollout_config", "syntax_error.yaml: line 4"),
        ("duplicate_phase", "rollout_config", "duplicate key 'phase_1'"),
    ],
)
def test_invalid_file_names_the_key(fixture: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        RolloutConfig.load(FIXTURES / f"{fixture}.yaml")
    assert info.value.key == key
    assert fragment in str(info.value)


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        RolloutConfig.load(tmp_path / "nope.yaml")
    assert info.value.key == "hybrid.rollout_config"
    assert "nope.yaml" in str(info.value)


def _plan(*percentages: int) -> dict[str, object]:
    """A ``migration`` mapping with one 1-second phase per percentage."""
    return {f"phase_{i}": {"duration": 1, "questdb_percentage": p} for i, p in enumerate(percentages, start=1)}


def _phase_1(**fields: object) -> dict[str, object]:
    """A config whose only phase has ``fields`` (on top of a valid duration and percentage)."""
    return {"migration": {"phase_1": {"duration": "1d", "questdb_percentage": 10, **fields}}}


def _rollback(**values: object) -> dict[str, object]:
    return {**_phase_1(), "rollback": values}


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (None, "migration"),
        ([1, 2], "rollout_config"),
        ({"rollback": {}}, "migration"),
        ({"migration": None}, "migration"),
        ({"migration": {"phase_1": 10}}, "migration.phase_1"),
        ({"migration": {"phase_1": {"questdb_percentage": 10}}}, "migration.phase_1.duration"),
        ({"migration": {"phase_1": {"duration": "1d"}}}, "migration.phase_1.questdb_percentage"),
        (_phase_1(questdb_percentage=12.5), "migration.phase_1.questdb_percentage"),
        (_phase_1(questdb_percentage=True), "migration.phase_1.questdb_percentage"),
        (_phase_1(questdb_percentage="10%"), "migration.phase_1.questdb_percentage"),
        (_phase_1(fallback_enabled=1), "migration.phase_1.fallback_enabled"),
        (_phase_1(duration=-5), "migration.phase_1.duration"),
        (_phase_1(duration=True), "migration.phase_1.duration"),
        ({"migration": {"phase_2": {"duration": "1d", "questdb_percentage": 10}}}, "migration.phase_2"),
        ({**_phase_1(), "auto_advance": "yes"}, "auto_advance"),
        ({**_phase_1(), "rollback": [1]}, "rollback"),
        (_rollback(interval="0s"), "rollback.interval"),
        (_rollback(max_error_rate=1.5), "rollback.max_error_rate"),
        (_rollback(max_mean_latency_ms=0), "rollback.max_mean_latency_ms"),
        (_rollback(max_disk_usage=0), "rollback.max_disk_usage"),
        (_rollback(max_spool_growth_mb=-1), "rollback.max_spool_growth_mb"),
        (_rollback(min_queries=0), "rollback.min_queries"),
        (_rollback(min_queries=2.5), "rollback.min_queries"),
    ],
)
def test_invalid_data_names_the_key(data: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        RolloutConfig.parse(data, "test.yaml")
    assert info.value.key == key


def test_equal_percentages_and_zero_are_allowed() -> None:
    cfg = RolloutConfig.parse({"migration": _plan(0, 0)}, "test")
    assert [p.questdb_percentage for p in cfg.phases] == [0, 0]
    with pytest.raises(IndexError):
        cfg.phase(3)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3d", 259_200),
        ("12h", 43_200),
        ("30m", 1800),
        ("45s", 45),
        ("500ms", 0.5),
        (90, 90),
        (1.5, 1.5),
        ("2", 2),
        ("1.5h", 5400),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "k") == seconds


@pytest.mark.parametrize("text", ["", "3y", "d", "-1s", "0", 0, "1 day", None, False, float("inf")])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text, "some.key")
    assert info.value.key == "some.key"


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 0.5, 45, 3600, 86_400 + 7200 + 5, 5 * 86_400)] == [
        "-",
        "500ms",
        "45s",
        "1h",
        "1d 2h",
        "5d",
    ]


# --------------------------------------------------------------------------- routing
def test_buckets_are_the_same_in_fresh_interpreters() -> None:
    sample = [*SYMBOLS[:200], "BTC-USDT", "XYZ", "ñandú-KRW"]
    code = (
        "import json, sys; from questdb_ingest.hybrid.rollout import route_bucket; "
        "print(json.dumps([route_bucket(s) for s in sys.argv[1:]]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *sample],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")  # two fresh interpreters at once, with different str hashes
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    first, second = (json.loads(out) for out in outputs)
    assert first == second == [route_bucket(s) for s in sample]
    assert all(0 <= b < 100 for b in first)


def test_bucket_ignores_case() -> None:
    assert route_bucket("btc-usdt") == route_bucket("BTC-USDT")


@pytest.mark.parametrize("pct", [0, 1, 10, 25, 50, 90, 100])
def test_share_routed_matches_the_percentage(pct: int) -> None:
    routed = sum(routes_to_questdb(s, pct) for s in SYMBOLS)
    assert abs(100 * routed / len(SYMBOLS) - pct) <= 3
    if pct in (0, 100):
        assert routed == (0 if pct == 0 else len(SYMBOLS))


def test_routing_only_grows_with_the_percentage() -> None:
    at = {pct: {s for s in SYMBOLS if routes_to_questdb(s, pct)} for pct in (10, 50, 100)}
    assert at[10] <= at[50] <= at[100]
    assert at[10] and at[50] - at[10]


# --------------------------------------------------------------------------- state
def test_missing_state_is_phase_0(tmp_path: Path) -> None:
    ro = _rollout(tmp_path)
    assert ro.current() == BUFFER_PHASE
    assert ro.questdb_percentage == 0
    assert ro.fallback_enabled
    assert not ro.routes_to_questdb("BTC-USDT")
    assert ro.time_in_phase() is None
    assert not ro.due()
    assert not ro.store.path.exists()  # reading never creates the file


def test_phase_survives_a_restart(tmp_path: Path) -> None:
    ro = _rollout(tmp_path)
    ro.advance("start")
    ro.advance("looks fine")
    restarted = _rollout(tmp_path)
    assert restarted.current().number == 2
    assert restarted.questdb_percentage == 50
    assert restarted.state.entered_ns == ro.state.entered_ns
    assert [h["reason"] for h in restarted.state.history] == ["start", "looks fine"]
    routed = [s for s in SYMBOLS[:500] if restarted.routes_to_questdb(s)]
    assert routed == [s for s in SYMBOLS[:500] if ro.routes_to_questdb(s)]


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "deep" / "er" / "rollout.json")
    for phase in range(5):
        store.save(RolloutState(phase=phase, entered_ns=phase + 1))
    assert store.load() == RolloutState(phase=4, entered_ns=5)
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["rollout.json"]
    assert store.path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 2, "phase": 1, "entered_ns": 0, "history": []}',
        '{"version": 1, "phase": -1, "entered_ns": 0, "history": []}',
        '{"version": 1, "phase": "1", "entered_ns": 0, "history": []}',
        '{"version": 1, "phase": true, "entered_ns": 0, "history": []}',
        '{"version": 1, "phase": 1, "history": []}',
        '{"version": 1, "phase": 1, "entered_ns": 0, "history": [1]}',
        "",
    ],
)
def test_corrupt_state_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state" / "rollout.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(RolloutStateError) as info:
        _rollout(tmp_path)
    assert str(path) in str(info.value)
    assert path.read_text() == content  # never reset behind the operator's back


# --------------------------------------------------------------------------- changes
def test_advance_rollback_set_and_their_bounds(tmp_path: Path) -> None:
    ro = _rollout(tmp_path)
    with pytest.raises(RolloutBoundsError, match="already at phase 0"):
        ro.rollback("nothing to undo")
    for expected in (1, 2, 3, 4):
        change = ro.advance("next")
        assert (change.action, change.from_phase, change.to_phase) == ("advance", expected - 1, expected)
    with pytest.raises(RolloutBoundsError, match="last phase"):
        ro.advance("too far")
    assert ro.current().number == 4
    assert not ro.fallback_enabled
    assert ro.rollback("slow").to_phase == 3
    assert ro.rollback("broken", to_buffer=True).to_phase == 0
    for bad in (-1, 5):
        with pytest.raises(RolloutBoundsError, match=r"outside 0\.\.4"):
            ro.set_phase(bad, "typo")
    assert ro.set_phase(3, "jump").to_phase == 3
    assert ro.set_phase(0, "reset").to_phase == 0
    assert [h["action"] for h in ro.state.history] == ["advance"] * 4 + ["rollback", "rollback", "set", "set"]
    assert _rollout(tmp_path).current().number == 0


def test_failed_change_leaves_the_state_alone(tmp_path: Path) -> None:
    ro = _rollout(tmp_path)
    ro.set_phase(4, "go")
    before = ro.store.path.read_bytes()
    with pytest.raises(RolloutBoundsError):
        ro.advance("again")
    with pytest.raises(ValidationError):
        ro.advance("  ")
    assert ro.store.path.read_bytes() == before


def test_rollback_records_what_was_measured(tmp_path: Path) -> None:
    clock = [1_800_000_000_000_000_000]
    ro = _rollout(tmp_path, clock=clock)
    ro.set_phase(2, "setup")
    change = ro.rollback(
        "error rate 0.2 > 0.05",
        measured={"error_rate": 0.2, "mean_latency_ms": 12.5, "spool_growth_bytes": 4096},
        actor="rollback-manager",
    )
    assert change.at_ns == clock[0]
    assert ro.state.history[-1] == {
        "action": "rollback",
        "from_phase": 2,
        "to_phase": 1,
        "reason": "error rate 0.2 > 0.05",
        "at_ns": clock[0],
        "actor": "rollback-manager",
        "error_rate": 0.2,
        "mean_latency_ms": 12.5,
        "spool_growth_bytes": 4096,
    }
    event = change.event().validate(now=clock[0])
    assert (event.action, event.from_phase, event.to_phase, event.ts_ns) == ("rollback", 2, 1, clock[0])
    assert event.reason == "rollback-manager: error rate 0.2 > 0.05"
    assert (event.error_rate, event.mean_latency_ms, event.disk_usage, event.spool_growth_bytes) == (
        0.2,
        12.5,
        None,
        4096,
    )
    with pytest.raises(ValidationError, match="unknown measurement"):
        ro.rollback("x", measured={"cpu": 1.0})  # type: ignore[arg-type]


def test_history_is_capped(tmp_path: Path) -> None:
    ro = _rollout(tmp_path, config=RolloutConfig.parse({"migration": _plan(5)}, "t"))
    for i in range(HISTORY_LIMIT + 15):
        ro.set_phase(i % 2, f"flip {i}")
    restarted = _rollout(tmp_path)
    assert len(restarted.state.history) == HISTORY_LIMIT
    assert restarted.state.history[-1]["reason"] == f"flip {HISTORY_LIMIT + 14}"


def test_a_stale_instance_changes_from_the_phase_on_disk(tmp_path: Path) -> None:
    a, b = _rollout(tmp_path), _rollout(tmp_path)
    a.advance("a")
    change = b.advance("b")  # b still holds phase 0 in memory
    assert (change.from_phase, change.to_phase) == (1, 2)
    assert len(_rollout(tmp_path).state.history) == 2


def test_refresh_picks_up_a_change_from_elsewhere(tmp_path: Path) -> None:
    running, operator = _rollout(tmp_path), _rollout(tmp_path)
    assert not running.refresh()
    operator.advance("from another shell")
    assert running.current().number == 0  # until refreshed
    assert running.refresh()
    assert running.current().number == 1
    assert not running.refresh()
    operator.set_phase(3, "quickly")
    operator.rollback("and back")
    assert running.refresh()
    assert running.current().number == 2
    running.store.path.unlink()  # deleting the state means phase 0 again
    assert running.refresh()
    assert running.current().number == 0


def test_refresh_keeps_the_phase_when_the_file_turns_corrupt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    running = _rollout(tmp_path)
    running.set_phase(2, "set")
    running.store.path.write_text("garbage")
    with caplog.at_level(logging.ERROR):
        assert not running.refresh()
    assert running.current().number == 2
    assert "garbage" not in caplog.text and str(running.store.path) in caplog.text
    with pytest.raises(RolloutStateError):
        _rollout(tmp_path)


def test_a_shrunk_config_clamps_to_its_last_phase(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _rollout(tmp_path).set_phase(4, "all in")
    small = RolloutConfig.parse({"migration": _plan(10, 60)}, "small.yaml")
    with caplog.at_level(logging.WARNING):
        ro = _rollout(tmp_path, config=small)
        assert ro.current().number == 2
    assert "only 2 phase(s)" in caplog.text
    st = ro.status()
    assert (st["phase"], st["stored_phase"], st["clamped"]) == (2, 4, True)
    with pytest.raises(RolloutBoundsError):
        ro.advance("more")
    assert ro.rollback("less").from_phase == 2
    assert ro.current().number == 1


def test_status_and_due(tmp_path: Path) -> None:
    clock = [1_800_000_000_000_000_000]
    ro = _rollout(tmp_path, clock=clock)
    ro.advance("go")
    clock[0] += 2 * 86_400 * 10**9
    st = ro.status()
    assert (st["phase"], st["name"], st["questdb_percentage"], st["fallback_enabled"]) == (1, "phase_1", 10, True)
    assert st["time_in_phase_s"] == 2 * 86_400
    assert st["duration_s"] == 3 * 86_400
    assert not st["due"]
    assert st["entered_at"] == "2027-01-15T08:00:00.000Z"
    assert [p["phase"] for p in st["phases"]] == [0, 1, 2, 3, 4]
    assert st["history"][-1]["reason"] == "go"
    json.dumps(st)  # JSON-ready
    clock[0] += 86_400 * 10**9
    assert ro.due()
    ro.set_phase(4, "last")
    clock[0] += 100 * 86_400 * 10**9
    assert not ro.due()  # nothing to advance to


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose QuestDB ports answer nothing, and a state file in tmp_path."""
    return load_settings(
        env={},
        overrides={
            "questdb": {"http_port": free_port(), "pg_port": free_port()},
            "hybrid": {"rollout_state": str(tmp_path / "cli" / "rollout.json")},
        },
    )


def _invoke(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(rollout, list(args), obj={"settings": settings})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_round_trip_with_questdb_down(settings: Settings) -> None:
    code, out, _ = _invoke(settings, "status")
    assert code == 0
    assert "phase 0 (buffer only)" in out and "never changed" in out

    code, out, err = _invoke(settings, "advance", "--reason", "canary looks good")
    assert code == 0
    assert "phase 0 (buffer only) → phase 1 (10% QuestDB reads" in out
    assert "warning:" in err and "not recorded in QuestDB" in err

    assert _invoke(settings, "advance")[0] == 0
    code, out, _ = _invoke(settings, "rollback", "--reason", "p99 too high")
    assert (code, "→ phase 1" in out) == (0, True)
    assert _invoke(settings, "set", "4")[0] == 0
    code, out, _ = _invoke(settings, "rollback", "--to-buffer")
    assert (code, "→ phase 0 (buffer only)" in out) == (0, True)
    assert _invoke(settings, "set", "3", "--reason", "resume")[0] == 0

    code, out, _ = _invoke(settings, "status", "--json")
    st = json.loads(out)
    assert (code, st["phase"], st["questdb_percentage"], st["fallback_enabled"]) == (0, 3, 100, True)
    assert [h["action"] for h in st["history"]] == ["advance", "rollback", "set", "rollback", "set"]
    assert st["history"][0]["reason"] == "operator"
    assert st["history"][-1]["reason"] == "resume"

    code, out, _ = _invoke(settings, "status")
    assert code == 0
    assert "phase 3 (100% QuestDB reads, fallback on)" in out and "recent changes" in out and "resume" in out

    assert Rollout.from_settings(settings).current().number == 3  # what a restarted `pumpwatch run` sees


def test_cli_impossible_changes_exit_1(settings: Settings) -> None:
    code, _, err = _invoke(settings, "rollback")
    assert code == 1 and "already at phase 0" in err
    code, _, err = _invoke(settings, "set", "9")
    assert code == 1 and "outside 0..4" in err
    assert _invoke(settings, "set", "4")[0] == 0
    code, _, err = _invoke(settings, "advance")
    assert code == 1 and "last phase" in err


def test_cli_invalid_config_exits_2_naming_the_key(settings: Settings) -> None:
    for fixture, key in (
        ("percent_120", "migration.phase_2.questdb_percentage"),
        ("unknown_top_key", "'foo'"),
        ("syntax_error", "'rollout_config'"),
    ):
        for args in (("status",), ("advance",)):
            code, _, err = _invoke(settings, *args, "--rollout-config", str(FIXTURES / f"{fixture}.yaml"))
            assert code == 2, (fixture, args, err)
            assert key in err
    assert not Path(settings.hybrid.rollout_state).exists()
    code, _, err = _invoke(settings, "status", "--rollout-config", "missing.yaml")
    assert code == 2 and "hybrid.rollout_config" in err


def test_cli_uses_the_rollout_config_override(settings: Settings) -> None:
    code, out, _ = _invoke(settings, "status", "--json", "--rollout-config", str(FIXTURES / "custom.yaml"))
    st = json.loads(out)
    assert (code, st["last_phase"], st["auto_advance"]) == (0, 2, True)
    assert _invoke(settings, "set", "2", "--rollout-config", str(FIXTURES / "custom.yaml"))[0] == 0
    code, out, _ = _invoke(settings, "status", "--json")  # back on the built-in plan: phase 2 is 50 %
    assert json.loads(out)["questdb_percentage"] == 50


def test_cli_standalone_reads_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "env-state" / "rollout.json"
    env = {
        "PUMPWATCH_HYBRID_ROLLOUT_STATE": str(state),
        "PUMPWATCH_HYBRID_ROLLOUT_CONFIG": str(FIXTURES / "custom.yaml"),
        "PUMPWATCH_QUESTDB_HTTP_PORT": str(free_port()),
        "PUMPWATCH_QUESTDB_PG_PORT": str(free_port()),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("QDB_CLIENT_CONF", raising=False)
    monkeypatch.delenv("PUMPWATCH_CONFIG", raising=False)
    result = CliRunner().invoke(rollout, ["advance", "--reason", "env"])
    assert result.exit_code == 0, result.output
    assert "25% QuestDB reads" in result.stdout
    assert "not recorded in QuestDB" in result.stderr
    assert RolloutStore(state).load().phase == 1
    monkeypatch.setenv("PUMPWATCH_HYBRID_BOGUS", "1")
    result = CliRunner().invoke(rollout, ["status"])
    assert result.exit_code == 2 and "hybrid.bogus" in result.stderr
