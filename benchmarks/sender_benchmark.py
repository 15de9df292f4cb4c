"""The sharded sender's benchmarks in one run (issue targets in brackets):

1. insert 1,000,000 trades: sender (router + W workers) vs the raw client's ``Sender.dataframe``
   over ILP/HTTP [>= 0.9x], with the per-row f-string ILP/TCP baseline in the same rounds;
2. the same for QWP/WebSocket vs its raw client, when the server has the endpoint (else recorded
   as unsupported, with the server's answer);
3. delay from trade creation to SQL visibility at 5,000 trades/s [p99 < flush_interval + 250 ms];
4. peak RSS of the router + workers at 150,000 trades/s [< 1 GiB].

    .venv/bin/python benchmarks/sender_benchmark.py [--workers W] [--repeat R] [--seconds S]

Prints tables and writes ``benchmarks/results/sender.json``. Needs a running QuestDB
(``pumpwatch questdb start``) with the project's ``server.conf``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from questdb_ingest.bench.insert import print_report, run_insert_benchmark
from questdb_ingest.bench.machine import machine_info
from questdb_ingest.bench.stream import run_stream_benchmark
from questdb_ingest.config import load_settings
from questdb_ingest.errors import TransportUnsupportedError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", default="benchmarks/results/sender.json")
    args = parser.parse_args()
    console = Console(width=120)
    settings = load_settings()
    out: dict[str, object] = {"machine": machine_info("ILP/HTTP; QWP/WebSocket where supported")}

    http = run_insert_benchmark(
        settings,
        records=args.records,
        batch_rows=args.batch_rows,
        repeat=args.repeat,
        workers=args.workers,
        transport="http",
        console=console,
    )
    print_report(http, console)
    out["insert_http"] = http.to_dict()

    try:
        ws = run_insert_benchmark(
            settings,
            records=args.records,
            batch_rows=args.batch_rows,
            repeat=args.repeat,
            workers=args.workers,
            transport="ws",
            per_row=False,
            console=console,
        )
        print_report(ws, console)
        out["insert_ws"] = ws.to_dict()
        ws_text = f"{ws.ratio(f'sender x{args.workers} (ws)'):.2f}x"
    except TransportUnsupportedError as exc:
        console.print(f"[yellow]ws transport not benchmarked:[/] {exc}")
        out["insert_ws"] = {"unsupported": str(exc)}
        ws_text = "unsupported by the server"

    delay = run_stream_benchmark(settings, rate=5_000, seconds=args.seconds, workers=args.workers, console=console)
    out["stream_5k"] = delay.to_dict()
    rss = run_stream_benchmark(settings, rate=150_000, seconds=args.seconds, workers=args.workers, console=console)
    out["stream_150k"] = rss.to_dict()

    sender_name = f"sender x{args.workers} (http)"
    summary = Table(title="sender benchmarks vs targets")
    for col in ("measure", "result", "target", "met"):
        summary.add_column(col)
    ratio = http.ratio(sender_name)
    summary.add_row("sender vs raw Sender.dataframe (http, 1M)", f"{ratio:.2f}x", ">= 0.9x", str(ratio >= 0.9))
    per_row = http.ratio("per-row f-string (tcp)")
    summary.add_row("per-row f-string TCP vs raw", f"{per_row:.2f}x", "(baseline)", "")
    ws_note = out["insert_ws"]
    ws_text = (
        "unsupported by server" if "unsupported" in ws_note else f"{ws.ratio(f'sender x{args.workers} (ws)'):.2f}x"
    )  # type: ignore[operator]
    summary.add_row("sender vs raw client (ws)", ws_text, ">= 0.9x", "")
    summary.add_row(
        "p99 creation -> visible @ 5k/s",
        f"{delay.visible_p99_ms:,.0f} ms",
        f"< {delay.delay_target_ms:,.0f} ms",
        str(delay.visible_p99_ms < delay.delay_target_ms),
    )
    summary.add_row(
        "peak RSS router + workers @ 150k/s",
        f"{rss.peak_rss_mib:,.0f} MiB ({rss.achieved_rate:,.0f}/s achieved)",
        "< 1024 MiB",
        str(rss.peak_rss_mib < 1024),
    )
    console.print(summary)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
