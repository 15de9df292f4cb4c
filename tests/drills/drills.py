"""The fault drills of the zero-loss issue, end to end: real ``pumpwatch run`` processes against the
replay server and a private QuestDB, real filesystems, real signals. Each returns a ``DrillResult``
(generated / stored / distinct plus named checks); ``tests/drills/test_drills.py`` asserts them,
``scripts/fault-drills.sh`` prints them as a table.

Every drill is bounded in time and talks to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from questdb_ingest.connectors.pipeline import SenderSink, WriterEvents
from questdb_ingest.connectors.registry import select
from questdb_ingest.connectors.run import run_feeds
from questdb_ingest.sender import ShardedSender

from .harness import (
    CONNECTORS,
    DrillResult,
    PrivateQuestDB,
    Run,
    connections_total,
    counts,
    delivered,
    gap_totals,
    immutable,
    replay,
    replay_stats,
    report,
    spool_rows,
    tmpfs,
    wait_for,
)

OUTAGE_S = float(os.environ.get("PUMPWATCH_DRILL_OUTAGE_S", "180"))
RECOVER = ["run", "--source", "synthetic", "--rate", "0", "--burst-rate", "0", "--workers", "1"]


def _recover(qdb: PrivateQuestDB, env: dict[str, str], result: DrillResult, seconds: float = 12) -> None:
    """A second ``run`` with nothing new to capture: replays whatever the spool holds."""
    rc = Run(env, [*RECOVER, "--seconds", str(seconds)]).wait(seconds + 90)
    result.check("recovery run exits 0", rc == 0, f"exit code {rc}")


def drill_dead_sender(qdb: PrivateQuestDB, work: Path) -> DrillResult:
    """1. The spool's disk fails under a running capture while QuestDB is down (its files turn
    immutable: every write fails with EPERM): the sender dies; intake must stop at once (no
    reconnect), the exit code must be 4, and the count of trades not stored must be exact."""
    result = DrillResult("1 sender dies (spool disk fails)", 0, 0, 0)
    settings = qdb.scoped("d1_", work / "state")
    qdb.stop()
    spool = Path(settings.sender.spool_dir)
    with replay(rate=2000) as server:
        env = qdb.env(settings)
        out = work / "run.json"
        run = Run(env, ["run", "--replay-url", server.base_url, "--connectors", CONNECTORS, "--workers", "2",
                        "--seconds", "60", "--json", str(out)])  # fmt: skip
        wait_for(lambda: spool_rows(spool) > 2000, 30)
        time.sleep(2)
        immutable(spool, True)
        try:
            faulted = delivered(replay_stats(server.base_url))
            rc = run.wait(90)
            stopped_after = run.elapsed
            at_exit = replay_stats(server.base_url)
            time.sleep(3)
            later = replay_stats(server.base_url)
        finally:
            immutable(spool, False)
        outcome = report(out).get("outcome", {})
        result.generated = delivered(later)
        result.reported_lost = int(outcome.get("lost", -1))
        result.check("exit code 4 (trades not stored)", rc == 4, f"exit code {rc} after {stopped_after:.0f}s")
        result.check("stopped well before --seconds", rc is not None and stopped_after < 50, f"{stopped_after:.0f}s")
        result.check(
            "intake stopped: nothing delivered after exit, no reconnect",
            delivered(later) == delivered(at_exit) and connections_total(later) == connections_total(at_exit),
            f"delivered {delivered(at_exit):,} → {delivered(later):,}; connections "
            f"{connections_total(at_exit)} → {connections_total(later)}",
        )
        result.check(
            "little captured after the fault",
            delivered(at_exit) - faulted < 20_000,
            f"{delivered(at_exit) - faulted:,} trades delivered between the fault and the exit",
        )
        message = run.output()
        result.check("the message names the count", f"{result.reported_lost:,} trade(s) were received" in message)
        qdb.start()
        _recover(qdb, env, result)
    result.stored, result.distinct = counts(settings)
    received = int(outcome.get("received", -1))
    result.check(
        "books: received = stored + reported lost",
        received == result.stored + result.reported_lost,
        f"received {received:,}, stored {result.stored:,}, lost {result.reported_lost:,}",
    )
    result.check("stored exactly once", result.stored == result.distinct)
    return result


def drill_full_disk(qdb: PrivateQuestDB, work: Path) -> DrillResult:
    """1b. The spool's filesystem fills up while QuestDB is down: the sender holds what it cannot
    spool and slows the feeds (alarm) — it does not die; when QuestDB returns everything received
    is stored, exactly once."""
    total = 40_000
    result = DrillResult("1b spool fs full, QuestDB down", 0, 0, 0)
    settings = qdb.scoped("d1b_", work / "state")
    qdb.stop()
    spool = work / "spoolfs"
    with tmpfs(spool, "1m"), replay(rate=2000, max_trades=total) as server:
        env = qdb.env(settings) | {"PUMPWATCH_SENDER_SPOOL_DIR": str(spool)}
        out = work / "run.json"
        run = Run(env, ["run", "--replay-url", server.base_url, "--connectors", CONNECTORS, "--workers", "1",
                        "--json", str(out)])  # fmt: skip
        wait_for(lambda: delivered(replay_stats(server.base_url)) >= 30_000, 40)
        free = os.statvfs(spool)
        result.check(
            "the spool filled its filesystem", free.f_bavail * free.f_frsize < 200_000, f"{free.f_bavail} blocks free"
        )
        result.check("still running with the disk full", run.proc.poll() is None)
        qdb.start()
        wait_for(lambda: replay_stats(server.base_url)["generated_total"] >= total, 90)
        time.sleep(2)
        wait_for(lambda: spool_rows(spool) == 0, 60)
        run.signal(signal.SIGTERM)
        rc = run.wait(90)
        result.generated = delivered(replay_stats(server.base_url))
    result.check("exit code 0", rc == 0, f"exit code {rc}")
    outcome = report(out).get("outcome", {})
    result.reported_lost = int(outcome.get("lost", -1))
    result.stored, result.distinct = counts(settings)
    received = int(outcome.get("received", -1))
    result.check("every received trade stored", received == result.stored, f"received {received:,}")
    result.check("stored exactly once", result.stored == result.distinct)
    result.check("nothing reported lost", result.reported_lost == 0)
    return result


def drill_outage(qdb: PrivateQuestDB, work: Path, seconds: float = OUTAGE_S) -> DrillResult:
    """2. ``run`` at 1,000 trades/s with QuestDB down for ``seconds``: once the outage is detected
    (every worker has spooled), rows held only in memory — delivered by the venue, not yet on disk —
    stay under one flush interval's worth at every sample; a SIGKILL of the whole process group at
    the end loses nothing: the next start stores every trade."""
    rate, workers = 1000.0, 2
    total = int(rate * seconds)
    result = DrillResult(f"2 QuestDB down {seconds:.0f}s under run", 0, 0, 0)
    settings = qdb.scoped("d2_", work / "state")
    bound = int(rate * settings.ingest.flush_interval)
    qdb.stop()
    spool = Path(settings.sender.spool_dir)
    with replay(rate=rate, max_trades=total) as server:
        env = qdb.env(settings)
        run = Run(env, ["run", "--replay-url", server.base_url, "--connectors", CONNECTORS, "--workers", str(workers)])
        onset, worst, samples, worst_at = 0, 0, 0, 0
        deadline = time.monotonic() + seconds + 60
        while time.monotonic() < deadline:
            stats = replay_stats(server.base_url)
            sent = delivered(stats)
            on_disk = spool_rows(spool)  # read after the counter: never flatters the measure
            detected = len({p.parent for p in spool.glob("shard-*/*.seg")}) == workers
            if detected:
                if sent - on_disk > worst:
                    worst, worst_at = sent - on_disk, samples
                samples += 1
            else:
                onset = max(onset, sent - on_disk)
            if stats["generated_total"] >= total and sent - on_disk == 0:
                break
            time.sleep(1.0)
        time.sleep(2)
        result.generated = delivered(replay_stats(server.base_url))
        on_disk = spool_rows(spool)
        result.check(
            f"rows only in memory ≤ {bound:,} (one flush interval) at every sample",
            samples > 0 and max(worst, onset) <= bound,
            f"worst {worst:,} over {samples} samples once every worker spooled (sample {worst_at}); {onset:,} before",
        )
        result.check(
            "every delivered trade on disk before the kill",
            on_disk == result.generated,
            f"{on_disk:,} spooled of {result.generated:,}",
        )
        run.kill_group()
    qdb.start()
    _recover(qdb, env, result, seconds=15)  # a draining worker replays the spool once more at the end
    result.stored, result.distinct = counts(settings)
    result.check("every trade recovered after SIGKILL", result.stored == result.generated)
    result.check("stored exactly once", result.stored == result.distinct)
    return result


def drill_fewer_workers(qdb: PrivateQuestDB, work: Path) -> DrillResult:
    """3. Spool written by 3 workers (QuestDB down), next start with 1 worker from another working
    directory: every shard directory is replayed, nothing stays behind."""
    total = 20_000
    result = DrillResult("3 restart with fewer workers", 0, 0, 0)
    settings = qdb.scoped("d3_", work / "state")
    qdb.stop()
    spool = Path(settings.sender.spool_dir)
    (work / "a").mkdir()
    (work / "b").mkdir()
    with replay(rate=2000, max_trades=total) as server:
        env = qdb.env(settings)
        out = work / "run.json"
        run = Run(env, ["run", "--replay-url", server.base_url, "--workers", "3", "--json", str(out)], cwd=work / "a")
        wait_for(lambda: replay_stats(server.base_url)["generated_total"] >= total, 60)
        wait_for(lambda: spool_rows(spool) >= delivered(replay_stats(server.base_url)), 30)
        run.signal(signal.SIGTERM)
        rc = run.wait(90)
        result.generated = delivered(replay_stats(server.base_url))
    result.check("first run exits 0", rc == 0, f"exit code {rc}")
    shards = sorted(p.name for p in spool.glob("shard-*") if any(p.glob("*.seg")))
    result.check("three shards spooled", shards == ["shard-0", "shard-1", "shard-2"], ", ".join(shards))
    qdb.start()
    rc = Run(env, [*RECOVER, "--seconds", "12"], cwd=work / "b").wait(120)
    result.check("second run (1 worker, other cwd) exits 0", rc == 0, f"exit code {rc}")
    left = sorted(str(p.relative_to(spool)) for p in spool.glob("shard-*/*.seg"))
    result.check("no segment left behind", not left, ", ".join(left))
    result.stored, result.distinct = counts(settings)
    received = int(report(out).get("outcome", {}).get("received", -1))
    result.check("every received trade stored", result.stored == received, f"received {received:,}")
    result.check("stored exactly once", result.stored == result.distinct)
    return result


def drill_crash_loop(qdb: PrivateQuestDB, work: Path) -> DrillResult:
    """4. Workers that cannot start: a conf every worker would refuse fails at start-up (exit 2, the
    key named); a spool that breaks every worker's recovery ends in a typed error with the last
    traceback, by itself or on SIGTERM, within a bound."""
    result = DrillResult("4 worker crash loop", 0, 0, 0)
    settings = qdb.scoped("d4_", work / "state")
    env = qdb.env(settings)
    bad_conf = f"http::addr=127.0.0.1:{settings.questdb.http_port};auto_flush=on;"
    for args in (["run", "--source", "synthetic", "--seconds", "30"], ["load", "--duration", "30"]):
        run = Run(env | {"PUMPWATCH_INGEST_CLIENT_CONF": bad_conf}, args)
        rc = run.wait(60)
        text = run.output()
        result.check(f"auto_flush=on: {args[0]} exits 2 at start-up", rc == 2 and run.elapsed < 30, f"exit code {rc}")
        result.check(
            f"{args[0]}: the key is named, no traceback", "ingest.client_conf" in text and "Traceback" not in text
        )

    broken = Path(settings.sender.spool_dir) / "shard-0" / "00000000000000000001.seg"
    broken.mkdir(parents=True)  # a directory where a segment file should be: recovery raises IsADirectoryError
    with replay(rate=500) as server:
        run = Run(env, ["run", "--replay-url", server.base_url, "--connectors", CONNECTORS, "--workers", "1",
                        "--seconds", "120"])  # fmt: skip
        rc = run.wait(90)
        text = run.output()
        result.check(
            "crash loop: refuses to capture, with a typed error", rc == 1 and run.elapsed < 60, f"exit code {rc}"
        )
        result.check(
            "the message says why", "failed 5 starts in a row" in text and "IsADirectoryError" in text, text[-300:]
        )
        result.check("every worker crash is logged once, not a traceback flood", text.count("Traceback") <= 1)

        endless = env | {"PUMPWATCH_SENDER_MAX_RESTARTS": "1000", "PUMPWATCH_SENDER_DRAIN_TIMEOUT": "10"}
        run = Run(endless, ["run", "--replay-url", server.base_url, "--connectors", CONNECTORS, "--workers", "1"])
        time.sleep(8)
        run.signal(signal.SIGTERM)
        signalled = time.monotonic()
        rc = run.wait(60)
        took = time.monotonic() - signalled
        result.generated = delivered(replay_stats(server.base_url))
    text = run.output()
    result.check("SIGTERM during the loop exits within the bound", rc is not None and took < 30, f"{took:.1f}s")
    result.check(
        "cleanly: nothing lost, or the exact count (exit 4)",
        "Traceback" not in text and (rc == 0 or (rc == 4 and "were received but not stored" in text)),
        f"exit code {rc}",
    )
    broken.rmdir()
    result.stored, result.distinct = counts(settings)
    result.check("nothing stored twice", result.stored == result.distinct)
    return result


def drill_hung_questdb(qdb: PrivateQuestDB, work: Path, frozen_s: float = 20.0) -> DrillResult:
    """5. QuestDB frozen (SIGSTOP: connections accepted, nothing answered) under the feeds: the event
    loop keeps answering and intake keeps the offered rate; after SIGCONT everything is stored."""
    rate = 2000.0
    result = DrillResult(f"5 QuestDB frozen {frozen_s:.0f}s", 0, 0, 0)
    base = qdb.scoped("d5_", work / "state")
    settings = replace(
        base,
        ingest=replace(base.ingest, request_timeout_ms=5000),
        connectors=replace(base.connectors, health_interval=1.0, reconnect_initial=0.2, reconnect_max=1.0),
    )
    worst_loop, worst_lag = 0.0, 0
    with replay(rate=rate) as server:
        settings = replace(settings, connectors=replace(settings.connectors, base_url=server.base_url))
        with ShardedSender(settings, workers=2) as sender:
            events = WriterEvents(settings)
            stop = asyncio.Event()
            box: dict[str, object] = {}

            async def capture() -> None:
                loop = asyncio.get_running_loop()
                box["loop"] = loop
                box["pipeline"] = await run_feeds(
                    settings, select(CONNECTORS), sink=SenderSink(sender), events=events, duration=None, stop=stop,
                    on_tick=lambda p, _e: box.setdefault("live", p),
                )  # fmt: skip

            def sample(until: float, during: Callable[[float, int], None]) -> None:
                loop = box["loop"]
                while time.monotonic() < until:
                    answered = threading.Event()
                    asked = time.monotonic()
                    loop.call_soon_threadsafe(answered.set)  # type: ignore[attr-defined]
                    answered.wait(30)
                    latency = time.monotonic() - asked
                    feeds = box["live"].feeds  # type: ignore[attr-defined]
                    lag = delivered(replay_stats(server.base_url)) - sum(f.stats.trades for f in feeds)
                    during(latency, lag)
                    time.sleep(0.2)

            def scenario() -> None:
                nonlocal worst_loop, worst_lag
                wait_for(lambda: "live" in box, 30)
                time.sleep(8)
                qdb.pause()
                try:

                    def note(latency: float, lag: int) -> None:
                        nonlocal worst_loop, worst_lag
                        worst_loop, worst_lag = max(worst_loop, latency), max(worst_lag, lag)

                    sample(time.monotonic() + frozen_s, note)
                finally:
                    qdb.resume()
                time.sleep(5)
                box["loop"].call_soon_threadsafe(stop.set)  # type: ignore[attr-defined]

            driver = threading.Thread(target=scenario)
            driver.start()
            asyncio.run(capture())
            driver.join()
            assert sender.flush(timeout=120)  # every row confirmed or spooled
        events.close(timeout=30)
        result.generated = delivered(replay_stats(server.base_url))
    # Rows the sender had spooled and not yet replayed when it closed are on disk, not lost: the
    # next sender replays them first (as the next `run` would). Counting before that would make
    # the check depend on how fast this box replayed after SIGCONT.
    spool = Path(settings.sender.spool_dir)
    left = spool_rows(spool)
    if left:
        with ShardedSender(settings, workers=2) as again:
            wait_for(lambda: spool_rows(spool) == 0, 120)
            assert again.flush(timeout=120)
        result.notes.append(f"{left:,} rows still spooled at close, replayed by the next sender")
    pipeline = box["pipeline"]
    received = sum(f.stats.trades for f in pipeline.feeds)  # type: ignore[attr-defined]
    result.check("event loop answered within 1 s throughout", worst_loop < 1.0, f"worst {worst_loop * 1000:,.0f} ms")
    result.check(
        "intake kept the offered rate (lag ≤ 1 s of trades)", worst_lag <= rate, f"worst lag {worst_lag:,} trades"
    )
    result.stored, result.distinct = counts(settings)
    gaps, refetched = gap_totals(settings)
    result.check(
        "every received trade stored",
        result.stored == received,
        f"received {received:,}, the replay server delivered {result.generated:,}; {gaps} gap(s), "
        f"{refetched:,} trade(s) fetched again over REST",
    )
    result.check("stored exactly once", result.stored == result.distinct)
    return result


def drill_late_questdb(qdb: PrivateQuestDB, work: Path) -> DrillResult:
    """6. QuestDB comes up 20 s after ``run`` started: run starts anyway, spools, and stores every
    trade exactly once when QuestDB answers."""
    total = 25_000
    result = DrillResult("6 QuestDB starts 20s after run", 0, 0, 0)
    settings = qdb.scoped("d6_", work / "state")
    qdb.stop()
    with replay(rate=1000, max_trades=total) as server:
        env = qdb.env(settings)
        out = work / "run.json"
        run = Run(env, ["run", "--replay-url", server.base_url, "--connectors", CONNECTORS, "--seconds", "35",
                        "--json", str(out)])  # fmt: skip
        time.sleep(20)
        result.check("running while QuestDB is down", run.proc.poll() is None, run.output()[-300:])
        qdb.start()
        rc = run.wait(120)
        result.generated = delivered(replay_stats(server.base_url))
    result.check("exit code 0", rc == 0, f"exit code {rc}: {run.output()[-300:]}")
    result.stored, result.distinct = counts(settings)
    received = int(report(out).get("outcome", {}).get("received", -1))
    stored_all = result.stored == result.generated == received
    result.check("every delivered trade stored", stored_all, f"received {received:,}")
    result.check("stored exactly once", result.stored == result.distinct)
    return result


DRILLS: dict[str, Callable[[PrivateQuestDB, Path], DrillResult]] = {
    "1": drill_dead_sender,
    "1b": drill_full_disk,
    "2": drill_outage,
    "3": drill_fewer_workers,
    "4": drill_crash_loop,
    "5": drill_hung_questdb,
    "6": drill_late_questdb,
}
