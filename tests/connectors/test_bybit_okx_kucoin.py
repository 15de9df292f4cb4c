"""Bybit, OKX and KuCoin: REST lists (with Bybit's paging), recent-trade backfill, KuCoin's token URL,
subscribe chunking, replay answers and the frame edge cases the recordings do not cover."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

import pytest

from questdb_ingest.connectors.core import Instrument, Instruments, TradeColumns, VenueProtocol
from questdb_ingest.errors import FrameError, VenueError, VenueRequestError
from questdb_ingest.models import NO_SEQUENCE, Trade

from .fixtures import FixtureRest, fixture_instruments, parser, proto

TS_NS = 1_758_067_201_148_000_000


def insts(name: str, count: int) -> list[Instrument]:
    p = proto(name)
    return [p.instrument_for(f"C{i}", "USDT") for i in range(count)]


class ScriptedRest:
    """A ``RestClient`` answering GETs from a list of bodies, recording the params it was sent."""

    def __init__(self, bodies: Sequence[object]) -> None:
        self.bodies = [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bodies]
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        self.calls.append((url, dict(params or {})))
        return self.bodies[len(self.calls) - 1]

    async def post(self, url: str, body: bytes = b"") -> bytes:
        self.calls.append((url, {}))
        return self.bodies[len(self.calls) - 1]


class ReplayRest:
    """A ``RestClient`` served by the protocol's own replay endpoints (client ↔ replay agreement)."""

    def __init__(self, p: VenueProtocol, instruments: Sequence[Instrument], recent: Mapping[str, list[Trade]]) -> None:
        self.p, self.instruments, self.recent = p, instruments, recent
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def _serve(self, method: str, url: str, params: Mapping[str, str] | None) -> bytes:
        path = url[len(self.p.spec.rest_url) :]
        self.calls.append((method, path, dict(params or {})))
        reply = self.p.serve_rest(
            method, path, dict(params or {}), self.instruments, lambda s: self.recent.get(s, []), "ws://replay/ws"
        )
        assert reply is not None and reply.status == 200, (path, reply)
        return reply.body

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> bytes:
        return self._serve("GET", url, params)

    async def post(self, url: str, body: bytes = b"") -> bytes:
        return self._serve("POST", url, None)


def trade(name: str, i: int, *, quantity: float = 1.5, side: str = "buy") -> Trade:
    p = proto(name)
    return Trade(
        ts_ns=TS_NS + i * 1_000_000,
        exchange=p.spec.exchange,
        market_type=p.spec.market_type,
        symbol="BTC-USDT",
        price=100.0 + i,
        quantity=quantity,
        side=side,
        trade_id=str(1000 + i),
    )


# ---- REST symbol lists ------------------------------------------------------------------


def test_bybit_spot_lists_trading_symbols() -> None:
    p = proto("bybit_spot")
    rest = FixtureRest("bybit_spot", p.spec.rest_url)
    got = asyncio.run(p.fetch_instruments(rest))
    assert rest.calls == [("GET", "https://api.bybit.com/v5/market/instruments-info", {"category": "spot"})]
    assert [(i.venue_symbol, i.symbol) for i in got] == [
        ("BTCUSDT", "BTC-USDT"),
        ("SOMIUSDT", "SOMI-USDT"),
        ("ETHBTC", "ETH-BTC"),
    ]


def test_bybit_linear_keeps_only_usdt_perpetuals() -> None:
    got = fixture_instruments(proto("bybit_futures"))
    assert sorted(got) == ["BTCUSDT", "SOMIUSDT"]
    assert got["BTCUSDT"].multiplier == 1.0


def _page(symbols: list[str], cursor: str) -> dict[str, object]:
    rows = [
        {"symbol": s, "baseCoin": s[:-4], "quoteCoin": "USDT", "status": "Trading", "contractType": "LinearPerpetual"}
        for s in symbols
    ]
    return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": rows, "nextPageCursor": cursor}}


def test_bybit_linear_pages_with_the_cursor() -> None:
    rest = ScriptedRest([_page(["AAAUSDT"], "c1"), _page(["BBBUSDT"], "c2"), _page(["CCCUSDT"], "")])
    got = asyncio.run(proto("bybit_futures").fetch_instruments(rest))
    assert [i.symbol for i in got] == ["AAA-USDT", "BBB-USDT", "CCC-USDT"]
    assert [params for _, params in rest.calls] == [
        {"category": "linear", "limit": "1000"},
        {"category": "linear", "limit": "1000", "cursor": "c1"},
        {"category": "linear", "limit": "1000", "cursor": "c2"},
    ]


