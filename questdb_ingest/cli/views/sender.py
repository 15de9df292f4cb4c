"""Rich renderings of the sender's metrics: the live view of ``pumpwatch load`` and its final table."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ...sender.metrics import SenderMetrics


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def exchange_table(m: SenderMetrics, title: str) -> Table:
    t = Table(title=title, expand=False)
    for col in ("exchange", "received", "confirmed", "in flight", "spooled", "replayed", "dead", "delay p50", "p99"):
        t.add_column(col, justify="left" if col == "exchange" else "right")
    for ex, e in m.exchanges.items():
        t.add_row(
            ex,
            f"{e.received:,}",
            f"{e.confirmed:,}",
            f"{e.in_flight:,}",
            f"{e.spooled:,}",
            f"{e.replayed:,}",
            f"{e.dead_lettered:,}",
            f"{e.delay_ms.get('p50_ms', 0):,.0f} ms",
            f"{e.delay_ms.get('p99_ms', 0):,.0f} ms",
        )
    return t


def worker_table(m: SenderMetrics) -> Table:
    t = Table(title="workers", expand=False)
    for col in ("shard", "pid", "state", "restarts", "queue rows", "confirmed", "retried", "spool", "flush p99"):
        t.add_column(col, justify="right")
    for w in m.per_worker:
        t.add_row(
            str(w.shard),
            str(w.pid or "-"),
            w.state,
            str(w.restarts),
            f"{w.queue_rows:,}",
            f"{w.confirmed:,}",
            f"{w.retried:,}",
            f"{w.spool_rows:,} rows / {_mib(w.spool_bytes)}",
            f"{w.flush_ms.get('p99_ms', 0):,.0f} ms",
        )
    return t


def books_line(m: SenderMetrics) -> Text:
    b = m.books
    if b.balanced:
        mark = "[green]balanced[/]"
    elif b.accounted:
        unknown = f" + {b.quarantined_unknown} damaged range(s)" if b.quarantined_unknown else ""
        mark = f"[bold red]NOT balanced: {b.quarantined:,} row(s){unknown} quarantined from the spool[/]"
    else:
        mark = "[bold red]NOT balanced[/]"
    return Text.from_markup(
        f"books: received {b.received:,} + recovered {b.recovered:,} = confirmed {b.confirmed:,} + replayed "
        f"{b.replayed:,} + dead-lettered {b.dead_lettered:,} + in flight {b.in_flight:,} + spooled {b.spooled_now:,}"
        f"  {mark}   backpressure waits {m.backpressure_waits} ({m.backpressure_seconds:.1f}s), "
        f"resent {m.resent_rows:,}"
    )


def live_view(m: SenderMetrics, *, elapsed: float, duration: float, rate: float, submitted: int) -> RenderableType:
    header = Text.from_markup(
        f"[bold]pumpwatch load[/]  {elapsed:5.1f}/{duration:.0f}s  target {rate:,.0f} trades/s  "
        f"submitted {submitted:,}  queue {m.queue_rows:,} rows  spool {_mib(m.spool_bytes)}"
    )
    alarms = [Text(f"ALARM shard {w.shard}: {w.alarm}", style="bold red") for w in m.per_worker if w.alarm]
    return Group(
        header,
        ProgressBar(total=duration, completed=min(elapsed, duration), width=60),
        exchange_table(m, "per exchange"),
        worker_table(m),
        books_line(m),
        *alarms,
    )
