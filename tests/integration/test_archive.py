"""Archive ingest against the real QuestDB: generated observer archives land exactly (counts, sums,
bars equal to a numpy aggregation of the same ticks, coverage exact), a rerun changes nothing, a
SIGKILL mid-file resumes exactly once, a changed file is taken again, bad lines are rejected with
their line numbers, a rollback removes exactly one file's rows; trade dumps and recordings go
through to ``trades``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from questdb_ingest.archive.formats import Options
from questdb_ingest.archive.generate import generate
from questdb_ingest.archive.rollback import rollback
from questdb_ingest.archive.runner import ArchiveRunner, RunReport
from questdb_ingest.archive.state import StateStore
from questdb_ingest.cli import main
from questdb_ingest.config import Settings
from questdb_ingest.connectors.binance import SPOT, BinanceProtocol
from questdb_ingest.connectors.okx import FUTURES as OKX_FUTURES
from questdb_ingest.connectors.okx import OkxProtocol
from questdb_ingest.connectors.replay.session import SessionWriter
from questdb_ingest.errors import RollbackError
from questdb_ingest.models import Trade
from questdb_ingest.store.migrations import migrate
from questdb_ingest.store.pg import connect
from questdb_ingest.store.queries import drop_prefixed, wait_visible

from ..conftest import QuestDB, scoped_settings

pytestmark = pytest.mark.questdb

START_NS = 1_769_126_400_000_000_000 - 20 * 60 * 10**9  # 2026-01-22 23:40 UTC: the run crosses midnight
ARCHIVE_TABLES = ("scalp_ticks", "scalp_1m_bars", "scalp_gaps", "swing_bars_10m")


@pytest.fixture
def space(qdb: QuestDB, tmp_path: Path) -> Iterator[Settings]:
    """A migrated namespace of our own, its reject logs under tmp_path; dropped after the test (a
    namespace is some fifteen tables, and QuestDB keeps files open for every table it holds)."""
    prefix = qdb.new_prefix()
    settings = scoped_settings(prefix, archive={"reject_dir": str(tmp_path / "rejects")})
    with connect(settings) as conn:
        migrate(conn, settings)
    yield settings
    with connect(settings) as conn:
        drop_prefixed(conn, [prefix])


def _rows(settings: Settings, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connect(settings) as conn:
        return conn.execute(query, params).fetchall()


def _visible(settings: Settings) -> None:
    with connect(settings) as conn:
        for name in (*ARCHIVE_TABLES, "trades"):
            wait_visible(conn, settings.table(name))


def _ingest(settings: Settings, *paths: Path, **kwargs: Any) -> RunReport:
    report = ArchiveRunner(settings, **kwargs).run(list(paths))
    _visible(settings)
    return report


def _ticks_of(files: list[Path]) -> pd.DataFrame:
    """The generated ticks, read back with json and pandas (independently of the ingest code)."""
    recs = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(recs)
    df["event_ns"] = pd.to_datetime(df["event_time"], utc=True).dt.as_unit("ns").astype("int64")
    return df


def _expected_bars(ticks: pd.DataFrame) -> pd.DataFrame:
    """1-minute bars by numpy/pandas: OHLC of last_price in time order, volume, ticks, coverage."""
    t = ticks.sort_values("event_ns")
    t = t.assign(minute=t["event_ns"] - t["event_ns"] % 60_000_000_000)
    g = t.groupby(["minute", "symbol", "session_id"], sort=True)
    out = g.agg(
        open=("last_price", "first"),
        high=("last_price", "max"),
        low=("last_price", "min"),
        close=("last_price", "last"),
        volume=("volume", "sum"),
        ticks=("last_price", "size"),
    ).reset_index()
    out["coverage_ratio"] = out["ticks"] / 120.0
    out["quality_flag"] = np.where(out["coverage_ratio"] < 0.8, "low_coverage", "normal")
    return out


def _stored_bars(settings: Settings) -> pd.DataFrame:
    rows = _rows(
        settings,
        f"SELECT bar_time::long * 1000, symbol, session_id, open, high, low, close, volume, ticks, coverage_ratio, "
        f"quality_flag FROM {settings.table('scalp_1m_bars')} ORDER BY bar_time, symbol, session_id",
    )
    cols = [
        "minute",
        "symbol",
        "session_id",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "ticks",
        "coverage_ratio",
        "quality_flag",
    ]
    return pd.DataFrame(rows, columns=cols)


def _assert_bars(settings: Settings, ticks: pd.DataFrame) -> None:
    want = _expected_bars(ticks).sort_values(["minute", "symbol", "session_id"]).reset_index(drop=True)
    got = _stored_bars(settings)
    assert len(got) == len(want)
    for col in ("minute", "volume", "ticks"):
        assert got[col].astype("int64").tolist() == want[col].astype("int64").tolist(), col
    for col in ("open", "high", "low", "close", "coverage_ratio"):
        np.testing.assert_array_equal(got[col].to_numpy(float), want[col].to_numpy(float), err_msg=col)
    assert got["symbol"].tolist() == want["symbol"].tolist()
    assert got["quality_flag"].tolist() == want["quality_flag"].tolist()


def _fingerprint(settings: Settings) -> dict[str, tuple[Any, ...]]:
    """Count and sums per archive table: equal before and after means nothing changed."""
    t = settings.table
    return {
        "ticks": _rows(
            settings,
            f"SELECT count(), sum(last_price), sum(volume), sum(bid_size), "
            f"count_distinct(source_file) FROM {t('scalp_ticks')}",
        )[0],
        "bars": _rows(
            settings,
            f"SELECT count(), sum(open), sum(close), sum(ticks), sum(coverage_ratio) FROM {t('scalp_1m_bars')}",
        )[0],
        "swing": _rows(settings, f"SELECT count(), sum(close), sum(volume) FROM {t('swing_bars_10m')}")[0],
        "gaps": _rows(settings, f"SELECT count(), sum(gap_seconds) FROM {t('scalp_gaps')}")[0],
    }


def test_generated_archives_land_exactly_with_bars_equal_to_numpy(space: Settings, tmp_path: Path) -> None:
    gen = generate(tmp_path / "observer", start_ns=START_NS, files=4, file_seconds=330, symbols=3)
    report = _ingest(space, tmp_path / "observer", batch_rows=500)
    assert report.failed == [] and report.count("ingested") == len(gen.files)
    ticks = _ticks_of(gen.scalp_files)
    assert len(ticks) == gen.ticks
    fp = _fingerprint(space)
    assert fp["ticks"][0] == gen.ticks
    assert fp["ticks"][1] == pytest.approx(ticks["last_price"].sum())
    assert fp["ticks"][2] == ticks["volume"].sum() and fp["ticks"][3] == ticks["bid_size"].sum()
    assert fp["ticks"][4] == len(gen.scalp_files)
    assert fp["swing"][0] == 3 * len(gen.swing_files)
    assert fp["gaps"] == (len(gen.scalp_files), 5 * len(gen.scalp_files))
    _assert_bars(space, ticks)
    # two day partitions: the run crossed midnight
    days = _rows(space, f"SELECT count_distinct(timestamp_floor('d', event_time)) FROM {space.table('scalp_ticks')}")
    assert days[0][0] == 2
    want = _expected_bars(ticks)
    assert report.bars == len(want) and report.low_coverage_bars == int((want["quality_flag"] == "low_coverage").sum())
    assert report.low_coverage_bars > 0  # the generator's drops make some minutes fall under 0.8


def test_a_rerun_changes_nothing_and_a_changed_file_is_taken_again(space: Settings, tmp_path: Path) -> None:
    gen = generate(tmp_path / "observer", start_ns=START_NS, files=3, file_seconds=150, symbols=2)
    _ingest(space, tmp_path / "observer", batch_rows=400)
    before = _fingerprint(space)
    states = _rows(space, f"SELECT count() FROM {space.table('ingest_state')}")[0][0]
    again = _ingest(space, tmp_path / "observer")
    assert again.count("skipped") == len(gen.files) and again.rows_written == 0
    assert _fingerprint(space) == before
    assert _rows(space, f"SELECT count() FROM {space.table('ingest_state')}")[0][0] == states

    changed = gen.scalp_files[1]
    lines = [json.loads(x) for x in changed.read_text().splitlines()]
    for rec in lines:
        rec["last_price"] += 1000.0
    changed.write_text("".join(json.dumps(r) + "\n" for r in lines))
    third = _ingest(space, tmp_path / "observer")
    actions = {Path(f.path).name + f.format: f.action for f in third.files}
    assert actions[changed.name + "scalp"] == "reingested"
    assert third.count("skipped") == len(gen.files) - 1
    after = _fingerprint(space)
    assert after["ticks"][0] == before["ticks"][0]  # same keys: upserted, not added
    assert after["ticks"][1] == pytest.approx(before["ticks"][1] + 1000.0 * len(lines))
    _assert_bars(space, _ticks_of(gen.scalp_files))  # the changed minutes' bars recomputed

    forced = _ingest(space, tmp_path / "observer", reprocess=True)
    assert forced.count("reingested") == len(gen.files) and _fingerprint(space) == after


def test_bad_lines_are_rejected_with_line_numbers_and_the_good_ones_land(space: Settings, tmp_path: Path) -> None:
    scalp = tmp_path / "obs" / "scalp" / "20260122_0930.jsonl"
    scalp.parent.mkdir(parents=True)
    good = {
        "ts": "2026-01-22T09:30:00.100Z",
        "event_time": "2026-01-22T09:30:00.000Z",
        "symbol": "005930",
        "bid_price": 1.0,
        "ask_price": 2.0,
        "bid_size": 1,
        "ask_size": 1,
        "last_price": 1.5,
        "volume": 3,
        "session_id": "s1",
        "mitigation_level": 0,
        "quality_flag": "normal",
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "event_time": "2026-01-22T09:30:00.500Z", "symbol": ""}),
        "",
        json.dumps({**good, "event_time": "yesterday"}),
        json.dumps({**good, "event_time": "2026-01-22T09:30:01.000Z", "last_price": -1}),
        json.dumps({**good, "event_time": "2026-01-22T09:30:01.500Z", "bid_size": "many"}),
        json.dumps({**good, "event_time": "2026-01-22T09:30:02.000Z"}),
    ]
    scalp.write_text("\n".join(lines) + "\n")
    report = _ingest(space, scalp, batch_rows=3)
    (f,) = report.files
    assert (f.rows_read, f.rows_written, f.rows_rejected, f.watermark) == (7, 2, 5, 8)
    log = [json.loads(x) for x in Path(f.reject_log).read_text().splitlines()]
    assert [r["line"] for r in log] == [2, 3, 5, 6, 7]
    assert log[0]["raw"] == "{not json" and "malformed" in log[0]["reason"]
    assert "symbol" in log[1]["reason"] and "event_time" in log[2]["reason"]
    assert "last_price" in log[3]["reason"] and "bid_size" in log[4]["reason"]
    assert _rows(space, f"SELECT count() FROM {space.table('scalp_ticks')}")[0][0] == 2
    st = StateStore(connect(space), space).latest(str(scalp.resolve()))[str(scalp.resolve())]
    assert (st.status, st.rows_rejected, st.watermark) == ("complete", 5, 8)


def test_dry_run_validates_and_writes_nothing(space: Settings, tmp_path: Path) -> None:
    gen = generate(tmp_path / "observer", start_ns=START_NS, files=2, file_seconds=60, symbols=2)
    report = _ingest(space, tmp_path / "observer", dry_run=True)
    assert report.count("dry_run") == len(gen.files) and report.rows_written == gen.ticks + 2 * 2 + 2
    assert all(v[0] == 0 for v in _fingerprint(space).values())
    assert _rows(space, f"SELECT count() FROM {space.table('ingest_state')}")[0][0] == 0


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PUMPWATCH_SCHEMA_TABLE_PREFIX": settings.schema.table_prefix,
        "PUMPWATCH_ARCHIVE_REJECT_DIR": settings.archive.reject_dir,
    }


def test_sigkill_mid_file_then_rerun_stores_every_tick_exactly_once(space: Settings, tmp_path: Path) -> None:
    gen = generate(tmp_path / "observer", start_ns=START_NS, files=3, file_seconds=1500, symbols=8, drop=0.0)
    cmd = [
        sys.executable,
        "-m",
        "questdb_ingest",
        "archive",
        "ingest",
        str(tmp_path / "observer" / "scalp"),
        "--batch-rows",
        "200",
        "--parallel",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=_env(space), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store_conn = connect(space)
    store = StateStore(store_conn, space)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            states = store.latest()
            # past the second minute of a file: the resumed run must still give the first its bars
            if any(s.status == "running" and s.watermark > 2000 for s in states.values()):
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = store.latest()
    partial = [s for s in killed.values() if s.status == "running"]
    assert partial and 2000 < partial[0].watermark < gen.ticks // len(gen.scalp_files), killed
    result = subprocess.run([*cmd[:-4], "--json"], env=_env(space), capture_output=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    actions = {Path(f["path"]).name: f["action"] for f in report["files"]}
    assert actions[Path(partial[0].path).name] == "resumed"
    _visible(space)
    ticks = space.table("scalp_ticks")
    count, distinct = _rows(
        space, f"SELECT count(), count_distinct(concat(event_time, symbol, session_id)) FROM {ticks}"
    )[0]
    assert count == distinct == gen.ticks
    done = store.latest()
    assert (
        all(s.status == "complete" for s in done.values()) and sum(s.rows_written for s in done.values()) == gen.ticks
    )
    _assert_bars(space, _ticks_of(gen.scalp_files))
    store_conn.close()


def test_rollback_of_one_file_removes_exactly_its_rows_and_a_rerun_restores_them(
    space: Settings, tmp_path: Path
) -> None:
    gen = generate(tmp_path / "observer", start_ns=START_NS, files=3, file_seconds=150, symbols=2)
    _ingest(space, tmp_path / "observer", batch_rows=300)
    full = _fingerprint(space)
    victim = gen.scalp_files[1]
    with connect(space) as conn:
        rep = rollback(conn, space, file=str(victim.resolve()))
    _visible(space)
    rest = [f for f in gen.scalp_files if f != victim]
    left = _ticks_of(rest)
    assert rep.removed >= len(_ticks_of([victim]))
    assert _rows(space, f"SELECT count(), count_distinct(source_file) FROM {space.table('scalp_ticks')}")[0] == (
        len(left),
        len(rest),
    )
    _assert_bars(space, left)  # the victim's minutes recomputed from what stayed
    after = _fingerprint(space)
    assert after["swing"] == full["swing"] and after["gaps"] == full["gaps"]
    assert not _rows(space, "SELECT table_name FROM tables() WHERE table_name LIKE %s", (f"{space.table('')}%__rb_%",))
    assert StateStore(connect(space), space).latest()[str(victim.resolve())].status == "rolled_back"

    again = _ingest(space, tmp_path / "observer")
    assert {f.action for f in again.files if Path(f.path) == victim.resolve()} == {"reingested"}
    assert _fingerprint(space) == full

    with connect(space) as conn:
        rollback(conn, space, session="track_a_session")
    _visible(space)
    assert _fingerprint(space)["swing"][0] == 0 and _fingerprint(space)["ticks"] == full["ticks"]


def test_binance_trade_dumps_spot_and_futures_with_and_without_header(space: Settings, tmp_path: Path) -> None:
    spot = tmp_path / "spot" / "BTCUSDT-trades-2026-01-20.csv"
    spot.parent.mkdir()
    ms = 1_768_867_200_000  # 2026-01-20 00:00 UTC
    spot.write_text(
        "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n"
        f"1,100.5,0.25,25.125,{ms},True,True\n"
        f"2,100.6,0.5,50.3,{(ms + 1) * 1000},False,True\n"  # µs, as spot dumps since 2025
        "3,not-a-price,1,1,1,True,True\n"
        f"4,100.7,0.75,75.5,{ms + 2},false,true\n"
    )
    fut = tmp_path / "data" / "futures" / "um" / "ETHUSDT-trades-2026-01-20.zip"
    fut.parent.mkdir(parents=True)
    with zipfile.ZipFile(fut, "w") as zf:
        zf.writestr(
            "ETHUSDT-trades-2026-01-20.csv", f"9,3000.1,2,6000.2,{ms + 5},true\n10,3000.2,1,3000.2,{ms + 6},false\n"
        )
    report = _ingest(space, spot, fut)
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name[spot.name].format == "binance_trades" and by_name[spot.name].rows_rejected == 1
    assert by_name[fut.name].rows_written == 2
    rows = _rows(
        space,
        f"SELECT ts::long, exchange, market_type, symbol, price, quantity, side, trade_id "
        f"FROM {space.table('trades')} ORDER BY ts",
    )
    assert rows == [
        (ms * 10**6, "binance", "spot", "BTC-USDT", 100.5, 0.25, "sell", "1"),
        ((ms + 1) * 10**6, "binance", "spot", "BTC-USDT", 100.6, 0.5, "buy", "2"),
        ((ms + 2) * 10**6, "binance", "spot", "BTC-USDT", 100.7, 0.75, "buy", "4"),
        ((ms + 5) * 10**6, "binance", "futures", "ETH-USDT", 3000.1, 2.0, "sell", "9"),
        ((ms + 6) * 10**6, "binance", "futures", "ETH-USDT", 3000.2, 1.0, "buy", "10"),
    ]
    assert _ingest(space, spot, fut).count("skipped") == 2


def test_recordings_are_parsed_again_by_the_venue_parsers(space: Settings, tmp_path: Path) -> None:
    session = tmp_path / "rec"
    ts0 = START_NS
    spot = BinanceProtocol(SPOT)
    inst = spot.instrument_for("SOL", "USDT")
    trades = [
        Trade(
            ts_ns=ts0 + i * 10**6,
            exchange="binance",
            market_type="spot",
            symbol="SOL-USDT",
            price=10.0 + i,
            quantity=1.0 + i,
            side="buy" if i % 2 else "sell",
            trade_id=str(500 + i),
        )
        for i in range(5)
    ]
    okx = OkxProtocol(OKX_FUTURES)
    swap = okx.instrument_for("BTC", "USDT")
    with SessionWriter(session) as writer:
        for i, frame in enumerate(spot.encode_trades(inst, trades)):
            writer.write("binance_spot", ts0 + i, frame)
            if i == 2:
                writer.write("binance_spot", ts0 + i, '{"e":"trade","s":"SOLUSDT","p":"x"}')
        okx_trades = [
            Trade(
                ts_ns=ts0,
                exchange="okx",
                market_type="futures",
                symbol="BTC-USDT",
                price=50_000.0,
                quantity=swap.to_base(3),
                side="buy",
                trade_id="77",
            )
        ]
        for frame in okx.encode_trades(swap, okx_trades):
            writer.write("okx_futures", ts0, frame)
        writer.instruments("okx_futures", [swap])
    report = _ingest(space, session)
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["binance_spot.jsonl"].format == "recording"
    assert (by_name["binance_spot.jsonl"].rows_written, by_name["binance_spot.jsonl"].rows_rejected) == (5, 1)
    log = [json.loads(x) for x in Path(by_name["binance_spot.jsonl"].reject_log).read_text().splitlines()]
    assert [r["line"] for r in log] == [4] and "binance_spot parser" in log[0]["reason"]
    assert by_name["okx_futures.jsonl"].rows_written == 1
    rows = _rows(
        space,
        f"SELECT exchange, market_type, symbol, price, quantity, trade_id FROM {space.table('trades')} "
        "ORDER BY exchange, trade_id",
    )
    assert rows[-1] == ("okx", "futures", "BTC-USDT", 50_000.0, swap.to_base(3), "77")
    assert [r[5] for r in rows[:5]] == [str(500 + i) for i in range(5)]


def test_cli_ingest_status_and_a_failing_file(space: Settings, tmp_path: Path) -> None:
    gen = generate(tmp_path / "observer", start_ns=START_NS, files=1, file_seconds=60, symbols=1)
    odd = tmp_path / "observer" / "notes.jsonl"
    odd.write_text('{"hello": 1}\n')
    env = {k: v for k, v in _env(space).items() if k.startswith("PUMPWATCH_")}
    result = CliRunner().invoke(main, ["archive", "ingest", str(tmp_path / "observer"), "--json"], env=env)
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    failed = [f for f in report["files"] if f["action"] == "failed"]
    assert [Path(f["path"]).name for f in failed] == ["notes.jsonl"] and "format" in failed[0]["error"]
    assert report["rows_written"] == gen.ticks + 1 + 1
    status = CliRunner().invoke(main, ["archive", "status", "--json"], env=env)
    assert status.exit_code == 0, status.output
    assert sorted(s["status"] for s in json.loads(status.output)) == ["complete"] * 3
    refused = CliRunner().invoke(main, ["archive", "rollback"], env=env)
    assert refused.exit_code == 2 and "--session or --file" in refused.output


def test_csv_and_parquet_trades_with_a_column_mapping(space: Settings, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ms = 1_768_953_600_000  # 2026-01-21: after the Parquet rows
    csv = tmp_path / "mine.csv"
    csv.write_text(
        "when,px,size,dir,tid\n"
        f"{ms},10.5,1,BUY,a1\n"
        f"{ms + 1},10.6,2,s,a2\n"
        f"{ms + 2},oops,2,s,a3\n"
        f"{ms + 3},10.7,3,sideways,a4\n"
        "1,2\n"
    )
    mapping = {"ts": "when", "price": "px", "quantity": "size", "side": "dir", "trade_id": "tid"}
    options = Options(mapping=mapping, exchange="bybit", symbol="ETH-USDT")
    report = _ingest(space, csv, fmt="csv_trades", options=options)
    (f,) = report.files
    assert (f.rows_written, f.rows_rejected) == (2, 3)
    log = [json.loads(x) for x in Path(f.reject_log).read_text().splitlines()]
    assert [r["line"] for r in log] == [4, 5, 6]
    assert "price" in log[0]["reason"] and "side" in log[1]["reason"] and "columns" in log[2]["reason"]
    table = pa.table({
        "t": [f"2026-01-20T00:00:0{i}.000Z" for i in range(4)], "p": [1.0, 2.0, 3.0, -1.0], "q": [1.0] * 4,
        "s": ["buy", "sell", "buy", "sell"], "id": ["x0", "x1", "x2", "x3"], "sym": ["SOL-USDT"] * 4,
    })  # fmt: skip
    parquet = tmp_path / "mine.parquet"
    pq.write_table(table, parquet, row_group_size=2)
    pmap = {"ts": "t", "price": "p", "quantity": "q", "side": "s", "trade_id": "id", "symbol": "sym"}
    prep = _ingest(space, parquet, options=Options(mapping=pmap, exchange="okx", ts_unit="iso"), batch_rows=2)
    (p,) = prep.files
    assert (p.format, p.rows_written, p.rows_rejected, p.watermark) == ("parquet_trades", 3, 1, 4)
    rows = _rows(space, f"SELECT exchange, symbol, price, side, trade_id FROM {space.table('trades')} ORDER BY ts")
    assert rows == [
        ("okx", "SOL-USDT", 1.0, "buy", "x0"),
        ("okx", "SOL-USDT", 2.0, "sell", "x1"),
        ("okx", "SOL-USDT", 3.0, "buy", "x2"),
        ("bybit", "ETH-USDT", 10.5, "buy", "a1"),
        ("bybit", "ETH-USDT", 10.6, "sell", "a2"),
    ]


def test_a_file_questdb_cannot_take_is_retried_then_failed_and_the_run_goes_on(space: Settings, tmp_path: Path) -> None:
    """ILP to a closed port (PGWire still up): every batch fails, is retried with backoff, and the
    file ends ``failed`` with the reason at watermark 0 — a later run with QuestDB reachable takes it."""
    from dataclasses import replace

    from questdb_ingest.connectors.replay_process import free_port

    gen = generate(tmp_path / "observer", start_ns=START_NS, files=1, file_seconds=60, symbols=1)
    dead = replace(
        space,
        ingest=replace(space.ingest, client_conf=f"http::addr=127.0.0.1:{free_port()};request_timeout=500;"),
        archive=replace(space.archive, retries=2, retry_initial=0.01, retry_max=0.02),
    )
    report = _ingest(dead, *gen.scalp_files)
    (f,) = report.files
    assert f.action == "failed" and "FlushTransportError" in f.error and f.rows_written == 0
    st = StateStore(connect(space), space).latest()[f.path]
    assert (st.status, st.watermark, st.rows_written) == ("failed", 0, 0) and "FlushTransportError" in st.error
    again = _ingest(space, *gen.scalp_files)
    assert again.files[0].action == "ingested" and again.files[0].rows_written == gen.ticks


def test_rollback_of_a_trade_dump_removes_exactly_its_trades(space: Settings, tmp_path: Path) -> None:
    ms = 1_768_867_200_000  # 2026-01-20
    a = tmp_path / "BTCUSDT-trades-2026-01-20.csv"
    a.write_text("".join(f"{i},100.{i},1,100,{ms + i * 1000},true,true\n" for i in range(1, 51)))
    b = tmp_path / "ETHUSDT-trades-2026-01-20.csv"
    b.write_text("".join(f"{i},200.{i},1,200,{ms + i * 1000},false,true\n" for i in range(1, 31)))
    _ingest(space, a, b)
    from questdb_ingest.ingest.writer import TradeWriter

    other = Trade(ts_ns=(ms + 5000) * 10**6, exchange="binance", market_type="spot", symbol="BTC-USDT",
                  price=1.0, quantity=1.0, side="buy", trade_id="live-1")  # fmt: skip
    with TradeWriter(space.client_conf(), space.table("trades"), background_flush=False) as w:
        w.write_trades([other])
    _visible(space)
    with connect(space) as conn:
        dry = rollback(conn, space, file=str(a.resolve()), dry_run=True)
        assert dry.removed == 50 and _rows(space, f"SELECT count() FROM {space.table('trades')}")[0][0] == 81
        rep = rollback(conn, space, file=str(a.resolve()))
    _visible(space)
    assert rep.removed == 50 and rep.tables[0].partitions == ["2026-01-20"]
    left = _rows(space, f"SELECT symbol, count() FROM {space.table('trades')} GROUP BY symbol ORDER BY symbol")
    assert left == [("BTC-USDT", 1), ("ETH-USDT", 30)]  # the other row of that symbol and day stays
    assert StateStore(connect(space), space).latest()[str(a.resolve())].status == "rolled_back"
    again = _ingest(space, a, b)
    assert [f.action for f in again.files] == ["reingested", "skipped"]
    assert _rows(space, f"SELECT count() FROM {space.table('trades')}")[0][0] == 81
    a.write_text(a.read_text() + f"99,1,1,1,{ms + 99_000},true,true\n")
    with connect(space) as conn, pytest.raises(RollbackError, match="changed"):
        rollback(conn, space, file=str(a.resolve()))


def test_one_ingest_or_rollback_at_a_time_and_no_rewrite_of_a_day_capture_writes_to(
    space: Settings, tmp_path: Path
) -> None:
    from questdb_ingest.archive.state import exclusive
    from questdb_ingest.errors import ArchiveError

    gen = generate(tmp_path / "observer", start_ns=START_NS, files=1, file_seconds=60, symbols=1)
    with exclusive(space):  # as another process's ingest would hold it
        with pytest.raises(ArchiveError, match="another archive ingest or rollback"):
            ArchiveRunner(space).run(gen.files)
        with connect(space) as conn, pytest.raises(ArchiveError, match="another archive ingest or rollback"):
            rollback(conn, space, session="track_b_session")
    assert ArchiveRunner(space).run(gen.files).failed == []  # released: the next one runs

    now_ms = time.time_ns() // 10**6
    today = tmp_path / "SOLUSDT-trades-2026-12-03.csv"
    today.write_text(f"1,10,1,10,{now_ms - 60_000},true,true\n2,11,1,11,{now_ms - 30_000},false,true\n")
    _ingest(space, today)
    with connect(space) as conn, pytest.raises(RollbackError, match="live capture may still write"):
        rollback(conn, space, file=str(today.resolve()))
    assert _rows(space, f"SELECT count() FROM {space.table('trades')}")[0][0] == 2
    assert StateStore(connect(space), space).latest()[str(today.resolve())].status == "complete"