def test_bybit_paging_stops_on_a_repeated_cursor() -> None:
    rest = ScriptedRest([_page(["AAAUSDT"], "c1"), _page(["BBBUSDT"], "c1"), _page(["CCCUSDT"], "")])
    got = asyncio.run(proto("bybit_futures").fetch_instruments(rest))
    assert [i.symbol for i in got] == ["AAA-USDT", "BBB-USDT"]
    assert len(rest.calls) == 2


@pytest.mark.parametrize(
    "body", [{"retCode": 10006, "retMsg": "Too many visits!", "result": {}}, b"<html>502</html>", b"[]"]
)
def test_bybit_bad_instrument_answers_raise_venue_request_error(body: object) -> None:
    with pytest.raises(VenueRequestError):
        asyncio.run(proto("bybit_futures").fetch_instruments(ScriptedRest([body])))


def test_okx_spot_lists_live_pairs() -> None:
    p = proto("okx_spot")
    rest = FixtureRest("okx_spot", p.spec.rest_url)
    got = asyncio.run(p.fetch_instruments(rest))
    assert rest.calls == [("GET", "https://www.okx.com/api/v5/public/instruments", {"instType": "SPOT"})]
    assert [i.symbol for i in got] == ["BTC-USDT", "SOMI-USDT", "ETH-BTC"]


def test_okx_swap_carries_ct_val_and_skips_inverse_usdc_and_preopen() -> None:
    got = fixture_instruments(proto("okx_futures"))
    assert sorted(got) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOMI-USDT-SWAP"]
    btc = got["BTC-USDT-SWAP"]
    assert (btc.symbol, btc.size_num, btc.size_den) == ("BTC-USDT", 1, 100)
    assert got["ETH-USDT-SWAP"].to_base(3) == 0.3
    assert got["SOMI-USDT-SWAP"].to_base(2) == 20.0


def test_okx_swap_pair_falls_back_to_the_inst_id() -> None:
    row = {"instId": "PEPE-USDT-SWAP", "settleCcy": "USDT", "ctType": "linear", "ctVal": "10000000", "state": "live"}
    bad = {**row, "instId": "ZZZ-USDT-SWAP", "ctVal": ""}
    got = asyncio.run(proto("okx_futures").fetch_instruments(ScriptedRest([{"code": "0", "data": [row, bad]}])))
    assert [(i.venue_symbol, i.symbol, i.multiplier) for i in got] == [("PEPE-USDT-SWAP", "PEPE-USDT", 10_000_000.0)]


def test_okx_error_code_raises_venue_request_error() -> None:
    body = {"code": "50011", "msg": "Rate limit reached", "data": []}
    with pytest.raises(VenueRequestError, match="50011"):
        asyncio.run(proto("okx_spot").fetch_instruments(ScriptedRest([body])))


def test_kucoin_spot_lists_enabled_symbols() -> None:
    p = proto("kucoin_spot")
    rest = FixtureRest("kucoin_spot", p.spec.rest_url)
    got = asyncio.run(p.fetch_instruments(rest))
    assert rest.calls == [("GET", "https://api.kucoin.com/api/v2/symbols", None)]
    assert [i.symbol for i in got] == ["BTC-USDT", "SOMI-USDT", "ETH-BTC"]


def test_kucoin_futures_maps_xbt_and_keeps_only_open_usdt_perpetuals() -> None:
    got = fixture_instruments(proto("kucoin_futures"))
    assert sorted(got) == ["ETHUSDTM", "SOMIUSDTM", "XBTUSDTM"]
    xbt = got["XBTUSDTM"]
    assert (xbt.symbol, xbt.size_num, xbt.size_den) == ("BTC-USDT", 1, 1000)
    assert got["SOMIUSDTM"].multiplier == 1.0


# ---- KuCoin token URL --------------------------------------------------------------------


