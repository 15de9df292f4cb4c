#!/usr/bin/env bash
# Set up a fresh checkout: a virtualenv in .venv with the package and its dev tools, and the
# pinned QuestDB jar. Idempotent; safe to re-run. Needs python3 (>= 3.11), a JDK and Maven.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [[ ! -x .venv/bin/python ]]; then
  echo "Creating .venv ..."
  "$PYTHON" -m venv .venv
fi
echo "Installing questdb_ingest and its dev tools into .venv ..."
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
bash scripts/install-questdb.sh
