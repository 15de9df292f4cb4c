"""Gate, Phemex, Upbit and Bithumb: REST lists, subscribe requests, replay answers and frame edge cases."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping

import pytest

from questdb_ingest.connectors.core import (
    Instrument,
    Instruments,
    TradeColumns,
    VenueProtocol,
)
from questdb_ingest.connectors.registry import connector
from questdb_ingest.errors import FrameError, VenueError
from questdb_ingest.models import NO_SEQUENCE, Trade

from .fixtures import FixtureRest, fixture_instruments, load_frames, parse_one, parser, proto

NAMES = ["gate_spot", "gate_futures", "phemex_spot", "phemex_futures", "upbit_spot", "bithumb_spot"]


# ---- REST symbol lists ------------------------------------------------------------------


def test_gate_spot_lists_only_tradable_pairs() -> None:
    p = proto("gate_spot")
    rest = FixtureRest("gate_spot", p.spec.rest_url)
    insts = asyncio.run(p.fetch_instruments(rest))
    assert rest.calls == [("GET", "https://api.gateio.ws/api/v4/spot/currency_pairs", None)]
    assert [(i.venue_symbol, i.symbol) for i in insts] == [
        ("SOMI_USDT", "SOMI-USDT"),
        ("BTC_USDT", "BTC-USDT"),
        ("ETH_BTC", "ETH-BTC"),
    ]


def test_gate_futures_carries_quanto_multiplier_and_skips_delisting() -> None:
    insts = fixture_instruments(proto("gate_futures"))
    assert sorted(insts) == ["BTC_USDT", "ETH_USDT", "SOMI_USDT"]
    btc = insts["BTC_USDT"]
    assert (btc.symbol, btc.size_num, btc.size_den) == ("BTC-USDT", 1, 10_000)
    assert insts["ETH_USDT"].to_base(3) == 0.03


def test_phemex_spot_reads_price_scale_and_base_value_scale() -> None:
    p = proto("phemex_spot")
    rest = FixtureRest("phemex_spot", p.spec.rest_url)
    insts = Instruments(asyncio.run(p.fetch_instruments(rest)))
    assert rest.calls[0][1] == "https://api.phemex.com/public/products"
    assert sorted(insts) == ["sBTCUSDT", "sSOMIUSDT"]  # the perpetual and the delisted row are left out
    somi = insts["sSOMIUSDT"]
    assert (somi.symbol, somi.price_scale, somi.qty_scale) == ("SOMI-USDT", 8, 8)


def test_phemex_futures_lists_listed_hedged_perpetuals() -> None:
    insts = fixture_instruments(proto("phemex_futures"))
    assert {k: v.symbol for k, v in insts.items()} == {"BTCUSDT": "BTC-USDT", "SOMIUSDT": "SOMI-USDT"}


@pytest.mark.parametrize(
    ("name", "url"), [("upbit_spot", "https://api.upbit.com"), ("bithumb_spot", "https://api.bithumb.com")]
)
def test_korean_market_lists_are_flipped_to_base_quote(name: str, url: str) -> None:
    p = proto(name)
    rest = FixtureRest(name, p.spec.rest_url)
    insts = asyncio.run(p.fetch_instruments(rest))
    assert rest.calls[0][1] == f"{url}/v1/market/all"
    by_venue = {i.venue_symbol: i.symbol for i in insts}
    assert by_venue["KRW-SOMI"] == "SOMI-KRW"
    assert by_venue["BTC-ETH"] == "ETH-BTC"


def test_bithumb_shares_the_upbit_module() -> None:
    assert connector("bithumb_spot").module == "upbit"
    assert type(proto("bithumb_spot")) is type(proto("upbit_spot"))
    assert proto("bithumb_spot").spec.ws_url == "wss://ws-api.bithumb.com/websocket/v1"


class ReplayRest:
    """A ``RestClient`` answering from a protocol's own ``serve_rest``."""

    def __init__(self, p: VenueProtocol, instruments: list[Instrument]) -> None:
        self.p = p
        self.instruments = instruments

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        path = url[len(self.p.spec.rest_url) :]
        reply = self.p.serve_rest("GET", path, params or {}, self.instruments, lambda s: [], "ws://x")
        assert reply is not None, path
        return reply.body

    async def post(self, url: str, body: bytes = b"") -> bytes:
        raise AssertionError(url)