def test_kucoin_connect_url_comes_from_bullet_public() -> None:
    p = proto("kucoin_spot")
    rest = FixtureRest("kucoin_spot", p.spec.rest_url)
    url = asyncio.run(p.connect_url(rest))
    assert rest.calls == [("POST", "https://api.kucoin.com/api/v1/bullet-public", None)]
    assert url.startswith("wss://ws-api-spot.kucoin.com/?token=2neAiuYvAU61ZDXANAGAsiL4-")
    assert url.endswith("Yrk8MMkQpEDmb7nHNBHb2g==&connectId=1")
    again = asyncio.run(p.connect_url(rest))
    assert again.endswith("&connectId=2")


def test_kucoin_futures_connect_url_uses_the_futures_host() -> None:
    p = proto("kucoin_futures")
    rest = FixtureRest("kucoin_futures", p.spec.rest_url)
    url = asyncio.run(p.connect_url(rest))
    assert rest.calls[0][1] == "https://api-futures.kucoin.com/api/v1/bullet-public"
    assert url.startswith("wss://ws-api-futures.kucoin.com/?token=")


@pytest.mark.parametrize(
    "body",
    [
        {"code": "400100", "msg": "Too many requests"},
        {"code": "200000", "data": {"token": "", "instanceServers": [{"endpoint": "wss://x/"}]}},
        {"code": "200000", "data": {"token": "t", "instanceServers": []}},
        b"not json",
    ],
)
def test_kucoin_bad_bullet_answer_raises_venue_request_error(body: object) -> None:
    with pytest.raises(VenueRequestError):
        asyncio.run(proto("kucoin_spot").connect_url(ScriptedRest([body])))


# ---- subscribe and ping ------------------------------------------------------------------


def test_bybit_spot_subscribes_ten_args_per_message() -> None:
    p = proto("bybit_spot")
    msgs = [json.loads(m) for m in p.subscribe_messages(insts("bybit_spot", 25))]
    assert [len(m["args"]) for m in msgs] == [10, 10, 5]
    assert msgs[0]["op"] == "subscribe" and msgs[0]["args"][0] == "publicTrade.C0USDT"
    assert [m["req_id"] for m in msgs] == ["1", "2", "3"]


def test_bybit_linear_subscribes_a_hundred_args_per_message() -> None:
    msgs = [json.loads(m) for m in proto("bybit_futures").subscribe_messages(insts("bybit_futures", 250))]
    assert [len(m["args"]) for m in msgs] == [100, 100, 50]


def test_okx_subscribes_channel_args_in_chunks() -> None:
    msgs = [json.loads(m) for m in proto("okx_futures").subscribe_messages(insts("okx_futures", 250))]
    assert [len(m["args"]) for m in msgs] == [100, 100, 50]
    assert msgs[0]["args"][0] == {"channel": "trades", "instId": "C0-USDT-SWAP"}
    assert all(len(json.dumps(m).encode()) <= 64 * 1024 for m in msgs)


def test_kucoin_subscribes_comma_joined_topics() -> None:
    msgs = [json.loads(m) for m in proto("kucoin_spot").subscribe_messages(insts("kucoin_spot", 150))]
    assert len(msgs) == 2
    first = msgs[0]
    assert first["type"] == "subscribe" and first["response"] is True and first["privateChannel"] is False
    assert first["topic"].startswith("/market/match:C0-USDT,C1-USDT,")
    assert len(first["topic"].split(":", 1)[1].split(",")) == 100
    futures = json.loads(
        proto("kucoin_futures").subscribe_messages([proto("kucoin_futures").instrument_for("BTC", "USDT")])[0]
    )
    assert futures["topic"] == "/contractMarket/execution:XBTUSDTM"


def test_ping_messages() -> None:
    bybit = proto("bybit_spot")
    assert json.loads(bybit.ping_message() or "") == {"req_id": "1", "op": "ping"}
    assert json.loads(bybit.ping_message() or "")["req_id"] == "2"
    assert proto("okx_spot").ping_message() == "ping"
    assert json.loads(proto("kucoin_futures").ping_message() or "") == {"id": "1", "type": "ping"}
    for name in ("bybit_spot", "bybit_futures", "okx_spot", "okx_futures", "kucoin_spot", "kucoin_futures"):
        assert proto(name).spec.app_ping


# ---- frames ------------------------------------------------------------------------------


