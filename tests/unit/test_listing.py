"""Listing detection: the market-list diff, the watcher (scripted REST and a real replay server child
process), the collector's timing, event, export, pending writes and close(), and the detector wired
end to end against the replay server. No QuestDB; every wait is bounded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import pyarrow.parquet as pq
import pytest
import websockets
from aiohttp import web

from questdb_ingest.config import ConnectorSettings, HybridSettings, Settings
from questdb_ingest.connectors.core import Instrument, Instruments, TradeColumns, VenueProtocol
from questdb_ingest.connectors.pipeline import build_protocol
from questdb_ingest.connectors.registry import connector
from questdb_ingest.connectors.replay import ReplayControl
from questdb_ingest.connectors.replay_process import ReplayProcess, free_port
from questdb_ingest.connectors.rest import HttpRest
from questdb_ingest.connectors.upbit import BITHUMB, UPBIT, UpbitProtocol
from questdb_ingest.errors import FlushTransportError, ValidationError, VenueRequestError
from questdb_ingest.hybrid.listing import (
    COLLECTED,
    FAILED,
    NOT_COLLECTED,
    ListingCollector,
    ListingDetector,
    ListingTrigger,
    ListingWriterSink,
    MarketListWatcher,
    new_listings,
)
from questdb_ingest.hybrid.window import ListingData
from questdb_ingest.ingest.writer import ListingWriter
from questdb_ingest.models import ListingEvent, TradeBatch

NS = 1_000_000_000
T = TypeVar("T")


def run(coro: Awaitable[T], limit: float = 8.0) -> T:
    """Run a test coroutine, failing it instead of hanging past ``limit`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


async def until(check: Callable[[], bool], timeout: float = 3.0, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


# ---- the diff ---------------------------------------------------------------------------------
def inst(code: str) -> Instrument:
    quote, _, base = code.partition("-")
    return Instrument.make(code, base, quote)


def test_new_listings_only_unseen_markets_in_the_quote() -> None:
    after = [inst(c) for c in ("KRW-BTC", "KRW-NEW", "BTC-NEW2", "USDT-NEW3", "KRW-XYZ", "KRW-NEW")]
    got = new_listings({"KRW-BTC", "KRW-XYZ"}, after, "krw")
    assert [(i.base, i.quote, i.venue_symbol, i.symbol) for i in got] == [("NEW", "KRW", "KRW-NEW", "NEW-KRW")]
    assert [i.venue_symbol for i in new_listings(set(), after, "BTC")] == ["BTC-NEW2"]
    assert new_listings({"KRW-BTC"}, [inst("KRW-BTC")], "KRW") == []
    assert new_listings(set(), [], "KRW") == []


def test_trigger_time_is_the_announcement_when_known() -> None:
    plain = ListingTrigger("NEW", "NEW-KRW", "KRW-NEW", "upbit_spot", detected_ns=5 * NS)
    assert plain.trigger_ns == 5 * NS
    assert plain.trigger_delay_ms == 0
    announced = ListingTrigger("NEW", "NEW-KRW", "KRW-NEW", "upbit_spot", detected_ns=5 * NS, announced_ns=2 * NS)
    assert announced.trigger_ns == 2 * NS
    assert announced.trigger_delay_ms == 3000
    ahead = ListingTrigger("NEW", "NEW-KRW", "KRW-NEW", "upbit_spot", detected_ns=5 * NS, announced_ns=6 * NS)
    assert ahead.trigger_delay_ms == 0  # the announcer's clock ahead of ours: never negative


# ---- the watcher, scripted REST ---------------------------------------------------------------
def markets(*codes: str) -> bytes:
    return msgspec.json.encode([{"market": c, "korean_name": c, "english_name": c} for c in codes])


class ScriptedRest:
    """A ``RestClient`` answering each URL from a script; the last answer repeats."""

    def __init__(self, script: Mapping[str, list[bytes | Exception]]) -> None:
        self.script = {url: deque(answers) for url, answers in script.items()}

    def push(self, url: str, *answers: bytes | Exception) -> None:
        self.script[url].extend(answers)

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        answers = self.script[url]
        answer = answers.popleft() if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def post(self, url: str, body: bytes = b"") -> bytes:
        raise AssertionError("the watcher only reads")


UPBIT_URL = "http://127.0.0.1:1/upbit_spot/v1/market/all"
BITHUMB_URL = "http://127.0.0.1:1/bithumb_spot/v1/market/all"


def protocols() -> list[VenueProtocol]:
    return [
        UpbitProtocol(UPBIT.with_base_url("http://127.0.0.1:1")),
        UpbitProtocol(BITHUMB.with_base_url("http://127.0.0.1:1")),
    ]


class Announcements:
    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    async def poll(self) -> list[tuple[str, int]]:
        return list(self.items)


def test_watcher_baseline_errors_quotes_and_once_per_base() -> None:
    rest = ScriptedRest(
        {
            UPBIT_URL: [
                markets("KRW-BTC", "BTC-ETH"),  # baseline
                VenueRequestError(UPBIT_URL, "HTTP 503"),
                b"<html>not json</html>",
                markets("KRW-BTC", "BTC-ETH", "BTC-NEWCOIN", "USDT-NEWCOIN", "KRW-NEWCOIN"),
                markets("KRW-BTC", "BTC-ETH"),  # NEWCOIN missing from one answer ...
                markets("KRW-BTC", "BTC-ETH", "KRW-NEWCOIN", "KRW-LATER"),  # ... and back: not new again
            ],
            BITHUMB_URL: [
                markets("KRW-BTC"),
                markets("KRW-BTC"),
                markets("KRW-BTC"),
                markets("KRW-BTC", "KRW-NEWCOIN"),
            ],
        }
    )
    announcements = Announcements()
    clock = iter(range(100 * NS, 200 * NS, NS))
    watcher = MarketListWatcher(protocols(), rest, quote="KRW", announcements=announcements, clock=lambda: next(clock))

    async def main() -> list[list[ListingTrigger]]:
        rounds = []
        for i in range(6):
            if i == 5:
                announcements.items = [("later", 42 * NS)]
            rounds.append(await watcher.poll_once())
        return rounds

    rounds = run(main())
    assert [len(r) for r in rounds] == [0, 0, 0, 1, 0, 1]
    first = rounds[3][0]
    # BTC-NEWCOIN and USDT-NEWCOIN are not KRW; Bithumb's KRW-NEWCOIN in the same round is the same base.
    assert (first.base, first.market, first.venue_symbol, first.announced_ns) == (
        "NEWCOIN",
        "NEWCOIN-KRW",
        "KRW-NEWCOIN",
        None,
    )
    assert first.source in ("upbit_spot", "bithumb_spot")
    assert first.trigger_ns == first.detected_ns
    later = rounds[5][0]
    assert (later.base, later.announced_ns, later.trigger_ns) == ("LATER", 42 * NS, 42 * NS)
    assert later.trigger_delay_ms == (later.detected_ns - 42 * NS) // 1_000_000
    up = watcher.stats.sources["upbit_spot"]
    assert (up.polls, up.failures, up.consecutive_failures, up.baseline) == (6, 2, 0, True)
    assert "DecodeError" in up.last_error
    assert watcher.stats.triggers == 2
    assert watcher.stats.announcement_polls == 6


def test_watcher_needs_a_successful_poll_for_its_baseline() -> None:
    rest = ScriptedRest(
        {
            UPBIT_URL: [
                VenueRequestError(UPBIT_URL, "down"),
                markets("KRW-BTC", "KRW-NEW"),
                markets("KRW-BTC", "KRW-NEW"),
            ],
        }
    )
    watcher = MarketListWatcher(protocols()[:1], rest)

    async def main() -> list[list[ListingTrigger]]:
        return [await watcher.poll_once() for _ in range(3)]

    assert run(main()) == [[], [], []]  # what the first answer lists is the baseline, not new
    assert watcher.baselined


def test_watcher_distrusts_empty_and_sweeping_answers() -> None:
    many = [f"KRW-C{i}" for i in range(11)]
    rest = ScriptedRest(
        {
            UPBIT_URL: [
                markets(),  # empty: a failed poll, not a baseline
                markets("KRW-BTC"),
                markets("KRW-BTC", *many),  # 11 new at once: the baseline was partial
                markets("KRW-BTC", *many, "KRW-REAL"),
            ]
        }
    )
    watcher = MarketListWatcher(protocols()[:1], rest, max_new_per_poll=10)

    async def main() -> list[list[ListingTrigger]]:
        return [await watcher.poll_once() for _ in range(4)]

    rounds = run(main())
    assert [[t.base for t in r] for r in rounds] == [[], [], [], ["REAL"]]
    assert watcher.stats.sources["upbit_spot"].failures == 1
    assert "empty market list" in watcher.stats.sources["upbit_spot"].last_error


# ---- the watcher against a replay server child process ----------------------------------------
@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayProcess]:
    with ReplayProcess(["--connectors", "upbit_spot", "--symbols", "3", "--rate", "200", "--burst-seconds", "0"]) as rp:
        yield rp


def test_watcher_sees_a_replay_listing_once(replay: ReplayProcess) -> None:
    proto = build_protocol(connector("upbit_spot"), ConnectorSettings(base_url=replay.base_url))

    async def main() -> None:
        triggers: list[ListingTrigger] = []
        async with HttpRest(min_interval=0.0, attempts=1) as rest, ReplayControl(replay.base_url) as control:
            watcher = MarketListWatcher([proto], rest, poll_interval=0.05)
            task = asyncio.create_task(watcher.run(triggers.append))
            try:
                await until(lambda: watcher.stats.sources["upbit_spot"].polls >= 3)
                assert watcher.baselined
                assert triggers == []
                before = watcher.stats.sources["upbit_spot"].polls
                listed = await control.list_instrument("upbit_spot", "NEWCOIN", "KRW")
                assert listed == {"upbit_spot": "KRW-NEWCOIN"}
                listed_ns = time.time_ns()
                await until(lambda: bool(triggers))
                assert watcher.stats.sources["upbit_spot"].polls - before <= 3  # within a few poll intervals
                polls = watcher.stats.sources["upbit_spot"].polls
                await until(lambda: watcher.stats.sources["upbit_spot"].polls >= polls + 3)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert len(triggers) == 1
            trig = triggers[0]
            assert (trig.base, trig.market, trig.venue_symbol, trig.source) == (
                "NEWCOIN",
                "NEWCOIN-KRW",
                "KRW-NEWCOIN",
                "upbit_spot",
            )
            assert trig.announced_ns is None
            assert listed_ns <= trig.detected_ns <= time.time_ns()

            # The replay lists it in /v1/market/all and trades it once a client subscribes.
            found = Instruments(await proto.fetch_instruments(rest))
            assert found["KRW-NEWCOIN"].symbol == "NEWCOIN-KRW"
            async with websockets.connect(proto.spec.ws_url, ping_interval=None, max_queue=None) as ws:
                for msg in proto.subscribe_messages([found["KRW-NEWCOIN"]]):
                    await ws.send(msg)
                out = TradeColumns()
                parse = proto.make_parser(found)
                while len(out) < 3:
                    parse(await asyncio.wait_for(ws.recv(), 3.0), time.time_ns(), out)
            assert set(out.symbol) == {"NEWCOIN-KRW"}
            stats = await control.stats()
            assert stats["connectors"]["upbit_spot"]["generated"]["by_symbol"]["KRW-NEWCOIN"] >= 3

    run(main())


# ---- the collector ----------------------------------------------------------------------------
def batch(exchange: str, market_type: str, symbol: str, ts: list[int]) -> TradeBatch:
    n = len(ts)
    return TradeBatch.from_columns(
        ts_ns=ts,
        exchange=[exchange] * n,
        market_type=[market_type] * n,
        symbol=[symbol] * n,
        price=[1.5] * n,
        quantity=[2.0] * n,
        side=["buy"] * n,
        trade_id=[f"{exchange}{i}" for i in range(n)],
    )


class FakeSource:
    """A ``WindowSource`` recording when it was asked; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail: bool = False, gate: asyncio.Event | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.gate = gate  # when given, every query waits for it: concurrency shows without a clock
        self.calls: list[tuple[str, int, float, float, int]] = []

    async def get_listing_data(self, symbol: str, trigger_ns: int, before: float, after: float) -> ListingData:
        self.calls.append((symbol, trigger_ns, before, after, time.time_ns()))
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("both sources down")
        venues = {
            "upbit_spot": batch("upbit", "spot", f"{symbol}-KRW", [trigger_ns, trigger_ns + 5]),
            "binance_spot": batch("binance", "spot", f"{symbol}-USDT", [trigger_ns - 7]),
            "okx_spot": TradeBatch.empty(),
        }
        start, end = trigger_ns - round(before * NS), trigger_ns + round(after * NS)
        return ListingData(symbol, trigger_ns, start, end, "buffer", venues, 0.4, notes=["n"])


class FakeSink:
    def __init__(self) -> None:
        self.events: list[ListingEvent] = []
        self.attempts = 0
        self.down = False
        self.reject = False

    def write(self, event: ListingEvent) -> None:
        self.attempts += 1
        if self.reject:
            raise ValidationError("symbol", event.symbol, "rejected for the test")
        if self.down:
            raise FlushTransportError("listing_events", 1, "Connection refused")
        self.events.append(event)


def trigger(base: str, detected_ns: int, announced_ns: int | None = None) -> ListingTrigger:
    return ListingTrigger(base, f"{base}-KRW", f"KRW-{base}", "upbit_spot", detected_ns, announced_ns)


def collector(tmp_path: Path, source: Any, sink: Any, **kw: Any) -> ListingCollector:
    kw = {"before": 0.2, "after": 0.2, "settle": 0.1, **kw}
    return ListingCollector(source, sink, tmp_path / "exports", **kw)


def test_collector_waits_for_the_window_then_stores_and_exports(tmp_path: Path) -> None:
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink)
        trig = trigger("NEWCOIN", time.time_ns())
        assert col.submit(trig)
        assert not col.submit(trig)  # once per base
        assert col.in_progress == [trig]
        await asyncio.sleep(0.2)
        assert source.calls == []  # the window is still open
        await until(lambda: bool(col.history))
        symbol, trigger_ns, before, after, asked_ns = source.calls[0]
        assert (symbol, trigger_ns, before, after) == ("NEWCOIN", trig.trigger_ns, 0.2, 0.2)
        assert col.due_ns(trig) == trig.trigger_ns + round(0.3 * NS) <= asked_ns < col.due_ns(trig) + NS // 2
        record = col.history[0]
        assert record.status == COLLECTED
        assert record.event == ListingEvent(
            ts_ns=trig.trigger_ns,
            symbol="NEWCOIN",
            announced_ns=None,
            detected_ns=trig.detected_ns,
            trigger_delay_ms=0,
            collected_trades=3,
            exchanges_with_data=2,
        )
        assert sink.events == [record.event]
        assert record.written
        assert record.counts == {"binance_spot": 1, "upbit_spot": 2}
        assert (record.source, record.latency_ms, record.notes) == ("buffer", 0.4, ["n"])
        assert record.export is not None
        assert record.export.directory.parent == tmp_path / "exports"
        assert pq.read_table(record.export.parquet).num_rows == 3
        assert record.export.summary_json.is_file()
        assert col.in_progress == []
        assert (col.stats.collected, col.stats.exported, col.stats.written) == (1, 1, 1)
        await col.close()

    run(main())


def test_collector_uses_the_announcement_as_trigger(tmp_path: Path) -> None:
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink)
        now = time.time_ns()
        col.submit(trigger("ANN", now, announced_ns=now - NS // 2))  # window already over: collected at once
        await until(lambda: bool(col.history), timeout=1.0)
        event = col.history[0].event
        assert event is not None
        assert (event.ts_ns, event.announced_ns, event.detected_ns) == (now - NS // 2, now - NS // 2, now)
        assert event.trigger_delay_ms == 500
        assert source.calls[0][1] == now - NS // 2
        await col.close()

    run(main())


def test_unstored_event_stays_pending_and_is_retried_with_the_next(tmp_path: Path) -> None:
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink)
        past = time.time_ns() - NS
        sink.down = True
        col.submit(trigger("AAA", past))
        await until(lambda: bool(col.history), timeout=1.0)
        first = col.history[0]
        assert first.status == COLLECTED
        assert not first.written
        assert first.export is not None  # the export does not wait for QuestDB
        assert col.pending_events == [first.event]
        assert col.stats.write_failures == 1

        sink.down = False
        col.submit(trigger("BBB", past))
        await until(lambda: len(col.history) == 2, timeout=1.0)
        assert [e.symbol for e in sink.events] == ["AAA", "BBB"]  # oldest first
        assert first.written
        assert col.history[1].written
        assert col.pending_events == []
        await col.close()

    run(main())


def test_close_retries_pending_and_reports_what_is_left(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink)
        sink.down = True
        col.submit(trigger("AAA", time.time_ns() - NS))
        await until(lambda: bool(col.history), timeout=1.0)
        with caplog.at_level(logging.ERROR):
            await col.close()
        assert [e.symbol for e in col.pending_events] == ["AAA"]  # never dropped
        assert "NOT stored" in caplog.text
        sink.down = False
        assert await col.retry_pending() == 0
        assert [e.symbol for e in sink.events] == ["AAA"]
        assert col.history[0].written

    run(main())


def test_rejected_event_is_reported_not_retried_forever(tmp_path: Path) -> None:
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink)
        sink.reject = True
        col.submit(trigger("BAD", time.time_ns() - NS))
        await until(lambda: bool(col.history), timeout=1.0)
        record = col.history[0]
        assert not record.written
        assert col.pending_events == []
        assert any("rejected" in e for e in record.errors)
        await col.close()

    run(main())


def test_close_collects_ended_windows_and_cancels_open_ones(tmp_path: Path) -> None:
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink, after=60.0, settle=60.0)
        now = time.time_ns()
        col.submit(trigger("ENDED", now - 61 * NS))  # window ended, settle grace running for a minute
        col.submit(trigger("OPEN", now))  # window open for another minute
        await asyncio.sleep(0.05)
        assert source.calls == []
        # Waiting for OPEN's window or ENDED's settle would take a minute: 20 s tells them apart.
        await asyncio.wait_for(col.close(), 20.0)
        by_base = {r.trigger.base: r for r in col.history}
        assert by_base["ENDED"].status == COLLECTED
        assert by_base["ENDED"].written
        assert by_base["OPEN"].status == NOT_COLLECTED
        assert by_base["OPEN"].errors == ["stopped before its window closed"]
        assert [c[0] for c in source.calls] == ["ENDED"]
        assert (col.stats.collected, col.stats.not_collected) == (1, 1)
        assert not col.submit(trigger("LATE", now))

    run(main())


def test_close_gives_up_on_a_hanging_collection(tmp_path: Path) -> None:
    source, sink = FakeSource(delay=60.0), FakeSink()

    async def main() -> None:
        col = collector(tmp_path, source, sink)
        col.submit(trigger("SLOW", time.time_ns() - NS))
        await until(lambda: bool(source.calls), timeout=1.0)
        await col.close(timeout=0.1)
        record = col.history[0]
        assert record.status == NOT_COLLECTED
        assert record.errors == ["stopped while collecting"]

    run(main())


def test_failed_query_and_concurrent_collections(tmp_path: Path) -> None:
    async def main() -> None:
        failing = collector(tmp_path, FakeSource(fail=True), FakeSink())
        failing.submit(trigger("FAIL", time.time_ns() - NS))
        await until(lambda: bool(failing.history), timeout=1.0)
        assert failing.history[0].status == FAILED
        assert "both sources down" in failing.history[0].errors[0]
        await failing.close()

        gate = asyncio.Event()
        source, sink = FakeSource(gate=gate), FakeSink()
        col = collector(tmp_path, source, sink)
        past = time.time_ns() - NS
        for base in ("ONE", "TWO", "THREE"):
            col.submit(trigger(base, past))
        # All three queries in flight while none can finish: overlapping, not one after another.
        await until(lambda: len(source.calls) == 3, timeout=10.0)
        assert col.history == []
        gate.set()
        await until(lambda: len(col.history) == 3, timeout=10.0)
        assert sorted(e.symbol for e in sink.events) == ["ONE", "THREE", "TWO"]
        await col.close()

    run(main())


# ---- the production sink ----------------------------------------------------------------------
def test_listing_writer_sink_keeps_the_event_until_questdb_answers(tmp_path: Path) -> None:
    """A real ``ListingWriter`` against a loopback port: refused → pending; an ILP endpoint appears → stored."""
    port = free_port()
    received: list[bytes] = []

    async def ilp_write(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    async def main() -> None:
        conf = f"http::addr=127.0.0.1:{port};retry_timeout=0;request_timeout=2000;"
        writer = ListingWriter(conf, "listing_events", background_flush=False).open()
        try:
            col = collector(tmp_path, FakeSource(), ListingWriterSink(writer))
            col.submit(trigger("AAA", time.time_ns() - NS))
            await until(lambda: bool(col.history), timeout=2.0)
            assert [e.symbol for e in col.pending_events] == ["AAA"]

            app = web.Application()
            app.router.add_post("/write", ilp_write)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                col.submit(trigger("BBB", time.time_ns() - NS))
                await until(lambda: len(col.history) == 2, timeout=2.0)
                assert col.pending_events == []
                assert all(r.written for r in col.history)
                await col.close()
            finally:
                await runner.cleanup()
        finally:
            writer.close(flush=False)
        body = b"".join(received)
        assert b"listing_events,symbol=AAA" in body
        assert b"listing_events,symbol=BBB" in body
        assert b"collected_trades=3i" in body

    run(main())


# ---- the detector end to end ------------------------------------------------------------------
def test_detector_against_the_replay_server(replay: ReplayProcess, tmp_path: Path) -> None:
    settings = Settings(
        connectors=ConnectorSettings(base_url=replay.base_url),
        hybrid=HybridSettings(
            listing_sources="upbit_spot",
            listing_poll_interval=0.05,
            window_before=0.2,
            window_after=0.2,
            window_settle=0.1,
            export_dir=str(tmp_path / "listings"),
        ),
    )
    source, sink = FakeSource(), FakeSink()

    async def main() -> None:
        detector = ListingDetector.from_settings(settings, source, sink)
        async with detector, aiohttp.ClientSession() as session, ReplayControl(replay.base_url, session) as control:
            await until(lambda: detector.watcher.baselined)
            assert detector.stats.running
            await control.list_instrument("upbit_spot", "DETCOIN", "KRW")
            await until(lambda: bool(detector.history))
            stats = detector.stats
        record = detector.history[0]
        assert (record.trigger.base, record.trigger.source, record.status, record.written) == (
            "DETCOIN",
            "upbit_spot",
            COLLECTED,
            True,
        )
        assert [e.symbol for e in sink.events] == ["DETCOIN"]
        assert record.export is not None
        assert record.export.directory.parent == tmp_path / "listings"
        assert stats.watcher.triggers == 1
        assert stats.collector.collected == 1
        assert not detector.stats.running

    run(main())