@pytest.mark.parametrize("name", NAMES)
def test_served_symbol_list_parses_back_to_the_same_instruments(name: str) -> None:
    p = proto(name)
    made = [p.instrument_for(b, q) for b, q in (("BTC", "USDT"), ("ETH", "USDT"), ("SOMI", "USDT"))]
    got = asyncio.run(p.fetch_instruments(ReplayRest(p, made)))
    assert got == made
    assert p.serve_rest("GET", "/nope", {}, made, lambda s: [], "ws://x") is None


# ---- subscribe requests and heartbeats -------------------------------------------------


def test_gate_subscribe_is_chunked_by_100() -> None:
    p = proto("gate_futures")
    insts = [Instrument.make(f"C{i}_USDT", f"C{i}", "USDT") for i in range(250)]
    msgs = [json.loads(m) for m in p.subscribe_messages(insts)]
    assert [len(m["payload"]) for m in msgs] == [100, 100, 50]
    assert {m["channel"] for m in msgs} == {"futures.trades"}
    assert {m["event"] for m in msgs} == {"subscribe"}
    assert [m["id"] for m in msgs] == [1, 2, 3]
    assert isinstance(msgs[0]["time"], int)
    assert msgs[2]["payload"][-1] == "C249_USDT"


def test_gate_ping_names_the_market() -> None:
    assert json.loads(proto("gate_spot").ping_message() or "")["channel"] == "spot.ping"
    assert json.loads(proto("gate_futures").ping_message() or "")["channel"] == "futures.ping"


@pytest.mark.parametrize(
    ("name", "method", "venue"),
    [("phemex_spot", "trade.subscribe", "sBTCUSDT"), ("phemex_futures", "trade_p.subscribe", "BTCUSDT")],
)
def test_phemex_subscribes_one_symbol_per_request(name: str, method: str, venue: str) -> None:
    p = proto(name)
    insts = [p.instrument_for(b, "USDT") for b in ("BTC", "ETH", "SOMI")]
    msgs = [json.loads(m) for m in p.subscribe_messages(insts)]
    assert len(msgs) == 3
    assert msgs[0] == {"id": 1, "method": method, "params": [venue]}
    ping = json.loads(p.ping_message() or "")
    assert ping == {"id": 4, "method": "server.ping", "params": []}
    assert (p.spec.topics_per_connection, p.spec.topics_per_message) == (20, 1)


@pytest.mark.parametrize("name", ["upbit_spot", "bithumb_spot"])
def test_upbit_subscribe_is_one_request_for_the_whole_connection(name: str) -> None:
    p = proto(name)
    insts = [p.instrument_for(f"C{i}", "KRW") for i in range(1500)]
    msgs = p.subscribe_messages(insts)
    assert len(msgs) == 1
    ticket, body, fmt = json.loads(msgs[0])
    assert set(ticket) == {"ticket"} and ticket["ticket"]
    assert body == {"type": "trade", "codes": [f"KRW-C{i}" for i in range(1500)], "is_only_realtime": True}
    assert fmt == {"format": "DEFAULT"}
    assert p.subscribe_messages([]) == []
    assert p.ping_message() == "PING"
    assert p.replaces_subscriptions is True
    assert proto("gate_spot").replaces_subscriptions is False


# ---- replay answers ----------------------------------------------------------------------


