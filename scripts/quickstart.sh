#!/usr/bin/env bash
# One command from a fresh clone to the real main job: install everything, start QuestDB on
# 127.0.0.1, apply the schema, then run the 14 connectors against the local replay server in
# hybrid mode (ring buffer + sharded sender + listing detector, API on 127.0.0.1:8780) for
# SECONDS (default 45), listing a new coin part way through. It prints what landed per venue
# (read back over SQL), the listing's ±20 s window per venue and where it was exported, and the
# API URL while it runs. Replayed trades go to the demo tables (demo_trades, …). Safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
.venv/bin/pumpwatch questdb start
.venv/bin/pumpwatch db migrate
coin="${COIN:-QUICK$(date +%H%M%S)}"
.venv/bin/pumpwatch run --source replay --hybrid-mode --seconds "${SECONDS_TO_RUN:-45}" \
    --list-coin "$coin" --list-after 8
echo
echo "QuestDB keeps running (web console: http://127.0.0.1:9000). Stop it with: .venv/bin/pumpwatch questdb stop"
echo "Query the run:  PUMPWATCH_SCHEMA_TABLE_PREFIX=demo_ .venv/bin/pumpwatch query window $coin --at <trigger above>"
