"""Hybrid mode's benchmarks in one run (issue targets in brackets), each through its CLI command:

1. ``pumpwatch bench query --timerange 40s --symbols 10``: 10 M trades, listing-window p50/p99
   from QuestDB [p99 <= 20 ms] and from the ring buffer [p99 <= 1 ms], answers compared;
2. ``pumpwatch bench ring``: 18 M trades (1 h at 5,000/s) in the ring buffer [<= 1 GB RSS];
3. ``pumpwatch bench hybrid --seconds 300``: compare mode at 1,000/s with 5,000/s bursts for five
   minutes, listings injected [zero differences, zero loss].

    .venv/bin/python benchmarks/hybrid_benchmark.py [--seconds 300]

Each step prints its table and writes ``benchmarks/results/{query,ring,hybrid}.json``; the script
exits non-zero if a step does. Needs a running QuestDB (``pumpwatch questdb start``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PUMPWATCH = str(Path(sys.executable).with_name("pumpwatch"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the compare run")
    args = parser.parse_args()
    steps = [
        ["bench", "query", "--timerange", "40s", "--symbols", "10"],
        ["bench", "ring"],
        ["bench", "hybrid", "--seconds", str(args.seconds)],
    ]
    failed = [" ".join(step) for step in steps if subprocess.run([PUMPWATCH, *step], check=False).returncode]
    if failed:
        sys.exit(f"failed: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