def test_gate_answers_subscribe_and_ping() -> None:
    p = proto("gate_spot")
    req = {"time": 1, "id": 9, "channel": "spot.trades", "event": "subscribe", "payload": ["BTC_USDT", "SOMI_USDT"]}
    ans = p.answer(json.dumps(req))
    assert ans.subscribe == ["BTC_USDT", "SOMI_USDT"]
    ack = json.loads(ans.replies[0])
    assert (ack["id"], ack["channel"], ack["event"], ack["error"], ack["result"]) == (
        9,
        "spot.trades",
        "subscribe",
        None,
        {"status": "success"},
    )
    unsub = p.answer(json.dumps({**req, "event": "unsubscribe"}))
    assert unsub.unsubscribe == ["BTC_USDT", "SOMI_USDT"]
    assert unsub.subscribe == []
    pong = json.loads(p.answer('{"time":1,"channel":"spot.ping"}').replies[0])
    assert pong["channel"] == "spot.pong"
    assert parser("gate_spot")(p.answer(json.dumps(req)).replies[0], 1, TradeColumns()) == 0
    with pytest.raises(VenueError):
        parser("gate_spot")(
            p.answer('{"channel":"futures.trades","event":"subscribe","payload":[]}').replies[0], 1, TradeColumns()
        )
    assert json.loads(p.answer("garbage").replies[0])["error"] is not None


@pytest.mark.parametrize("name", ["phemex_spot", "phemex_futures"])
def test_phemex_answers_subscribe_and_server_ping(name: str) -> None:
    p = proto(name)
    method = "trade_p" if name.endswith("futures") else "trade"
    ans = p.answer(json.dumps({"id": 5, "method": f"{method}.subscribe", "params": ["X"]}))
    assert ans.subscribe == ["X"]
    assert json.loads(ans.replies[0]) == {"error": None, "id": 5, "result": {"status": "success"}}
    pong = p.answer('{"id":6,"method":"server.ping","params":[]}')
    assert json.loads(pong.replies[0]) == {"error": None, "id": 6, "result": "pong"}
    assert p.answer(json.dumps({"id": 7, "method": f"{method}.unsubscribe", "params": ["X"]})).unsubscribe == ["X"]
    wrong = "trade" if method == "trade_p" else "trade_p"
    err = p.answer(json.dumps({"id": 8, "method": f"{wrong}.subscribe", "params": ["X"]}))
    assert err.subscribe == []
    with pytest.raises(VenueError):
        parser(name)(err.replies[0], 1, TradeColumns())
    out = TradeColumns()
    assert parser(name)(ans.replies[0], 1, out) == 0
    assert parser(name)(pong.replies[0], 1, out) == 0


@pytest.mark.parametrize("name", ["upbit_spot", "bithumb_spot"])
def test_upbit_answers_ping_and_replaces_subscriptions(name: str) -> None:
    p = proto(name)
    up = p.answer("PING")
    assert up.replies == ['{"status":"UP"}']
    req = p.subscribe_messages([p.instrument_for("BTC", "KRW"), p.instrument_for("SOMI", "KRW")])[0]
    ans = p.answer(req.encode())
    assert (ans.replies, ans.subscribe, ans.unsubscribe) == ([], ["KRW-BTC", "KRW-SOMI"], [])
    for bad in ("{not json", '{"type":"trade"}', '[{"ticket":"t"},{"type":"trade","codes":[]}]'):
        reply = p.answer(bad).replies[0]
        with pytest.raises(VenueError):
            parser(name)(reply, 1, TradeColumns())


# ---- frame edge cases --------------------------------------------------------------------


def _gate_futures(size: object, **extra: object) -> str:
    trade = {
        "size": size,
        "id": 11,
        "create_time": 1758067201,
        "create_time_ms": 1758067201203,
        "price": "100.5",
        "contract": "BTC_USDT",
        **extra,
    }
    return json.dumps({"channel": "futures.trades", "event": "update", "time": 1, "result": [trade]})


@pytest.mark.parametrize(
    ("size", "side", "quantity"),
    [
        (25, "buy", 0.0025),
        ("25", "buy", 0.0025),
        (-25, "sell", 0.0025),
        ("-25", "sell", 0.0025),
        ("-0.5", "sell", 0.00005),
    ],
)
def test_gate_futures_size_string_or_int_and_its_sign(size: object, side: str, quantity: float) -> None:
    (row,) = parse_one("gate_futures", _gate_futures(size))
    assert (row["side"], row["quantity"], row["trade_id"]) == (side, quantity, "11")
    assert row["ts_ns"] == 1758067201203000000