def test_bybit_keeps_snapshot_frames_and_their_sequence() -> None:
    frame = {
        "topic": "publicTrade.PEPEUSDT",
        "type": "snapshot",
        "ts": 1,
        "data": [{"i": "1", "T": 1758067201148, "p": "0.00001", "v": "1e6", "S": "Sell", "s": "PEPEUSDT", "seq": 5}],
    }
    out = TradeColumns()
    assert parser("bybit_spot")(json.dumps(frame), 7, out) == 1
    assert out.rows() == [
        {"symbol": "PEPE-USDT", "price": 1e-05, "quantity": 1e6, "side": "sell", "trade_id": "1", "ts_ns": TS_NS}
    ]
    assert out.sequence == [5]


def test_bybit_bad_trade_in_a_batch_appends_nothing() -> None:
    good = {"i": "1", "T": 1758067201148, "p": "1", "v": "1", "S": "Buy", "s": "BTCUSDT"}
    frame = json.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "data": [good, {**good, "S": "Hold"}]})
    out = TradeColumns()
    with pytest.raises(FrameError):
        parser("bybit_spot")(frame, 7, out)
    assert len(out) == 0


@pytest.mark.parametrize(
    "frame",
    [
        '{"success":false,"ret_msg":"error:handler not found,topic:publicTrade.FOO","conn_id":"x","op":"subscribe"}',
        '{"success":false,"ret_msg":"Invalid symbol :[publicTrade.FOO]","conn_id":"x","op":"subscribe"}',
    ],
)
def test_bybit_failed_request_is_a_venue_error(frame: str) -> None:
    with pytest.raises(VenueError, match="error"):
        parser("bybit_futures")(frame, 7, TradeColumns())


def test_bybit_rejects_other_topics_and_text_pong() -> None:
    p = parser("bybit_spot")
    with pytest.raises(FrameError, match="topic"):
        p('{"topic":"orderbook.1.BTCUSDT","type":"snapshot","data":[]}', 7, TradeColumns())
    with pytest.raises(FrameError):
        p("pong", 7, TradeColumns())


def test_okx_error_frame_raises_venue_error_frame() -> None:
    frame = '{"event":"error","code":"60012","msg":"Invalid request","connId":"a"}'
    with pytest.raises(VenueError, match="error") as info:
        parser("okx_spot")(frame, 7, TradeColumns())
    assert "60012" in info.value.reason


def test_okx_text_pong_and_notices_give_nothing() -> None:
    p, out = parser("okx_spot"), TradeColumns()
    assert p("pong", 7, out) == 0
    assert p(b"pong", 7, out) == 0
    assert p('{"event":"notice","code":"64008","msg":"service upgrade","connId":"a"}', 7, out) == 0
    assert len(out) == 0


def test_okx_swap_unknown_instrument_is_rejected() -> None:
    row = {"instId": "FOO-USDT-SWAP", "tradeId": "1", "px": "1", "sz": "1", "side": "buy", "ts": "1758067201148"}
    frame = json.dumps({"arg": {"channel": "trades", "instId": "FOO-USDT-SWAP"}, "data": [row]})
    with pytest.raises(FrameError, match="unknown instrument"):
        parser("okx_futures")(frame, 7, TradeColumns())


def test_okx_spot_unknown_pair_falls_back_and_keeps_seq_id() -> None:
    row = {
        "instId": "NEW-USDT",
        "tradeId": "9",
        "px": "2",
        "sz": "3",
        "side": "sell",
        "ts": "1758067201148",
        "seqId": 42,
    }
    out = TradeColumns()
    parser("okx_spot")(json.dumps({"arg": {"channel": "trades", "instId": "NEW-USDT"}, "data": [row]}), 7, out)
    assert out.rows()[0]["symbol"] == "NEW-USDT" and out.rows()[0]["ts_ns"] == TS_NS
    assert out.sequence == [42]


def test_kucoin_futures_price_as_number_or_string_and_sequence() -> None:
    base = {"symbol": "XBTUSDTM", "sequence": 12, "side": "buy", "size": 3, "tradeId": "5", "ts": 1758067201148000001}
    for price in ("100.5", 100.5):
        frame = {
            "topic": "/contractMarket/execution:XBTUSDTM",
            "type": "message",
            "subject": "match",
            "data": {**base, "price": price},
        }
        out = TradeColumns()
        assert parser("kucoin_futures")(json.dumps(frame), 7, out) == 1
        assert out.rows() == [
            {
                "symbol": "BTC-USDT",
                "price": 100.5,
                "quantity": 0.003,
                "side": "buy",
                "trade_id": "5",
                "ts_ns": TS_NS + 1,
            }
        ]
        assert out.sequence == [12]


