#!/usr/bin/env bash
# One command from a fresh clone to trades in QuestDB: install everything, start QuestDB on
# 127.0.0.1, apply the schema, write a synthetic burst across the 12 feeds and show, per feed,
# what landed (read back over SQL). Re-running it is safe.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
.venv/bin/pumpwatch questdb start
.venv/bin/pumpwatch db migrate
.venv/bin/pumpwatch demo --trades "${TRADES:-100000}"
echo
echo "QuestDB keeps running (web console: http://127.0.0.1:9000). Stop it with: .venv/bin/pumpwatch questdb stop"