def test_gate_futures_keeps_internal_trades_and_rejects_unknown_contracts() -> None:
    assert len(parse_one("gate_futures", _gate_futures(-3, is_internal=True))) == 1
    out = TradeColumns()
    with pytest.raises(FrameError, match="unknown instrument"):
        parser("gate_futures")(_gate_futures(1, contract="DOGE_USDT"), 1, out)
    assert len(out) == 0
    for bad in (0, "0", "abc", "nan", "inf"):
        with pytest.raises(FrameError):
            parser("gate_futures")(_gate_futures(bad), 1, out)
    assert len(out) == 0


def test_gate_futures_bad_trade_in_a_batch_appends_nothing() -> None:
    good = {"size": 1, "id": 1, "create_time_ms": 1758067201203, "price": "1", "contract": "BTC_USDT"}
    bad = {**good, "contract": "NOPE_USDT"}
    frame = json.dumps({"channel": "futures.trades", "event": "update", "result": [good, bad]})
    out = TradeColumns()
    with pytest.raises(FrameError):
        parser("gate_futures")(frame, 1, out)
    assert len(out) == 0


def _gate_spot(create_time_ms: object, side: str = "buy") -> str:
    trade = {
        "id": 5,
        "id_market": 5,
        "create_time": 1758067201,
        "create_time_ms": create_time_ms,
        "side": side,
        "currency_pair": "SOMI_USDT",
        "amount": "1.5",
        "price": "2.25",
    }
    return json.dumps({"time": 1, "channel": "spot.trades", "event": "update", "result": trade})


@pytest.mark.parametrize(
    ("raw", "ns"),
    [
        ("1758067201193.4521", 1758067201193452100),
        ("1758067201193.000001", 1758067201193000001),
        ("1758067201193", 1758067201193000000),
        (1758067201193, 1758067201193000000),
        ("9007199254740993.1", 9007199254740993100000),
    ],
)
def test_gate_spot_fractional_ms_is_exact_ns(raw: object, ns: int) -> None:
    if ns >= 2**63:  # beyond int64: the batch holds 0 there, which the feed's batch check refuses
        out = TradeColumns()
        parser("gate_spot")(_gate_spot(raw), 7, out)
        batch = out.drain("gate", "spot")
        assert batch.ts_ns.tolist() == [0] and batch.invalid_mask().tolist() == [True]
        return
    (row,) = parse_one("gate_spot", _gate_spot(raw))
    assert row["ts_ns"] == ns
    assert (row["symbol"], row["price"], row["quantity"], row["side"], row["trade_id"]) == (
        "SOMI-USDT",
        2.25,
        1.5,
        "buy",
        "5",
    )


@pytest.mark.parametrize("raw", ["-1.5", "1.2.3", "abc", "", "1e3", 1.5])
def test_gate_spot_bad_times_are_frame_errors(raw: object) -> None:
    with pytest.raises(FrameError):
        parse_one("gate_spot", _gate_spot(raw))


def test_gate_spot_side_and_error_frames() -> None:
    assert parse_one("gate_spot", _gate_spot("1758067201193", side="sell"))[0]["side"] == "sell"
    with pytest.raises(FrameError, match="side"):
        parse_one("gate_spot", _gate_spot("1758067201193", side="Buy"))
    err = json.dumps(
        {
            "time": 1,
            "channel": "spot.trades",
            "event": "subscribe",
            "error": {"code": 2, "message": "x"},
            "result": None,
        }
    )
    with pytest.raises(VenueError, match="error"):
        parse_one("gate_spot", err)
    assert parse_one("gate_spot", '{"time":1,"channel":"spot.pong","event":"","error":null,"result":null}') == []