def test_kucoin_futures_unknown_contract_is_rejected() -> None:
    data = {"symbol": "FOOUSDTM", "side": "buy", "size": 3, "price": "1", "tradeId": "5", "ts": 1758067201148000001}
    frame = {"topic": "/contractMarket/execution:FOOUSDTM", "type": "message", "subject": "match", "data": data}
    with pytest.raises(FrameError, match="unknown instrument"):
        parser("kucoin_futures")(json.dumps(frame), 7, TradeColumns())


def test_kucoin_spot_sequence_string_and_non_numeric() -> None:
    data = {
        "symbol": "SOMI-USDT",
        "side": "sell",
        "price": "1",
        "size": "2",
        "tradeId": "7",
        "time": "1758067201148000000",
    }
    for seq, expected in (("123", 123), ("abc", NO_SEQUENCE), ("9" * 30, NO_SEQUENCE)):
        frame = {
            "type": "message",
            "topic": "/market/match:SOMI-USDT",
            "subject": "trade.l3match",
            "data": {**data, "sequence": seq},
        }
        out = TradeColumns()
        parser("kucoin_spot")(json.dumps(frame), 7, out)
        assert out.sequence == [expected]


def test_kucoin_error_and_control_frames() -> None:
    p = parser("kucoin_spot")
    for frame in ('{"id":"1","type":"welcome"}', '{"id":"2","type":"ack"}', '{"id":"3","type":"pong"}'):
        assert p(frame, 7, TradeColumns()) == 0
    with pytest.raises(VenueError, match="error"):
        p('{"id":"4","type":"error","code":404,"data":"topic /market/match:FOO-USDT is not found"}', 7, TradeColumns())
    with pytest.raises(FrameError):
        p(
            '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update","data":{}}',
            7,
            TradeColumns(),
        )


@pytest.mark.parametrize(
    "name", ["bybit_spot", "bybit_futures", "okx_spot", "okx_futures", "kucoin_spot", "kucoin_futures"]
)
@pytest.mark.parametrize("frame", ["", "pong ", "[1,2]", "null", '{"data":[1]}', "\ud800", b"\xff\x00", "{" * 50])
def test_garbage_is_a_frame_error(name: str, frame: str | bytes) -> None:
    out = TradeColumns()
    with pytest.raises(FrameError):
        parser(name)(frame, 7, out)
    assert len(out) == 0


# ---- backfill ----------------------------------------------------------------------------


def test_bybit_recent_trades_spot_and_linear() -> None:
    for name, limit, rows in (
        ("bybit_spot", "60", [("2290000000812345674", 33.0, "sell"), ("2290000000812345673", 80.25, "buy")]),
        (
            "bybit_futures",
            "1000",
            [
                ("1d0e9f8a-7b6c-5d4e-8f2a-3b2c1d0e9f8a", 75.0, "buy"),
                ("8f3e2a71-4c5d-5b9e-a1f2-3c4d5e6f7a8b", 1500.0, "sell"),
            ],
        ),
    ):
        p = proto(name)
        assert p.supports_backfill
        rest = FixtureRest(name, p.spec.rest_url)
        inst = fixture_instruments(p)["SOMIUSDT"]
        out = TradeColumns()
        assert asyncio.run(p.fetch_recent_trades(rest, inst, out, 9)) == 2
        category = "spot" if name == "bybit_spot" else "linear"
        assert rest.calls == [
            (
                "GET",
                "https://api.bybit.com/v5/market/recent-trade",
                {"category": category, "symbol": "SOMIUSDT", "limit": limit},
            )
        ]
        assert [(r["trade_id"], r["quantity"], r["side"]) for r in out.rows()] == rows
        assert {r["symbol"] for r in out.rows()} == {"SOMI-USDT"}
        assert out.recv_ns == [9, 9]
    assert out.ts_ns == [1758067201309000000, 1758067201158000000]
    assert out.sequence == [45678901240, 45678901234]


