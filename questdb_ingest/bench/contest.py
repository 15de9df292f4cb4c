"""The pipeline contest: the product's in-memory pipeline against the simple single-process feed
handler a team would write in an afternoon, and against the raw client on pre-built columns.

Every contender writes the same Binance ``@trade`` frames (or, for the raw client, the same trades
as ready-made columns) into an identical, freshly migrated ``trades`` table (TIMESTAMP_NS, SYMBOLs,
VARCHAR id, DEDUP UPSERT KEYS), and is timed until ``count()`` shows every row. One unmeasured
round warms the server up, then rounds alternate the order so no contender always meets a warmer
server.

The simple baseline is built as the best simple version, never a weak one: one process, a msgspec
struct decoder, Python lists turned into numpy columns once per request, categorical symbols,
trade ids cast to strings by Arrow, ``Sender.dataframe`` with 50,000-row requests, one flush per
request, auto-flush off. A second variant writes into the same table with DEDUP disabled (what
deduplication costs QuestDB). The raw client gets the rows as one ready-made DataFrame and sends
it in requests of the same size: no parsing at all, the closest thing to QuestDB's own ceiling.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import questdb
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..connectors.binance import SpotTrade
from ..connectors.core import Frame, TradeColumns
from ..ingest.ilp import writer_conf
from ..models import TRADE_SYMBOL_COLUMNS, TradeBatch, now_ns
from ..sender import ShardedSender
from ..sender.sinks import transport_conf
from ..store.pg import connect
from .connectors import VenueMix
from .cpu import CpuMeter, questdb_pid
from .insert import Round, _drop, _finish, _wait_ready, fresh_tables

REQUEST_ROWS = 50_000
PRODUCT = "product"
SIMPLE = "simple"
SIMPLE_NO_DEDUP = "simple, no DEDUP"
RAW = "raw client, pre-built"
CONTENDERS = (PRODUCT, SIMPLE, SIMPLE_NO_DEDUP, RAW)
LABELS = {
    PRODUCT: "the product: parser → sender",
    SIMPLE: "simple single process: msgspec → numpy → Sender.dataframe",
    SIMPLE_NO_DEDUP: "the same simple process, table without DEDUP",
    RAW: "raw client, pre-built columns (no parsing)",
}
_SYMBOLS = list(TRADE_SYMBOL_COLUMNS)


class SimpleHandler:
    """The simple single-process feed handler: frames → columns → one ILP request per 50k rows."""

    def __init__(self, mix: VenueMix, sender: Any, table: str) -> None:
        self._decode = msgspec.json.Decoder(SpotTrade, strict=False).decode  # prices arrive as strings
        self._symbols = {inst.venue_symbol: inst.symbol for inst in mix.instruments.values()}
        self._exchange = mix.proto.spec.exchange
        self._market = mix.proto.spec.market_type
        self._sender = sender
        self._table = table

    def write(self, frames: Sequence[Frame]) -> None:
        decode = self._decode
        ts: list[int] = []
        sym: list[str] = []
        price: list[float] = []
        qty: list[float] = []
        maker: list[bool] = []
        tid: list[int] = []
        for frame in frames:
            m = decode(frame)
            ts.append(m.T)
            sym.append(m.s)
            price.append(m.p)
            qty.append(m.q)
            maker.append(m.m)
            tid.append(m.t)
        n = len(ts)
        venue = pd.Categorical(sym)
        symbol = venue.rename_categories({s: self._symbols[s] for s in venue.categories})
        side = pd.Categorical.from_codes(np.array(maker, dtype=np.int8), pd.Index(["buy", "sell"]))  # m: the taker sold
        columns = pd.DataFrame(
            {
                "ts": (np.array(ts, dtype=np.int64) * 1_000_000).view("datetime64[ns]"),
                "exchange": pd.Categorical.from_codes(np.zeros(n, np.int8), pd.Index([self._exchange])),
                "market_type": pd.Categorical.from_codes(np.zeros(n, np.int8), pd.Index([self._market])),
                "symbol": symbol,
                "price": np.array(price, dtype=np.float64),
                "quantity": np.array(qty, dtype=np.float64),
                "side": side,
                "trade_id": pd.arrays.ArrowExtensionArray(pc.cast(pa.array(tid, pa.int64()), pa.string())),
                "recv_ts": np.full(n, time.time_ns(), dtype=np.int64).view("datetime64[ns]"),
            }
        )
        self._sender.dataframe(columns, table_name=self._table, symbols=_SYMBOLS, at="ts")
        self._sender.flush()


def _conf(settings: Settings) -> str:
    """The client conf every direct contender uses: the product's own (auto-flush off)."""
    return writer_conf(transport_conf(settings, "http"))