def test_phemex_spot_snapshot_skipped_and_missing_type_is_live() -> None:
    trades = [[1758067201210987654, "Sell", 123450000, 12000000000]]
    snap = json.dumps({"sequence": 1, "symbol": "sSOMIUSDT", "trades": trades, "type": "snapshot"})
    live = json.dumps({"sequence": 2, "symbol": "sSOMIUSDT", "trades": trades})
    assert parse_one("phemex_spot", snap) == []
    out = TradeColumns()
    assert parser("phemex_spot")(live, 3, out) == 1
    assert out.rows() == [
        {
            "symbol": "SOMI-USDT",
            "price": 1.2345,
            "quantity": 120.0,
            "side": "sell",
            "trade_id": "1758067201210987654:123450000:12000000000",
            "ts_ns": 1758067201210987654,
        }
    ]
    assert out.sequence == [2]


def test_phemex_ns_timestamps_above_2_53_stay_exact() -> None:
    ts = 1_758_067_201_215_432_033  # above 2**53 and not representable as a float
    assert ts > 2**53 and float(ts) != ts
    frame = json.dumps({"symbol": "SOMIUSDT", "trades_p": [[ts, "bid", "1.5", "2"], [ts + 1, "ask", "1.5", "3"]]})
    rows = parse_one("phemex_futures", frame)
    assert [r["ts_ns"] for r in rows] == [ts, ts + 1]
    assert [r["side"] for r in rows] == ["buy", "sell"]
    assert rows[0]["trade_id"] == f"{ts}:1.5:2"
    big = 1758067201215432101
    (row,) = parse_one("phemex_futures", json.dumps({"symbol": "SOMIUSDT", "trades_p": [[big, "Buy", "1", "1"]]}))
    assert row["ts_ns"] == big


def test_phemex_rejects_float_times_unknown_spot_symbols_and_bad_values() -> None:
    out = TradeColumns()
    cases = [
        ("phemex_futures", '{"symbol":"SOMIUSDT","trades_p":[[1.7580672012154321e18,"Buy","1","1"]]}'),
        ("phemex_futures", '{"symbol":"SOMIUSDT","trades_p":[[1758067201215432100,"Hold","1","1"]]}'),
        ("phemex_futures", '{"symbol":"SOMIUSDT","trades_p":[[1758067201215432100,"Buy","x","1"]]}'),
        ("phemex_futures", '{"symbol":"SOMIUSDT","trades_p":[[1758067201215432100,"Buy","1","-1"]]}'),
        ("phemex_futures", '{"symbol":"SOMIUSDT","trades_p":[[99999999999999999999,"Buy","1","1"]]}'),
        ("phemex_futures", '{"symbol":"SOMIUSDT","sequence":99999999999999999999,"trades_p":[[1,"Buy","1","1"]]}'),
        ("phemex_spot", '{"symbol":"sDOGEUSDT","trades":[[1758067201215432100,"Buy",1,1]]}'),
        (
            "phemex_spot",
            '{"symbol":"sSOMIUSDT","trades":[[1758067201215432100,"Buy",1,1],[1,"Buy",1,' + "9" * 400 + "]]}",
        ),
    ]
    for name, frame in cases:
        _refused(name, frame)
    with pytest.raises(FrameError, match="unknown instrument"):
        parser("phemex_spot")(cases[6][1], 1, out)
    with pytest.raises(VenueError, match="error"):
        parser("phemex_spot")('{"error":{"code":6001,"message":"invalid argument"},"id":3,"result":null}', 1, out)


def _upbit(**over: object) -> dict[str, object]:
    return {
        "type": "trade",
        "code": "KRW-SOMI",
        "timestamp": 1758067201226,
        "trade_timestamp": 1758067201225,
        "trade_price": 1718.0,
        "trade_volume": 2.5,
        "ask_bid": "ASK",
        "sequential_id": 17580672012250000,
        "stream_type": "REALTIME",
        **over,
    }


