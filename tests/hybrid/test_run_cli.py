"""``pumpwatch run --hybrid-mode``: start-up checks and a synthetic run through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from questdb_ingest.cli import main

from ..conftest import QuestDB


def _env(qdb: QuestDB, tmp_path: Path) -> dict[str, str]:
    return {
        "PUMPWATCH_SCHEMA_TABLE_PREFIX": qdb.new_prefix(),
        "PUMPWATCH_SCHEMA_DEMO_PREFIX": "",
        "PUMPWATCH_HYBRID_ROLLOUT_STATE": str(tmp_path / "rollout.json"),
        "PUMPWATCH_HYBRID_EXPORT_DIR": str(tmp_path / "listings"),
        "PUMPWATCH_SENDER_SPOOL_DIR": str(tmp_path / "spool"),
        "PUMPWATCH_SENDER_WORKERS": "1",
    }


def test_invalid_rollout_config_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "rollout.yaml"
    bad.write_text("migration:\n  phase_1: {duration: 1d, questdb_percentage: 120}\n")
    result = CliRunner().invoke(
        main, ["run", "--source", "synthetic", "--hybrid-mode", "--rollout-config", str(bad), "--seconds", "1"]
    )
    assert result.exit_code == 2
    assert "migration.phase_1.questdb_percentage" in result.output


def test_compare_needs_hybrid_mode() -> None:
    result = CliRunner().invoke(main, ["run", "--source", "synthetic", "--compare", "--seconds", "1"])
    assert result.exit_code == 2 and "--compare needs --hybrid-mode" in result.output


@pytest.mark.questdb
def test_synthetic_hybrid_run_fills_buffer_and_questdb_alike(qdb: QuestDB, tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    args = ["run", "--source", "synthetic", "--hybrid-mode", "--compare", "--seconds", "3", "--rate", "400"]
    args.append("--migrate")  # run never changes the schema by itself
    result = CliRunner().invoke(main, [*args, "--burst-rate", "0", "--json", str(report)], env=_env(qdb, tmp_path))
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    trades = data["synthetic"]["trades"]
    assert trades > 500
    assert data["hybrid"]["buffer"]["appended_rows"] == trades
    books = data["sender"]["books"]
    assert books["received"] == books["confirmed"] == trades and books["balanced"]
    assert data["hybrid"]["rollout"]["phase"] == 0
