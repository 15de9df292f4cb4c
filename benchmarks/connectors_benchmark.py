"""The connectors' benchmarks in one run (issue targets in brackets):

1. parser throughput on one core over the venues' wire frames, per venue and overall
   [>= 500,000 trades/s for Binance-style frames];
2. the pipeline contest on Binance ``@trade`` frames held in memory: the product against the
   simple single-process handler [>= 1.5x] and the raw client on pre-built columns [>= 0.8x], with
   the per-stage CPU table, and the product through the replay server's sockets on the same frames;
3. end to end through the replay server's sockets → 14 connectors → sender → QuestDB
   [>= 150,000 trades/s].

    .venv/bin/python benchmarks/connectors_benchmark.py [--trades N] [--e2e-trades N] [--repeat R]

Prints tables and writes ``benchmarks/results/connectors.json``. Needs a running QuestDB
(``pumpwatch questdb start``) with the project's ``server.conf``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from questdb_ingest.bench.connectors import bench_e2e, run_connector_benchmark
from questdb_ingest.config import load_settings
from questdb_ingest.connectors.registry import CONNECTORS
from questdb_ingest.sender.router import default_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=1_400_000, help="frame mix for the parser benchmark")
    parser.add_argument("--e2e-trades", type=int, default=1_000_000)
    parser.add_argument(
        "--e2e-rate", type=float, default=300_000.0, help="offered rate: above the target, to measure capacity"
    )
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/results/connectors.json")
    args = parser.parse_args()
    console = Console(width=130)
    settings = load_settings()
    connectors = list(CONNECTORS)
    result = run_connector_benchmark(
        settings,
        connectors,
        trades=args.trades,
        workers=args.workers,
        repeat=args.repeat,
        pipeline=True,
        console=console,
    )
    e2e = bench_e2e(
        settings,
        connectors,
        trades=args.e2e_trades,
        rate=args.e2e_rate,
        workers=args.workers,
        symbols=10,
        playback=True,
        console=console,
    )
    report = json.loads(result.to_json()) | {"e2e": json.loads(e2e.to_json())}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