@pytest.mark.parametrize("name", ["upbit_spot", "bithumb_spot"])
def test_upbit_binary_frames_snapshot_status_and_errors(name: str) -> None:
    out = TradeColumns()
    parse = parser(name)
    assert parse(json.dumps(_upbit()).encode(), 4, out) == 1  # binary frame
    assert out.rows() == [
        {
            "symbol": "SOMI-KRW",
            "price": 1718.0,
            "quantity": 2.5,
            "side": "sell",
            "trade_id": "17580672012250000",
            "ts_ns": 1758067201225000000,
        }
    ]
    assert out.sequence == [17580672012250000]
    assert parse(json.dumps(_upbit(stream_type="SNAPSHOT")), 4, out) == 0
    assert parse(b'{"status":"UP"}', 4, out) == 0
    assert parse('{"status":"UP"}', 4, out) == 0
    with pytest.raises(VenueError, match="error") as exc:
        parse(b'{"error":{"name":"NO_CODES","message":"no codes"}}', 4, out)
    assert "NO_CODES" in exc.value.reason
    assert len(out) == 1
    # A market missing from the list is still flipped to BASE-QUOTE.
    assert parse_one(name, json.dumps(_upbit(code="USDT-XLM", ask_bid="BID")))[0]["symbol"] == "XLM-USDT"


def test_upbit_rejects_bad_trades() -> None:
    bad = [
        _upbit(ask_bid="SELL"),
        _upbit(code="KRWSOMI"),
        _upbit(type="ticker"),
        _upbit(trade_price=-1.0),
        _upbit(trade_volume=0),
        _upbit(sequential_id=2**63),
        _upbit(trade_timestamp=10**20),
        _upbit(trade_timestamp="1758067201225"),
    ]
    for msg in bad:
        _refused("upbit_spot", json.dumps(msg))


def _refused(name: str, frame: str) -> None:
    """Never stored: the parser refuses the frame (FrameError, no rows), or — an impossible value in
    a well-formed frame — every row it yields is flagged by the feed's batch check."""
    out = TradeColumns()
    try:
        parser(name)(frame, 1, out)
    except FrameError:
        assert len(out) == 0, frame
        return
    batch = out.drain("x", "spot")
    assert len(batch) and batch.invalid_mask().all(), frame


# ---- robustness --------------------------------------------------------------------------