def _run_direct(
    settings: Settings,
    mix: VenueMix,
    contender: str,
    prefix: str,
    write: Callable[[Any, str], None],
    *,
    dedup: bool = True,
) -> tuple[Round, dict[str, float]]:
    """A contender that drives the client itself in this process: fresh table, clock, ``count()``."""
    scoped = fresh_tables(settings, prefix)
    table = scoped.table("trades")
    if not dedup:
        with connect(scoped) as conn:
            conn.execute(f"ALTER TABLE {table} DEDUP DISABLE")
    meter = _meter(settings, {"producer": [os.getpid()]})
    started = time.perf_counter()
    with questdb.Sender.from_conf(_conf(settings)) as sender:
        write(sender, table)
    sent_at = time.perf_counter()
    r = _finish(scoped, table, started, sent_at, mix.trades, contender)
    cpu = meter.stop()
    _drop(settings, prefix)
    return r, cpu


def _run_simple(settings: Settings, mix: VenueMix, dedup: bool) -> tuple[Round, dict[str, float]]:
    def write(sender: Any, table: str) -> None:
        handler = SimpleHandler(mix, sender, table)
        for i in range(0, len(mix.frames), REQUEST_ROWS):
            handler.write(mix.frames[i : i + REQUEST_ROWS])

    if dedup:
        return _run_direct(settings, mix, SIMPLE, "bench_simple_", write)
    return _run_direct(settings, mix, SIMPLE_NO_DEDUP, "bench_nodedup_", write, dedup=False)


def _run_raw(settings: Settings, mix: VenueMix, columns: pd.DataFrame) -> tuple[Round, dict[str, float]]:
    def write(sender: Any, table: str) -> None:
        for i in range(0, len(columns), REQUEST_ROWS):
            sender.dataframe(columns.iloc[i : i + REQUEST_ROWS], table_name=table, symbols=_SYMBOLS, at="ts")
            sender.flush()

    return _run_direct(settings, mix, RAW, "bench_raw_", write)


def _run_product(settings: Settings, mix: VenueMix, workers: int) -> tuple[Round, dict[str, float]]:
    scoped = fresh_tables(settings, "bench_product_")
    table = scoped.table("trades")
    parse = mix.proto.make_parser(mix.instruments)
    exchange, market = mix.proto.spec.exchange, mix.proto.spec.market_type
    frames = mix.frames
    with ShardedSender(scoped, workers=workers) as snd:
        snd.flush(timeout=120)
        _wait_ready(snd)
        meter = _meter(settings, {"producer": [os.getpid()], "sender workers": snd.worker_pids()})
        started = time.perf_counter()
        out = TradeColumns()
        recv = now_ns()
        for i in range(0, len(frames), REQUEST_ROWS):
            for frame in frames[i : i + REQUEST_ROWS]:
                parse(frame, recv, out)
            snd.submit(out.drain(exchange, market))
        snd.flush()
        sent_at = time.perf_counter()
        r = _finish(scoped, table, started, sent_at, mix.trades, PRODUCT)
        cpu = meter.stop()
    _drop(settings, "bench_product_")
    return r, cpu


@dataclass
class Stage:
    pipeline: str
    stage: str
    cpu_s: float
    trades: int

    @property
    def us_per_trade(self) -> float:
        return self.cpu_s / self.trades * 1e6


