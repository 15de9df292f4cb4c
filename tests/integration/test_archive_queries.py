"""store.archive, ``pumpwatch query bars|ticks|gaps`` and ``/api/archive/*`` against the real QuestDB.

One module-wide namespace holds known rows in the four archive tables of migration 006 and the
live ``gaps`` table: swing 10m bars (two sessions at the newest bar, a look-alike symbol), three
hours of 1-minute bars starting off the hour (so aggregated buckets have a partial first hour),
half-second scalp ticks at µs times, and gaps in both ledgers around ``now``. Every expectation
is computed from the written rows, the aggregates with numpy.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from questdb_ingest.api.process import ApiServer
from questdb_ingest.cli.query import query
from questdb_ingest.config import Settings
from questdb_ingest.connectors.replay_process import free_port
from questdb_ingest.store.archive import (
    Bar,
    GapCounts,
    MinuteBar,
    SwingBar,
    bar_records,
    count_gaps,
    gap_records,
    get_1m_bars,
    get_bars_in_range,
    get_critical_gaps,
    get_latest_bars,
    get_latest_ticks,
    get_ticks_in_range,
    tick_records,
)
from questdb_ingest.store.market import QueryArgumentError
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import wait_visible
from questdb_ingest.timefmt import iso_ns

from ..conftest import QuestDB, scoped_settings

pytestmark = pytest.mark.questdb

US = 1000
S = 10**9
MINUTE = 60 * S
HOUR = 60 * MINUTE
DAY = 24 * HOUR
STOCK, COIN = "005930", "BTC-USDT"


@dataclass(frozen=True)
class Archive:
    settings: Settings
    swing: list[tuple[int, str, str, float]]  # (bar_time_ns, symbol, session, open)
    h0: int  # the hour the 1-minute bars start in (they start at h0 + 7 min)
    minutes: dict[str, np.ndarray[Any, Any]]  # the 1-minute bars of COIN, column-wise
    ticks: np.ndarray[Any, Any]  # event_time_ns of COIN's ticks, ascending
    now: int  # the gaps' reference time (a whole second)
    gaps: list[tuple[str, int, int, str]]  # (source, start_ns, seconds, scope)


def _insert(conn: psycopg.Connection[Any], table: str, columns: str, rows: Sequence[Sequence[Any]], casts: str) -> None:
    """Rows over PGWire with bound parameters (``casts``: the VALUES placeholders, e.g. µs ``%s::timestamp``)."""
    with conn.cursor() as cur:
        cur.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({casts})', rows)
    wait_visible(conn, table)


def _seed(settings: Settings) -> Archive:
    rng = np.random.default_rng(7)
    day0 = (time.time_ns() // DAY - 3) * DAY  # three days ago (inside every TTL), midnight UTC
    with connect(settings) as conn:
        migrate(conn, settings)
        # -- swing 10m bars: 12 of STOCK (session s1), a second session at the newest, a look-alike
        swing = [(day0 + k * 10 * MINUTE, STOCK, "s1", 100.0 + k) for k in range(12)]
        swing += [(day0 + 11 * 10 * MINUTE, STOCK, "s2", 500.0), (day0 + 12 * 10 * MINUTE, "0059300", "s1", 9.0)]
        _insert(
            conn, settings.table("swing_bars_10m"),
            "bar_time, symbol, session_id, dataset, market, source, open, high, low, close, volume, bid_price, "
            "ask_price, mitigation_level, quality_flag, schema_version, source_file",
            [[t // US, sym, ses, "swing", "krx", "kis", o, o + 2, o - 1, o + 1, 1000 + i, o - 0.5, o + 0.5, 0, "ok",
              "v1", "swing.jsonl"] for i, (t, sym, ses, o) in enumerate(swing)],
            "%s::timestamp" + ", %s" * 16,
        )  # fmt: skip
        # -- 1-minute bars of COIN: 180 minutes from h0 + 7 min, and a look-alike symbol in between
        h0 = day0 + 10 * HOUR
        n = 180
        times = h0 + (7 + np.arange(n)) * MINUTE
        opens = rng.integers(1000, 2000, n) / 4
        minutes = {
            "bar_time": times,
            "open": opens,
            "high": opens + rng.integers(0, 40, n) / 4,
            "low": opens - rng.integers(0, 40, n) / 4,
            "close": opens + rng.integers(-20, 20, n) / 4,
            "volume": rng.integers(0, 10_000, n),
            "ticks": rng.integers(60, 121, n),
        }
        rows = [
            [int(minutes["bar_time"][i]) // US, COIN, "s1", *(float(minutes[c][i]) for c in ("open", "high", "low",
             "close")), int(minutes["volume"][i]), int(minutes["ticks"][i]), int(minutes["ticks"][i]) / 120, 0,
             "low_coverage" if minutes["ticks"][i] < 96 else "ok", "v1"]
            for i in range(n)
        ]  # fmt: skip
        rows.append([int(times[50]) // US, "btc-usdt", "s1", 1.0, 1.0, 1.0, 1.0, 1, 1, 0.01, 0, "low_coverage", "v1"])
        _insert(
            conn, settings.table("scalp_1m_bars"),
            "bar_time, symbol, session_id, open, high, low, close, volume, ticks, coverage_ratio, mitigation_level, "
            "quality_flag, schema_version",
            rows, "%s::timestamp" + ", %s" * 12,
        )  # fmt: skip
        # -- scalp ticks of COIN: 40 at 500 ms + 123 µs steps, one look-alike after them
        ticks = h0 + 30 * MINUTE + np.arange(40) * (500_000 + 123) * US
        tick_rows = [
            [int(t) // US, int(t) // US - 50, COIN, 10.0 + i, 10.5 + i, i, 2 * i, 10.25 + i, 100 + i, "s1", 0, "ok",
             "v1", "ticks.jsonl"] for i, t in enumerate(ticks)
        ]  # fmt: skip
        tick_rows.append([int(ticks[-1]) // US + 1, int(ticks[-1]) // US, "btc-usdt", 1, 1, 1, 1, 1, 1, "s1", 0, "ok",
                          "v1", "ticks.jsonl"])  # fmt: skip
        _insert(
            conn, settings.table("scalp_ticks"),
            "event_time, ts, symbol, bid_price, ask_price, bid_size, ask_size, last_price, volume, session_id, "
            "mitigation_level, quality_flag, schema_version, source_file",
            tick_rows, "%s::timestamp, %s::timestamp" + ", %s" * 12,
        )  # fmt: skip
        # -- gaps: four in the archive ledger, three in the live one ("kis" is a scope of both)
        now = time.time_ns() // S * S
        gaps = [
            ("archive", now - 2 * HOUR, 30, "kis"), ("archive", now - 3 * HOUR, 5, "kis"),
            ("archive", now - 5 * HOUR, 120, "upbit"), ("archive", now - 3 * DAY, 400, "kis"),
            ("live", now - 1 * HOUR, 10, "bybit_spot#0"), ("live", now - 4 * HOUR, 90, "kis"),
            ("live", now - 2 * DAY, 100, "okx_spot#1"),
        ]  # fmt: skip
        _insert(
            conn, settings.table("scalp_gaps"),
            "gap_start_ts, gap_end_ts, gap_seconds, ts, scope, reason, session_id, schema_version, source_file",
            [[t // US, (t + sec * S) // US, sec, (t + sec * S) // US, scope, "ws_drop", "s1", "v1", "gaps.jsonl"]
             for src, t, sec, scope in gaps if src == "archive"],
            "%s::timestamp, %s::timestamp, %s, %s::timestamp, %s, %s, %s, %s, %s",
        )  # fmt: skip
        _insert(
            conn, settings.table("gaps"),
            "gap_start_ts, gap_end_ts, gap_seconds, gap_ms, exchange, market_type, scope, reason, filled, "
            "backfilled_trades, symbols",
            [[t // US, (t + sec * S) // US, sec, sec * 1000, scope.split("_")[0], "spot", scope, "disconnect", True, 3,
              2] for src, t, sec, scope in gaps if src == "live"],
            "%s::timestamp, %s::timestamp" + ", %s" * 9,
        )  # fmt: skip
    return Archive(settings, swing, h0, minutes, ticks, now, gaps)


@pytest.fixture(scope="module")
def arch(qdb_session: QuestDB) -> Archive:
    return _seed(scoped_settings(qdb_session.new_prefix()))


def _conn(arch: Archive) -> psycopg.Connection[Any]:
    return connect(arch.settings)


# --------------------------------------------------------------------------- swing bars
def test_latest_bars_newest_first_with_limit_and_exact_symbol(arch: Archive) -> None:
    with _conn(arch) as conn:
        top = get_latest_bars(conn, arch.settings, STOCK, limit=3)
        every = get_latest_bars(conn, arch.settings, STOCK, limit=100)
        assert get_latest_bars(conn, arch.settings, "00593", limit=5) == []
    t11, t10 = arch.swing[11][0], arch.swing[10][0]
    assert [(b.bar_time_ns, b.session_id, b.open) for b in top] == [(t11, "s1", 111.0), (t11, "s2", 500.0),
                                                                     (t10, "s1", 110.0)]  # fmt: skip
    assert len(every) == 13 and {b.symbol for b in every} == {STOCK}  # never the look-alike 0059300
    first = top[0]
    assert isinstance(first, SwingBar)
    assert (first.high, first.low, first.close, first.volume, first.bid_price, first.ask_price) == (
        113.0, 110.0, 112.0, 1011, 110.5, 111.5,
    )  # fmt: skip
    assert (first.dataset, first.market, first.source, first.quality_flag, first.source_file) == (
        "swing", "krx", "kis", "ok", "swing.jsonl",
    )  # fmt: skip


def test_swing_bars_in_range_start_inclusive_end_exclusive(arch: Archive) -> None:
    t = [row[0] for row in arch.swing]
    with _conn(arch) as conn:
        got = get_bars_in_range(conn, arch.settings, STOCK, t[2], t[5], "10m")
        late = get_bars_in_range(conn, arch.settings, STOCK, t[2] + 1, t[5] + 1)  # 10m is the default
        capped = get_bars_in_range(conn, arch.settings, STOCK, t[0], t[11] + 1, limit=2)
        every = get_bars_in_range(conn, arch.settings, STOCK, t[0], t[-1] + 1)
    assert all(isinstance(b, SwingBar) for b in got)
    assert [b.bar_time_ns for b in got] == t[2:5]
    assert [b.bar_time_ns for b in late] == t[3:6]  # a bound 1 ns past a bar's start excludes / includes it
    assert [b.bar_time_ns for b in capped] == t[0:2]
    # oldest first, sessions in order at the same bar; never the look-alike 0059300 at t[12]
    assert [(b.bar_time_ns, b.session_id) for b in every if isinstance(b, SwingBar)] == [(x, "s1") for x in t[:12]] + [
        (t[11], "s2")
    ]


# --------------------------------------------------------------------------- 1-minute and aggregated bars
def test_1m_bars_bounds_and_quality(arch: Archive) -> None:
    m = arch.minutes
    t = m["bar_time"]
    with _conn(arch) as conn:
        got = get_1m_bars(conn, arch.settings, COIN, int(t[10]), int(t[20]))
        via_range = get_bars_in_range(conn, arch.settings, COIN, int(t[10]), int(t[20]), "1m")
        narrow = get_1m_bars(conn, arch.settings, COIN, int(t[10]) + 1, int(t[20]) + 1)
    assert [b.bar_time_ns for b in got] == t[10:20].tolist()
    assert via_range == got and all(isinstance(b, MinuteBar) for b in via_range)
    assert [b.bar_time_ns for b in narrow] == t[11:21].tolist()
    assert [b.ticks for b in got] == m["ticks"][10:20].tolist()
    assert [b.coverage_ratio for b in got] == (m["ticks"][10:20] / 120).tolist()
    assert [b.quality_flag for b in got] == ["low_coverage" if n < 96 else "ok" for n in m["ticks"][10:20]]
    assert {b.symbol for b in got} == {COIN}  # the look-alike btc-usdt at t[50] is elsewhere anyway


def _expected_buckets(arch: Archive, start: int, end: int, step: int) -> list[tuple[Any, ...]]:
    """The aggregate by hand: whole buckets whose start is in [start, end), from the 1-minute bars."""
    m = arch.minutes
    first, stop = -(-start // step) * step, -(-end // step) * step
    inside = (m["bar_time"] >= first) & (m["bar_time"] < stop)
    keys = m["bar_time"][inside] // step * step
    out = []
    for key in np.unique(keys):
        sel = np.flatnonzero(inside)[keys == key]
        out.append((int(key), float(m["open"][sel[0]]), float(m["high"][sel].max()), float(m["low"][sel].min()),
                    float(m["close"][sel[-1]]), int(m["volume"][sel].sum()), int(m["ticks"][sel].sum())))  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("interval", "step", "start_off", "end_off"),
    [
        ("1h", HOUR, 0, 4 * HOUR),  # a partial first hour (bars from :07) and a partial last one
        ("1h", HOUR, 30 * MINUTE, 150 * MINUTE),  # starts mid-hour: buckets h0+1h and h0+2h, both whole
        ("15m", 15 * MINUTE, 7 * MINUTE + 1, 61 * MINUTE),
        ("1d", DAY, -10 * HOUR, 14 * HOUR),
    ],
)
def test_aggregated_interval_equals_numpy(
    arch: Archive, interval: str, step: int, start_off: int, end_off: int
) -> None:
    start, end = arch.h0 + start_off, arch.h0 + end_off
    with _conn(arch) as conn:
        got = get_bars_in_range(conn, arch.settings, COIN, start, end, interval)
    bars = [b for b in got if isinstance(b, Bar) and b.interval == interval and b.symbol == COIN]
    assert len(bars) == len(got)
    want = _expected_buckets(arch, start, end, step)
    assert want, "the case selects no bucket"
    assert [(b.bar_time_ns, b.open, b.high, b.low, b.close, b.volume, b.ticks) for b in bars] == want
    assert all(start <= b.bar_time_ns < end for b in got)


def test_hour_bars_by_hand(arch: Archive) -> None:
    """The second hour of h0 is 60 whole minutes: its bar, written out."""
    m = arch.minutes
    with _conn(arch) as conn:
        (bar,) = get_bars_in_range(conn, arch.settings, COIN, arch.h0 + HOUR, arch.h0 + 2 * HOUR, "1h")
    i = slice(53, 113)  # minutes 60..119 of the hour are bars 53..112 (the first is at minute 7)
    assert isinstance(bar, Bar)
    assert bar.bar_time_ns == arch.h0 + HOUR == int(m["bar_time"][53])
    assert (bar.open, bar.close) == (float(m["open"][53]), float(m["close"][112]))
    assert (bar.high, bar.low) == (float(m["high"][i].max()), float(m["low"][i].min()))
    assert (bar.volume, bar.ticks) == (int(m["volume"][i].sum()), int(m["ticks"][i].sum()))


# --------------------------------------------------------------------------- ticks
def test_latest_ticks_and_range(arch: Archive) -> None:
    t = arch.ticks
    with _conn(arch) as conn:
        latest = get_latest_ticks(conn, arch.settings, COIN, limit=5)
        got = get_ticks_in_range(conn, arch.settings, COIN, int(t[10]), int(t[20]))
        narrow = get_ticks_in_range(conn, arch.settings, COIN, int(t[10]) + 1, int(t[20]) + 1)
        capped = get_ticks_in_range(conn, arch.settings, COIN, int(t[0]), int(t[-1]) + 1, limit=3)
    assert [x.event_time_ns for x in latest] == t[::-1][:5].tolist()  # newest first, never btc-usdt
    assert [x.event_time_ns for x in got] == t[10:20].tolist()
    assert [x.event_time_ns for x in narrow] == t[11:21].tolist()
    assert [x.event_time_ns for x in capped] == t[:3].tolist()
    tick = got[0]
    assert (tick.ts_ns, tick.bid_price, tick.ask_price, tick.bid_size, tick.ask_size, tick.last_price) == (
        int(t[10]) - 50 * US, 20.0, 20.5, 10, 20, 20.25,
    )  # fmt: skip
    assert (tick.volume, tick.session_id, tick.source_file) == (110, "s1", "ticks.jsonl")


# --------------------------------------------------------------------------- gaps
def _day(arch: Archive) -> tuple[int, int]:
    return arch.now - DAY, arch.now + S


def test_gap_counts_per_source(arch: Archive) -> None:
    start, end = _day(arch)
    with _conn(arch) as conn:
        assert count_gaps(conn, arch.settings, None, start, end) == GapCounts(archive=3, live=2)
        assert count_gaps(conn, arch.settings, None, start, end, "archive") == GapCounts(archive=3, live=None)
        assert count_gaps(conn, arch.settings, None, start, end, "live") == GapCounts(archive=None, live=2)
        assert count_gaps(conn, arch.settings, "kis", start, end, "all") == GapCounts(archive=2, live=1)
        assert count_gaps(conn, arch.settings, "kis", arch.now - 7 * DAY, end).total == 4
        assert count_gaps(conn, arch.settings, None, start, end, min_seconds=60) == GapCounts(archive=1, live=1)
        assert count_gaps(conn, arch.settings, "nope", start, end).total == 0


def test_critical_gaps_filter_and_order(arch: Archive) -> None:
    start, end = _day(arch)
    now = arch.now
    with _conn(arch) as conn:
        critical = get_critical_gaps(conn, arch.settings, 60, start, end)
        every = get_critical_gaps(conn, arch.settings, 0, start, end)
        kis_week = get_critical_gaps(conn, arch.settings, 60, now - 7 * DAY, end, "all", "kis")
        archive_only = get_critical_gaps(conn, arch.settings, 30, start, end, "archive")
        bounded = get_critical_gaps(conn, arch.settings, 0, now - 3 * HOUR, now - 2 * HOUR)
    assert [(g.source, g.start_ns, g.seconds, g.scope) for g in critical] == [
        ("live", now - 4 * HOUR, 90, "kis"), ("archive", now - 5 * HOUR, 120, "upbit"),
    ]  # fmt: skip
    want = sorted((g for g in arch.gaps if g[1] >= start), key=lambda g: -g[1])
    assert [(g.source, g.start_ns, g.seconds, g.scope) for g in every] == want
    assert [(g.source, g.seconds) for g in kis_week] == [("live", 90), ("archive", 400)]
    assert [g.seconds for g in archive_only] == [30, 120]
    assert [(g.source, g.start_ns) for g in bounded] == [("archive", now - 3 * HOUR)]  # end excluded
    live = critical[0]
    assert (live.end_ns, live.exchange, live.market_type, live.filled, live.backfilled_trades) == (
        now - 4 * HOUR + 90 * S, "kis", "spot", True, 3,
    )  # fmt: skip
    archived = critical[1]
    assert (archived.reason, archived.session_id, archived.exchange, archived.filled) == ("ws_drop", "s1", None, None)


def test_bad_arguments_are_refused_by_name(arch: Archive) -> None:
    with _conn(arch) as conn:
        cases: list[tuple[Callable[[], object], str]] = [
            (lambda: get_bars_in_range(conn, arch.settings, COIN, 0, S, "7x"), "interval"),
            (lambda: get_bars_in_range(conn, arch.settings, COIN, S, 0, "1h"), "end_ns"),
            (lambda: get_latest_ticks(conn, arch.settings, COIN, limit=0), "limit"),
            (lambda: get_latest_bars(conn, arch.settings, " 005930"), "symbol"),
            (lambda: count_gaps(conn, arch.settings, None, 0, S, "both"), "source"),  # type: ignore[arg-type]
            (lambda: get_critical_gaps(conn, arch.settings, -1, 0, S), "min_seconds"),
        ]
        for call, argument in cases:
            with pytest.raises(QueryArgumentError) as info:
                call()
            assert info.value.argument == argument


# --------------------------------------------------------------------------- CLI
def _cli(arch: Archive, *args: str) -> tuple[int, str]:
    runner = CliRunner(env={"PUMPWATCH_SCHEMA_TABLE_PREFIX": arch.settings.schema.table_prefix})
    result = runner.invoke(query, list(args))
    return result.exit_code, result.output


def test_cli_bars_json(arch: Archive) -> None:
    code, out = _cli(arch, "bars", STOCK, "--limit", "2", "--json")
    assert code == 0, out
    rows = json.loads(out)
    t11 = arch.swing[11][0]
    assert [(r["bar_time_ns"], r["bar_time"], r["session_id"]) for r in rows] == [
        (t11, iso_ns(t11), "s1"), (t11, iso_ns(t11), "s2"),
    ]  # fmt: skip
    start, end = arch.h0 + 30 * MINUTE, arch.h0 + 150 * MINUTE
    code, out = _cli(arch, "bars", COIN, "--interval", "1h", "--start", iso_ns(start), "--end", str(end), "--json")
    assert code == 0, out
    got = [(r["bar_time_ns"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["ticks"])
           for r in json.loads(out)]  # fmt: skip
    assert got == _expected_buckets(arch, start, end, HOUR)
    code, out = _cli(arch, "bars", COIN, "--interval", "1m", "--start", str(arch.h0), "--end", str(arch.h0 + HOUR))
    assert code == 0, out
    assert f"{COIN} 1m bars (53)" in out and "coverage" in out and iso_ns(int(arch.minutes["bar_time"][0])) in out


def test_cli_ticks_json(arch: Archive) -> None:
    t = arch.ticks
    code, out = _cli(arch, "ticks", COIN, "--limit", "3", "--json")
    assert code == 0, out
    assert [r["event_time_ns"] for r in json.loads(out)] == t[::-1][:3].tolist()
    code, out = _cli(arch, "ticks", COIN, "--start", str(t[5]), "--end", iso_ns(int(t[8])), "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [r["event_time"] for r in rows] == [iso_ns(int(x)) for x in t[5:8]]
    assert rows[0]["ts"] == iso_ns(int(t[5]) - 50 * US) and rows[0]["last_price"] == 15.25


def test_cli_gaps_json_and_count(arch: Archive) -> None:
    code, out = _cli(arch, "gaps", "--since", "1d", "--min-seconds", "60", "--json")
    assert code == 0, out
    got = [(r["source"], r["scope"], r["seconds"]) for r in json.loads(out)]
    assert got == [("live", "kis", 90), ("archive", "upbit", 120)]
    code, out = _cli(arch, "gaps", "--count", "--json")  # default --since 1d
    assert code == 0, out
    assert json.loads(out) == {"archive": 3, "live": 2, "total": 5}
    code, out = _cli(arch, "gaps", "--source", "archive", "--scope", "kis", "--count", "--json")
    assert code == 0, out
    assert json.loads(out) == {"archive": 2, "live": None, "total": 2}
    start, end = arch.now - 3 * HOUR, arch.now - 2 * HOUR
    code, out = _cli(arch, "gaps", "--start", str(start), "--end", str(end), "--json")
    assert code == 0, out
    assert [(r["source"], r["start"]) for r in json.loads(out)] == [("archive", iso_ns(start))]
    code, out = _cli(arch, "gaps", "--since", "7d", "--scope", "kis")
    assert code == 0, out
    assert "4 gap(s)" in out and "ws_drop" in out and "disconnect" in out


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["bars", COIN, "--interval", "7x"], "--interval"),
        (["bars", COIN, "--interval", "90s", "--start", "1h"], "--interval"),
        (["bars", COIN, "--interval", "1h"], "--interval"),  # aggregated bars need a range
        (["bars", COIN, "--start", "yesterday-ish"], "--start"),
        (["ticks", COIN, "--end", "1h"], "--end"),
        (["ticks", COIN, "--start", "1h", "--end", "2h"], "--end"),
        (["gaps", "--source", "both"], "--source"),
        (["gaps", "--since", "1d", "--start", "2d"], "--since"),
        (["gaps", "--min-seconds", "-1"], "--min-seconds"),
    ],
)
def test_cli_bad_arguments_are_usage_errors(arch: Archive, args: list[str], named: str) -> None:
    code, out = _cli(arch, *args)
    assert code == 2 and named in out, out


# --------------------------------------------------------------------------- HTTP API
def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, json.loads(resp.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


@pytest.fixture(scope="module")
def api(arch: Archive) -> Iterator[str]:
    """The real API process (``ApiServer``) over the module's tables; the archive endpoints need no
    running service, only QuestDB."""
    server = ApiServer(replace(arch.settings, api=replace(arch.settings.api, port=0))).start()
    try:
        yield server.url
    finally:
        server.stop()


def _q(**params: object) -> str:
    return urllib.parse.urlencode({k: str(v) for k, v in params.items()})


def test_api_lists_the_archive_endpoints(api: str) -> None:
    status, body = _get(f"{api}/api")
    assert status == 200
    assert {"/api/archive/bars", "/api/archive/ticks", "/api/archive/gaps"} <= set(body["endpoints"])


def test_api_bars_ticks_gaps_match_the_store(arch: Archive, api: str) -> None:
    status, rows = _get(f"{api}/api/archive/bars?{_q(symbol=STOCK, limit=3)}")
    assert status == 200
    with _conn(arch) as conn:
        assert rows == bar_records(get_latest_bars(conn, arch.settings, STOCK, 3))
        start, end = arch.h0, arch.h0 + 4 * HOUR
        status, rows = _get(f"{api}/api/archive/bars?{_q(symbol=COIN, interval='1h', start=start, end=end)}")
        assert status == 200 and rows == bar_records(get_bars_in_range(conn, arch.settings, COIN, start, end, "1h"))
        assert [r["bar_time_ns"] for r in rows] == [b[0] for b in _expected_buckets(arch, start, end, HOUR)]
        t = arch.ticks
        status, rows = _get(f"{api}/api/archive/ticks?{_q(symbol=COIN, start=iso_ns(int(t[3])), end=int(t[9]))}")
        assert status == 200 and rows == tick_records(get_ticks_in_range(conn, arch.settings, COIN, int(t[3]),
                                                                         int(t[9])))  # fmt: skip
        assert len(rows) == 6
        status, rows = _get(f"{api}/api/archive/gaps?{_q(since='1d', min_seconds=60)}")
        assert status == 200
        assert rows == gap_records(get_critical_gaps(conn, arch.settings, 60, arch.now - DAY, arch.now + S))
    assert [(r["source"], r["scope"]) for r in rows] == [("live", "kis"), ("archive", "upbit")]
    status, counts = _get(f"{api}/api/archive/gaps?{_q(since='1d', count='true')}")
    assert (status, counts) == (200, {"archive": 3, "live": 2, "total": 5})
    status, counts = _get(f"{api}/api/archive/gaps?{_q(source='live', scope='kis', since='7d', count=1)}")
    assert (status, counts) == (200, {"archive": None, "live": 1, "total": 1})


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("bars?symbol=BTC-USDT&interval=7x&start=1h", "interval"),
        ("bars?symbol=BTC-USDT&interval=0m&start=1h", "interval"),
        ("bars?symbol=BTC-USDT&interval=90s&start=1h", "interval"),
        ("bars?symbol=BTC-USDT&interval=1h", "interval"),  # aggregated bars need a range
        ("bars?interval=10m", "symbol"),
        ("bars?symbol=005930&limit=0", "limit"),
        ("ticks?symbol=BTC-USDT&start=yesterday-ish", "start"),
        ("ticks?symbol=BTC-USDT&end=1h", "end"),
        ("ticks?symbol=BTC-USDT&start=1h&end=2h", "end"),
        ("gaps?source=both", "source"),
        ("gaps?since=soon", "since"),
        ("gaps?since=1d&start=2d", "since"),
        ("gaps?min_seconds=-5", "min_seconds"),
        ("gaps?count=maybe", "count"),
    ],
)
def test_api_bad_parameters_are_400_naming_them(api: str, path: str, named: str) -> None:
    status, body = _get(f"{api}/api/archive/{path}")
    assert status == 400 and named in body["error"], body


def test_api_is_503_when_questdb_is_unreachable(arch: Archive) -> None:
    nowhere = replace(arch.settings.questdb, pg_port=free_port())
    server = ApiServer(replace(arch.settings, questdb=nowhere, api=replace(arch.settings.api, port=0))).start()
    try:
        for path in ("bars?symbol=005930", "ticks?symbol=BTC-USDT", "gaps?since=1h"):
            status, body = _get(f"{server.url}/api/archive/{path}")
            assert status == 503 and "QuestDB is not reachable" in body["error"], body
    finally:
        server.stop()