def _mutations(frame: str) -> list[str | bytes]:
    """Truncations, type swaps and huge numbers derived from a real frame."""
    out: list[str | bytes] = [frame[:n] for n in range(0, len(frame), max(1, len(frame) // 25))]
    out += [frame.encode()[:-1], frame.replace('"', "'"), frame.replace("[", "{"), "[" + frame + "]"]
    try:
        value = json.loads(frame)
    except ValueError:
        return out

    def walk(node: object) -> list[object]:
        variants: list[object] = []
        if isinstance(node, dict):
            for key, child in node.items():
                variants += [{**node, key: v} for v in walk(child)]
                variants.append({k: v for k, v in node.items() if k != key})
        elif isinstance(node, list):
            for i, child in enumerate(node):
                variants += [[*node[:i], v, *node[i + 1 :]] for v in walk(child)]
        replacements: list[object] = [None, True, "x", "", -1, 0, 1.5, 10**30, -(10**30), "1e999", [], {}, 2**64]
        return variants + replacements

    out += [json.dumps(v) for v in walk(value)]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_no_input_raises_anything_but_frame_error(name: str) -> None:
    parse = parser(name)
    rng = random.Random(name)
    frames: list[str | bytes] = [bytes(rng.randrange(256) for _ in range(rng.randrange(64))) for _ in range(300)]
    frames += ["", "null", "1", '"pong"', "[]", "{}", "[1,2,3]", '{"result":[]}', "\x00", b"\xff\xfe", "PING"]
    for sample in load_frames(name):
        frames += _mutations(sample if isinstance(sample, str) else sample.decode())
    for frame in frames:
        out = TradeColumns()
        try:
            count = parse(frame, 1, out)
        except FrameError:
            assert len(out) == 0, frame
            continue
        assert count == len(out), frame
        for seq in out.sequence:
            assert seq == NO_SEQUENCE or 0 <= seq < 2**63
        batch = out.drain("x", "spot")  # the columns always fit their arrays
        batch.take(~batch.invalid_mask()).validate()  # impossible values are the feed's batch check's


# ---- replay encoding ---------------------------------------------------------------------


def _trade(p: VenueProtocol, **over: object) -> Trade:
    fields: dict[str, object] = {
        "ts_ns": 1758067201193452199,
        "exchange": p.spec.exchange,
        "market_type": p.spec.market_type,
        "symbol": "BTC-USDT",
        "price": 115208.7,
        "quantity": 0.0025,
        "side": "sell",
        "trade_id": "42",
        **over,
    }
    return Trade(**fields)  # type: ignore[arg-type]


def test_gate_replay_frames_look_like_gate() -> None:
    spot = proto("gate_spot")
    inst = spot.instrument_for("BTC", "USDT")
    (frame,) = spot.encode_trades(inst, [_trade(spot)])
    msg = json.loads(frame)
    assert msg["result"]["create_time_ms"] == "1758067201193.4521"
    assert msg["result"]["id"] == 42
    fut = proto("gate_futures")
    inst = fut.instrument_for("BTC", "USDT")
    assert inst.multiplier == 0.0001
    assert fut.instrument_for("ETH", "USDT").multiplier == 0.01
    (frame,) = fut.encode_trades(inst, [_trade(fut), _trade(fut, side="buy", quantity=0.014)])
    msg = json.loads(frame)
    assert [r["size"] for r in msg["result"]] == [-25, 140]
    assert msg["result"][0]["create_time_ms"] == 1758067201193
    rows = TradeColumns()
    assert fut.make_parser(Instruments([inst]))(frame, 1, rows) == 2
    assert rows.rows()[0]["ts_ns"] == 1758067201193000000


def test_phemex_replay_frames_use_scaled_ints_on_spot() -> None:
    spot = proto("phemex_spot")
    inst = spot.instrument_for("SOMI", "USDT")
    assert (inst.venue_symbol, inst.price_scale, inst.qty_scale) == ("sSOMIUSDT", 8, 8)
    (frame,) = spot.encode_trades(
        inst, [_trade(spot, price=1.2345, quantity=120.0), _trade(spot, ts_ns=1_758_067_201_999_999_999)]
    )
    msg = json.loads(frame)
    assert msg["type"] == "incremental"
    assert msg["trades"][0] == [1758067201193452199, "Sell", 123450000, 12000000000]
    rows = TradeColumns()
    assert spot.make_parser(Instruments([inst]))(frame, 1, rows) == 2
    assert rows.ts_ns == [1758067201193452199, 1_758_067_201_999_999_999]
    perp = proto("phemex_futures")
    (frame,) = perp.encode_trades(perp.instrument_for("SOMI", "USDT"), [_trade(perp, price=1.2352, quantity=1800.0)])
    assert json.loads(frame)["trades_p"] == [[1758067201193452199, "Sell", "1.2352", "1800.0"]]


def test_upbit_replays_binary_frames_and_bithumb_text() -> None:
    up, bt = proto("upbit_spot"), proto("bithumb_spot")
    inst = up.instrument_for("BTC", "KRW")
    assert inst.venue_symbol == "KRW-BTC"
    (frame,) = up.encode_trades(inst, [_trade(up, price=1718.0, quantity=2.5)])
    assert isinstance(frame, bytes)
    msg = json.loads(frame)
    assert (msg["trade_timestamp"], msg["ask_bid"], msg["sequential_id"], msg["stream_type"]) == (
        1758067201193,
        "ASK",
        42,
        "REALTIME",
    )
    assert msg["trade_date"] == "2025-09-17"
    (text,) = bt.encode_trades(inst, [_trade(bt, price=1718.0, quantity=2.5)])
    assert isinstance(text, str)
    assert "best_ask_price" not in json.loads(text)