def test_okx_recent_trades_convert_contracts() -> None:
    p = proto("okx_futures")
    rest = FixtureRest("okx_futures", p.spec.rest_url)
    out = TradeColumns()
    n = asyncio.run(p.fetch_recent_trades(rest, fixture_instruments(p)["BTC-USDT-SWAP"], out, 9))
    assert n == 2
    assert rest.calls == [
        ("GET", "https://www.okx.com/api/v5/market/trades", {"instId": "BTC-USDT-SWAP", "limit": "500"})
    ]
    assert [(r["trade_id"], r["price"], r["quantity"], r["side"]) for r in out.rows()] == [
        ("1587654322", 115210.1, 0.005, "sell"),
        ("1587654321", 115210.3, 0.12, "sell"),
    ]
    assert out.ts_ns == [1758067201180000000] * 2
    assert set(out.symbol) == {"BTC-USDT"}


def test_okx_spot_recent_trades() -> None:
    p = proto("okx_spot")
    out = TradeColumns()
    n = asyncio.run(
        p.fetch_recent_trades(FixtureRest("okx_spot", p.spec.rest_url), fixture_instruments(p)["SOMI-USDT"], out, 9)
    )
    assert n == 2 and [r["quantity"] for r in out.rows()] == [410.5, 88.0]


def test_bad_recent_trade_answers_append_nothing() -> None:
    p = proto("okx_spot")
    inst = p.instrument_for("BTC", "USDT")
    bad_side = {
        "code": "0",
        "data": [{"instId": "BTC-USDT", "tradeId": "1", "px": "1", "sz": "1", "side": "x", "ts": "1"}],
    }
    for body in (bad_side, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}, b"{"):
        out = TradeColumns()
        with pytest.raises(VenueRequestError):
            asyncio.run(p.fetch_recent_trades(ScriptedRest([body]), inst, out, 9))
        assert len(out) == 0


def test_kucoin_has_no_backfill() -> None:
    assert not proto("kucoin_spot").supports_backfill
    assert not proto("kucoin_futures").supports_backfill


# ---- replay side -------------------------------------------------------------------------


def test_instrument_for_names_like_the_venue() -> None:
    assert proto("bybit_futures").instrument_for("BTC", "USDT").venue_symbol == "BTCUSDT"
    assert proto("okx_spot").instrument_for("BTC", "USDT").venue_symbol == "BTC-USDT"
    swap = proto("okx_futures").instrument_for("BTC", "USDT")
    assert (swap.venue_symbol, swap.symbol, swap.multiplier) == ("BTC-USDT-SWAP", "BTC-USDT", 0.01)
    xbt = proto("kucoin_futures").instrument_for("BTC", "USDT")
    assert (xbt.venue_symbol, xbt.symbol, xbt.multiplier) == ("XBTUSDTM", "BTC-USDT", 0.001)
    assert proto("kucoin_futures").instrument_for("SOL", "USDT").venue_symbol == "SOLUSDTM"


@pytest.mark.parametrize(
    "name", ["bybit_spot", "bybit_futures", "okx_spot", "okx_futures", "kucoin_spot", "kucoin_futures"]
)
def test_replay_rest_lists_what_the_client_parses(name: str) -> None:
    p = proto(name)
    listed = [p.instrument_for(base, "USDT") for base in ("BTC", "ETH", "SOL")] + insts(
        name, 2500 if name == "bybit_futures" else 3
    )
    rest = ReplayRest(p, listed, {})
    got = asyncio.run(p.fetch_instruments(rest))
    assert got == listed
    if name == "bybit_futures":
        assert len(rest.calls) == 3  # 2503 rows in pages of 1000


@pytest.mark.parametrize("name", ["bybit_spot", "bybit_futures", "okx_spot", "okx_futures"])
def test_replay_recent_trades_come_back_newest_first_within_the_limit(name: str) -> None:
    p = proto(name)
    inst = p.instrument_for("BTC", "USDT")
    contracts = inst.size_num != inst.size_den
    history = [trade(name, i, quantity=inst.to_base(i + 1) if contracts else 0.25 * (i + 1)) for i in range(1200)]
    rest = ReplayRest(p, [inst], {inst.venue_symbol: history})
    out = TradeColumns()
    n = asyncio.run(p.fetch_recent_trades(rest, inst, out, 9))
    expected = {"bybit_spot": 60, "bybit_futures": 1000, "okx_spot": 500, "okx_futures": 500}[name]
    assert n == expected
    newest = history[::-1][:expected]
    assert out.trade_id == [t.trade_id for t in newest]
    assert out.quantity == [t.quantity for t in newest]
    assert out.ts_ns == [t.ts_ns for t in newest]


