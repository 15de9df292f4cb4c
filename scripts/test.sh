#!/usr/bin/env bash
# The project's test command (README, CI): ruff, mypy, then the whole pytest suite.
# Tests that need QuestDB skip with a hint when it is down, and fail instead under CI=true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest --durations=15 "$@"
