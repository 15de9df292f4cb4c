#!/usr/bin/env bash
# The zero-loss fault drills, end to end: real `pumpwatch run` processes, the replay server and a
# private QuestDB on free loopback ports, real (tmpfs) filesystems and signals. Prints generated /
# stored / distinct per drill; exits non-zero if any drill fails. Bounded in time (about 8 minutes
# with the 3-minute outage; PUMPWATCH_DRILL_OUTAGE_S shortens it). Needs root (tmpfs mounts) and
# the set-up of scripts/setup.sh.
#   bash scripts/fault-drills.sh            # every drill
#   bash scripts/fault-drills.sh 1 5 6      # some of them
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec timeout 1800 .venv/bin/python -m tests.drills "$@"
