"""Log lines: one format per process, JSON that parses, a file next to stderr, no duplicate handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from questdb_ingest.logs import LogSpec, configure, current
from questdb_ingest.timefmt import iso_s


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_timestamps_are_utc_iso_with_milliseconds() -> None:
    assert iso_s(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_s(1_764_652_730.1239) == "2025-12-02T05:18:50.123Z"


def test_json_lines_parse_and_carry_level_process_logger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "logs" / "pumpwatch.log"
    configure(LogSpec(level="info", format="json", file=str(log_file), process="worker-3"))
    logging.getLogger("questdb_ingest.test").info("listing detected: %s", "ABC")
    logging.getLogger("questdb_ingest.test").debug("not at info level")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("questdb_ingest.test").exception("failed")
    lines = log_file.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["level"], r["process"], r["logger"], r["message"]) for r in records] == [
        ("INFO", "worker-3", "questdb_ingest.test", "listing detected: ABC"),
        ("ERROR", "worker-3", "questdb_ingest.test", "failed"),
    ]
    assert "ValueError: boom" in records[1]["exception"]
    assert capsys.readouterr().err.splitlines() == lines  # stderr gets the same lines
    assert current() == LogSpec(level="info", format="json", file=str(log_file), process="worker-3")


def test_configure_twice_replaces_its_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    configure(LogSpec(level="info"))
    configure(LogSpec(level="warning"))
    logging.getLogger("questdb_ingest.test").info("dropped at warning")
    logging.getLogger("questdb_ingest.test").warning("kept once")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].endswith("WARNING main questdb_ingest.test: kept once")