def test_replay_bullet_public_points_at_the_replay_socket() -> None:
    p = proto("kucoin_futures")
    url = asyncio.run(p.connect_url(ReplayRest(p, [], {})))
    assert url == "ws://replay/ws?token=replay&connectId=1"


def test_replay_unknown_paths_are_none() -> None:
    for name in ("bybit_spot", "okx_futures", "kucoin_spot"):
        assert proto(name).serve_rest("GET", "/nope", {}, [], lambda s: [], "ws://x") is None
    assert proto("kucoin_spot").serve_rest("GET", "/api/v1/contracts/active", {}, [], lambda s: [], "ws://x") is None


@pytest.mark.parametrize(("name", "per_frame"), [("bybit_futures", 1024), ("okx_spot", 100), ("kucoin_spot", 1)])
def test_encode_batches_like_the_venue(name: str, per_frame: int) -> None:
    p = proto(name)
    inst = p.instrument_for("BTC", "USDT")
    trades = [trade(name, i, side="sell" if i % 3 else "buy") for i in range(2100)]
    frames = p.encode_trades(inst, trades)
    assert len(frames) == -(-2100 // per_frame)
    parse, out = p.make_parser(Instruments([inst])), TradeColumns()
    assert sum(parse(f, 7, out) for f in frames) == 2100
    assert out.trade_id == [t.trade_id for t in trades]
    assert out.side == [t.side for t in trades]
    assert out.ts_ns == [t.ts_ns for t in trades]


@pytest.mark.parametrize("name", ["okx_futures", "kucoin_futures"])
def test_encode_whole_contracts_round_trip_exactly(name: str) -> None:
    p = proto(name)
    for base in ("BTC", "ETH", "DOGE"):
        inst = p.instrument_for(base, "USDT")
        trades = [trade(name, k, quantity=inst.to_base(k)) for k in (1, 3, 7, 12, 999, 123_457)]
        out = TradeColumns()
        parse = p.make_parser(Instruments([inst]))
        for frame in p.encode_trades(inst, trades):
            parse(frame, 7, out)
        assert out.quantity == [t.quantity for t in trades]
        assert set(out.symbol) == {f"{base}-USDT"}


def test_kucoin_futures_encodes_integer_lots() -> None:
    p = proto("kucoin_futures")
    inst = p.instrument_for("BTC", "USDT")
    frame = json.loads(p.encode_trades(inst, [trade("kucoin_futures", 0, quantity=0.037)])[0])
    assert frame["data"]["size"] == 37 and frame["data"]["ts"] == TS_NS
    assert frame["subject"] == "match" and frame["topic"] == "/contractMarket/execution:XBTUSDTM"


def test_bybit_answers() -> None:
    spot, linear = proto("bybit_spot"), proto("bybit_futures")
    sub = '{"req_id":"1","op":"subscribe","args":["publicTrade.BTCUSDT","publicTrade.ETHUSDT"]}'
    a = spot.answer(sub)
    assert a.subscribe == ["BTCUSDT", "ETHUSDT"]
    assert json.loads(a.replies[0])["ret_msg"] == "subscribe" and json.loads(a.replies[0])["success"] is True
    assert json.loads(linear.answer(sub).replies[0])["ret_msg"] == ""
    unsub = linear.answer(sub.replace('"subscribe"', '"unsubscribe"'))
    assert unsub.unsubscribe == ["BTCUSDT", "ETHUSDT"] and not unsub.subscribe
    pong = json.loads(linear.answer('{"req_id":"5","op":"ping"}').replies[0])
    assert (pong["op"], pong["ret_msg"]) == ("ping", "pong")
    too_many = json.dumps({"op": "subscribe", "args": [f"publicTrade.C{i}USDT" for i in range(11)]})
    assert not spot.answer(too_many).subscribe
    assert linear.answer(too_many).subscribe
    for p in (spot, linear):
        parse = p.make_parser(Instruments())
        assert parse(p.answer(sub).replies[0], 7, TradeColumns()) == 0
        assert parse(p.answer('{"op":"ping"}').replies[0], 7, TradeColumns()) == 0
        for bad in ("garbage", too_many if p is spot else "[]", '{"op":"subscribe","args":["orderbook.1.BTCUSDT"]}'):
            answer = p.answer(bad)
            assert not answer.subscribe
            with pytest.raises(VenueError, match="error"):
                parse(answer.replies[0], 7, TradeColumns())


def test_okx_answers() -> None:
    p = proto("okx_futures")
    assert p.answer("ping").replies == ["pong"]
    sub = json.dumps(
        {
            "id": "7",
            "op": "subscribe",
            "args": [
                {"channel": "trades", "instId": "BTC-USDT-SWAP"},
                {"channel": "trades", "instId": "ETH-USDT-SWAP"},
            ],
        }
    )
    a = p.answer(sub)
    assert a.subscribe == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert [json.loads(r)["event"] for r in a.replies] == ["subscribe", "subscribe"]
    assert json.loads(a.replies[0])["id"] == "7"
    parse = p.make_parser(Instruments())
    assert all(parse(r, 7, TradeColumns()) == 0 for r in a.replies)
    assert parse(p.answer("ping").replies[0], 7, TradeColumns()) == 0
    for bad in ("garbage", '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}', '{"op":"login"}'):
        answer = p.answer(bad)
        assert not answer.subscribe
        with pytest.raises(VenueError, match="error"):
            parse(answer.replies[0], 7, TradeColumns())


def test_kucoin_answers_and_greeting() -> None:
    p = proto("kucoin_futures")
    parse = p.make_parser(Instruments())
    assert parse(p.greeting()[0], 7, TradeColumns()) == 0
    a = p.answer('{"id":"3","type":"subscribe","topic":"/contractMarket/execution:XBTUSDTM,ETHUSDTM","response":true}')
    assert a.subscribe == ["XBTUSDTM", "ETHUSDTM"]
    assert json.loads(a.replies[0]) == {"id": "3", "type": "ack"}
    quiet = p.answer('{"id":"4","type":"unsubscribe","topic":"/contractMarket/execution:XBTUSDTM","response":false}')
    assert quiet.unsubscribe == ["XBTUSDTM"] and quiet.replies == []
    pong = p.answer('{"id":"9","type":"ping"}').replies[0]
    assert json.loads(pong) == {"id": "9", "type": "pong"} and parse(pong, 7, TradeColumns()) == 0
    many = json.dumps(
        {
            "id": "5",
            "type": "subscribe",
            "topic": "/contractMarket/execution:" + ",".join(f"C{i}USDTM" for i in range(101)),
        }
    )
    for bad in ("garbage", '{"id":"6","type":"subscribe","topic":"/market/match:BTC-USDT"}', many):
        answer = p.answer(bad)
        assert not answer.subscribe
        with pytest.raises(VenueError, match="error"):
            parse(answer.replies[0], 7, TradeColumns())


def test_specs() -> None:
    assert proto("bybit_spot").spec.ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert proto("bybit_futures").spec.ws_url == "wss://stream.bybit.com/v5/public/linear"
    assert proto("okx_futures").spec.ws_url == proto("okx_spot").spec.ws_url == "wss://ws.okx.com:8443/ws/v5/public"
    assert proto("okx_spot").spec.subscribe_pause == 0.5
    assert proto("kucoin_spot").spec.ping_interval == 18.0
    assert proto("bybit_spot").spec.topics_per_message == 10
    for name in ("bybit_spot", "bybit_futures", "okx_spot", "okx_futures", "kucoin_spot", "kucoin_futures"):
        assert proto(name).spec.max_lifetime is None


def test_replay_recent_trades_of_an_unlisted_symbol_are_a_venue_error() -> None:
    bybit = proto("bybit_futures").serve_rest(
        "GET", "/v5/market/recent-trade", {"symbol": "FOOUSDT"}, [], lambda s: [], "ws://x"
    )
    assert bybit is not None and json.loads(bybit.body)["retCode"] == 10001
    okx = proto("okx_futures").serve_rest(
        "GET", "/api/v5/market/trades", {"instId": "FOO-USDT-SWAP"}, [], lambda s: [], "ws://x"
    )
    assert okx is not None and okx.status == 400 and json.loads(okx.body)["code"] == "51001"
    bad_limit = proto("okx_spot").serve_rest("GET", "/api/v5/market/trades", {"limit": "x"}, [], lambda s: [], "ws://x")
    assert bad_limit is not None and bad_limit.status == 400
