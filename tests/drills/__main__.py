"""``python -m tests.drills [1 1b 2 …] [--json FILE]``: run the fault drills against a private
QuestDB and print generated / stored / distinct per drill (``scripts/fault-drills.sh``)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .drills import DRILLS
from .harness import DrillResult, PrivateQuestDB, can_fault_filesystems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("drills", nargs="*", default=list(DRILLS), help=f"which drills (default: {list(DRILLS)})")
    parser.add_argument("--json", dest="json_path", help="also write the results here")
    args = parser.parse_args()
    unknown = [d for d in args.drills if d not in DRILLS]
    if unknown:
        parser.error(f"unknown drill(s) {unknown}; known: {list(DRILLS)}")
    why = can_fault_filesystems()
    if why:
        print(f"the drills fault real filesystems (tmpfs mounts, chattr): {why}", file=sys.stderr)
        return 2
    console = Console(width=160)
    results: list[tuple[DrillResult, float]] = []
    with tempfile.TemporaryDirectory(prefix="pumpwatch-drills-") as tmp:
        qdb = PrivateQuestDB(Path(tmp))
        qdb.start()
        try:
            for name in args.drills:
                work = Path(tmp) / f"drill-{name}"
                work.mkdir()
                started = time.monotonic()
                console.print(f"drill {name}: {DRILLS[name].__doc__.strip().splitlines()[0]}")
                try:
                    result = DRILLS[name](qdb, work)
                except Exception as exc:  # a drill that crashes is a failed drill, reported, not a traceback
                    result = DrillResult(name, 0, 0, 0)
                    result.check("drill ran", False, f"{type(exc).__name__}: {exc}")
                finally:
                    if qdb.server.pid() is None:
                        qdb.start()
                results.append((result, time.monotonic() - started))
                console.print(f"  {'passed' if result.passed else 'FAILED: ' + ', '.join(result.failures())}")
        finally:
            qdb.stop()
    table = Table(title="fault drills (generated = delivered by the replay server)")
    for col in ("drill", "generated", "stored", "distinct", "reported lost", "seconds", "result"):
        table.add_column(col, justify="left" if col in ("drill", "result") else "right")
    for r, seconds in results:
        mark = "[green]passed[/]" if r.passed else f"[red]FAILED[/] {', '.join(r.failures())}"
        table.add_row(r.name, f"{r.generated:,}", f"{r.stored:,}", f"{r.distinct:,}", f"{r.reported_lost:,}",
                      f"{seconds:.0f}", mark)  # fmt: skip
    console.print(table)
    for r, _ in results:
        for note in r.notes:
            console.print(f"  [dim]{r.name}[/] {note}", highlight=False)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([asdict(r) | {"seconds": s} for r, s in results], indent=2))
    return 0 if all(r.passed for r, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