def stage_costs(mix: VenueMix, repeat: int = 3) -> list[Stage]:
    """CPU seconds per stage, one thread, best of ``repeat``, for the product's path and the simple
    handler's (no QuestDB: the ILP buffer is built but not sent). It says where a trade's CPU goes
    before anything is measured against the server, and so what any change could gain."""
    from ..sender.codec import ShardRouter, decode

    parse = mix.proto.make_parser(mix.instruments)
    exchange, market = mix.proto.spec.exchange, mix.proto.spec.market_type
    chunks = [mix.frames[i : i + REQUEST_ROWS] for i in range(0, len(mix.frames), REQUEST_ROWS)]
    best: dict[tuple[str, str], float] = {}

    def timed(pipeline: str, stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.process_time()
        value = fn()
        spent = time.process_time() - t0
        key = (pipeline, stage)
        best[key] = min(best.get(key, spent), spent)
        return value

    def parse_all() -> list[TradeColumns]:
        outs = []
        for chunk in chunks:
            out = TradeColumns()
            for frame in chunk:
                parse(frame, 1, out)
            outs.append(out)
        return outs

    class _Capture:
        """Stands in for the client in the simple handler: keeps the buffer, sends nothing."""

        def __init__(self) -> None:
            self.buffer = _offline_buffer()

        def dataframe(self, frame: pd.DataFrame, **kwargs: Any) -> None:
            self.buffer.dataframe(frame, **kwargs)

        def flush(self) -> None:
            self.buffer.clear()

    def one_round() -> None:
        outs = timed(PRODUCT, "parse: frames → trade columns", parse_all)
        batches = timed(PRODUCT, "drain: columns → TradeBatch", lambda: [o.drain(exchange, market) for o in outs])
        router = ShardRouter(1, "trades")
        parts = timed(PRODUCT, "router: validate, encode (Arrow IPC)", lambda: [router.split(b)[0] for b in batches])
        decoded = timed(PRODUCT, "worker: decode", lambda: [decode(p.payload) for p in parts])
        buffer = _offline_buffer()

        def serialise() -> None:
            for d in decoded:
                buffer.dataframe(d.frame, table_name="trades", symbols=_SYMBOLS, at="ts")
            buffer.clear()

        timed(PRODUCT, "worker: ILP serialisation", serialise)
        handler = SimpleHandler(mix, _Capture(), "trades")

        def simple() -> None:
            for chunk in chunks:
                handler.write(chunk)

        timed(SIMPLE, "frames → columns → DataFrame → ILP", simple)

    for _ in range(repeat):
        one_round()
    return [Stage(pipeline, stage, seconds, mix.trades) for (pipeline, stage), seconds in best.items()]


def _offline_buffer() -> Any:
    """An ILP buffer as the product's client builds it (protocol 2), with no server: the client's
    only public offline constructor is still under its deprecated ``ingress`` module."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from questdb.ingress import Buffer

    return Buffer(protocol_version=2)


def print_stages(stages: list[Stage], console: Console) -> None:
    table = Table(title=f"CPU per stage, one thread, best of 3 ({stages[0].trades:,} trades; no QuestDB)")
    for col in ("pipeline", "stage", "CPU s", "µs/trade"):
        table.add_column(col, justify="left" if col in ("pipeline", "stage") else "right")
    for pipeline in (PRODUCT, SIMPLE):
        rows = [s for s in stages if s.pipeline == pipeline]
        for s in rows:
            table.add_row(pipeline, s.stage, f"{s.cpu_s:.3f}", f"{s.us_per_trade:.2f}")
        total = sum(s.cpu_s for s in rows)
        table.add_row(pipeline, "[b]total[/]", f"[b]{total:.3f}[/]", f"[b]{total / rows[0].trades * 1e6:.2f}[/]")
    console.print(table)


def _meter(settings: Settings, roles: dict[str, list[int]]) -> CpuMeter:
    return CpuMeter(roles | {"questdb": [pid for pid in [questdb_pid(settings)] if pid]}).start()


def prebuilt_columns(mix: VenueMix) -> pd.DataFrame:
    """The mix's trades as the raw client's best-case frame (built before any clock starts)."""
    parse = mix.proto.make_parser(mix.instruments)
    out = TradeColumns()
    recv = now_ns()
    for frame in mix.frames:
        parse(frame, recv, out)
    batch: TradeBatch = out.drain(mix.proto.spec.exchange, mix.proto.spec.market_type)
    return batch.to_frame()


@dataclass
class ContestResult:
    trades: int
    symbols: int
    workers: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def median(self, contender: str) -> float:
        vals = [float(r["rows_per_s"]) for r in self.rounds if r["contender"] == contender]
        return float(np.median(vals)) if vals else 0.0

    def ratio(self, contender: str, against: str) -> float:
        base = self.median(against)
        return self.median(contender) / base if base else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            c: {
                "median_rows_per_s": self.median(c),
                "vs_simple": self.ratio(c, SIMPLE),
                "vs_raw": self.ratio(c, RAW),
            }
            for c in CONTENDERS
            if any(r["contender"] == c for r in self.rounds)
        }

    def to_dict(self) -> dict[str, Any]:
        stages = [asdict(s) | {"us_per_trade": s.us_per_trade} for s in self.stages]
        return asdict(self) | {"stages": stages, "summary": self.summary()}


Runner = Callable[[], tuple[Round, dict[str, float]]]


def run_contest(
    settings: Settings,
    mix: VenueMix,
    *,
    workers: int,
    repeat: int,
    console: Console | None = None,
    contenders: tuple[str, ...] = CONTENDERS,
) -> ContestResult:
    """``repeat`` rounds of every contender, the order rotated each round."""
    columns = prebuilt_columns(mix) if RAW in contenders else pd.DataFrame()  # built before any clock
    runners: dict[str, Runner] = {
        PRODUCT: lambda: _run_product(settings, mix, workers),
        SIMPLE: lambda: _run_simple(settings, mix, True),
        SIMPLE_NO_DEDUP: lambda: _run_simple(settings, mix, False),
        RAW: lambda: _run_raw(settings, mix, columns),
    }
    names = [c for c in CONTENDERS if c in contenders]
    result = ContestResult(mix.trades, len(mix.instruments), workers)
    # One unmeasured round first: the first inserts after QuestDB starts cost it about twice the
    # CPU (JIT compilation; 1.75 against 0.6-1.05 CPU-s seen), and round 1 always begins with the
    # same contender.
    warm = runners[RAW if RAW in names else names[0]]()[0]
    if console is not None:
        console.print(f"warm-up ({warm.contender}, not counted): visible {warm.visible_s:.2f}s")
    for i in range(repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            r, cpu = runners[name]()
            entry = {"contender": name, "send_s": r.send_s, "visible_s": r.visible_s, "rows_per_s": r.rows_per_s}
            result.rounds.append(entry | {"cpu_s": cpu})
            if console is not None:
                split = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
                console.print(
                    f"round {i + 1}/{repeat} {name:>18}: visible {r.visible_s:6.2f}s, "
                    f"{r.rows_per_s:>10,.0f} rows/s (CPU s: {split})"
                )
    return result


def print_contest(result: ContestResult, console: Console) -> None:
    table = Table(
        title=f"pipeline contest: {result.trades:,} Binance @trade frames, {result.symbols} symbols → QuestDB "
        f"(visible), median of {sum(1 for r in result.rounds if r['contender'] == SIMPLE)}"
    )
    for col in ("pipeline", "rows/s", "vs simple", "vs raw", "CPU s per round (median)"):
        table.add_column(col, justify="left" if col in ("pipeline", "CPU s per round (median)") else "right")
    for name, row in result.summary().items():
        rounds = [r for r in result.rounds if r["contender"] == name]
        roles = sorted({k for r in rounds for k in r["cpu_s"]})
        cpu = ", ".join(f"{k} {np.median([r['cpu_s'].get(k, 0.0) for r in rounds]):.2f}" for k in roles)
        label = LABELS[name] + (f" x{result.workers}" if name == PRODUCT else "")
        table.add_row(
            label, f"{row['median_rows_per_s']:,.0f}", f"{row['vs_simple']:.2f}x", f"{row['vs_raw']:.2f}x", cpu
        )
    console.print(table)
