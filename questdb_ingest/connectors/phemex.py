"""Phemex spot (``trade.subscribe``, ``sBTCUSDT``) and USDT perpetuals (``trade_p.subscribe``, ``BTCUSDT``).

A push is ``{"sequence", "symbol", "trades"|"trades_p": [[ts_ns, side, price, qty], …], "type"}``.
Element 0 is the trade time in **ns as an int above 2^53**, decoded as an exact int (strict
decoding, so a float there is rejected rather than rounded). Spot price and qty are **scaled
ints** (``priceEp / 10^priceScale``, ``qtyEv / 10^valueScale`` of the base currency); perpetual
price and qty are decimal strings in base units. Side is "Buy"/"Sell" (the docs' "bid"/"ask" is
accepted too). Every subscribe first replays up to 200 trades as ``type: "snapshot"``, which is
skipped; a push without ``type`` is live. There is **no trade id**: we use
``"<ts_ns>:<raw price>:<raw qty>"``, which is the same in the snapshot and live pushes. Limits:
20 subscriptions per connection, 20 requests/s, and a client heartbeat at least every 30 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import msgspec

from ..errors import FrameError, VenueError
from ..models import NO_SEQUENCE, Trade
from .core import (
    UNREADABLE,
    Answer,
    Frame,
    FrameParser,
    Instrument,
    Instruments,
    RecentTrades,
    RestClient,
    RestReply,
    TradeColumns,
    VenueProtocol,
    VenueSpec,
    json_body,
    malformed,
    num_text,
    split_concatenated,
)

SPOT = VenueSpec(
    connector="phemex_spot",
    exchange="phemex",
    market_type="spot",
    ws_url="wss://ws.phemex.com",
    rest_url="https://api.phemex.com",
    topics_per_connection=20,
    topics_per_message=1,
    subscribe_pause=0.06,  # 20 requests/s
    ping_interval=5.0,
    app_ping=True,
    watchdog_timeout=30.0,
    notes="5 connections and 20 subscriptions per connection per client (about 100 symbols)",
)
FUTURES = VenueSpec(
    connector="phemex_futures",
    exchange="phemex",
    market_type="futures",
    ws_url="wss://ws.phemex.com",
    rest_url="https://api.phemex.com",
    topics_per_connection=20,
    topics_per_message=1,
    subscribe_pause=0.06,
    ping_interval=5.0,
    app_ping=True,
    watchdog_timeout=30.0,
    notes="5 connections and 20 subscriptions per connection per client (about 100 symbols)",
)

_I64_LIMIT = 2**63  # ts_ns and sequence are stored as int64
_SIDES = {"Buy": "buy", "Sell": "sell", "bid": "buy", "ask": "sell", "Bid": "buy", "Ask": "sell"}
_WIRE_SIDES = {"buy": "Buy", "sell": "Sell"}
_SPOT_SCALE = 8  # every Phemex spot symbol prices with priceScale 8; most currencies use valueScale 8


class SpotPush(msgspec.Struct, frozen=True):
    symbol: str
    trades: list[tuple[int, str, int, int]]  # ts_ns, side, priceEp, qtyEv
    type: str = "incremental"
    sequence: int | None = None


class PerpPush(msgspec.Struct, frozen=True):
    symbol: str
    trades_p: list[tuple[int, str, str, str]]  # ts_ns, side, price, qty
    type: str = "incremental"
    sequence: int | None = None


class Control(msgspec.Struct, frozen=True):
    """Acks (``result: {"status": "success"}``), pongs (``result: "pong"``) and errors."""

    id: int | str | None = None
    error: object = None
    result: object = None


class Currency(msgspec.Struct, frozen=True):
    currency: str
    valueScale: int = _SPOT_SCALE  # noqa: N815 - venue field name


class SpotProduct(msgspec.Struct, frozen=True):
    symbol: str
    type: str = ""
    status: str = ""
    baseCurrency: str = ""  # noqa: N815
    quoteCurrency: str = ""  # noqa: N815
    priceScale: int = _SPOT_SCALE  # noqa: N815


class PerpProduct(msgspec.Struct, frozen=True):
    symbol: str
    status: str = ""
    baseCurrency: str = ""  # noqa: N815
    quoteCurrency: str = ""  # noqa: N815


class ProductsData(msgspec.Struct, frozen=True):
    currencies: list[Currency] = []
    products: list[SpotProduct] = []
    perpProductsV2: list[PerpProduct] = []  # noqa: N815


class Products(msgspec.Struct, frozen=True):
    """``GET /public/products``."""

    data: ProductsData


_SPOT = msgspec.json.Decoder(SpotPush)  # strict: a float ns time must not be rounded silently
_PERP = msgspec.json.Decoder(PerpPush)
_CONTROL = msgspec.json.Decoder(Control)
_PRODUCTS = msgspec.json.Decoder(Products)


def _control(frame: Frame, first_error: msgspec.DecodeError) -> int:
    """0 for acks and pongs; VenueError for errors; FrameError for anything else."""
    try:
        msg = _CONTROL.decode(frame)
    except msgspec.DecodeError:
        raise FrameError(f"malformed frame: {first_error}") from None
    except UNREADABLE as exc:
        raise malformed(exc) from None
    if msg.error is not None:
        raise VenueError(f"venue error (id {msg.id}): {msg.error}")
    if msg.id is not None and msg.result is not None:
        return 0
    raise FrameError(f"unexpected frame: {first_error}")


def _sequence(value: int | None) -> int:
    if value is None:
        return NO_SEQUENCE
    if not 0 <= value < _I64_LIMIT:
        raise FrameError(f"sequence out of range: {value}")
    return value


def _side(side: str) -> str:
    """The normalised side (the values are checked with the batch, see ``connectors.core``)."""
    norm = _SIDES.get(side)
    if norm is None:
        raise FrameError(f"unknown side {side!r}")
    return norm


def _scaled(value: float, scale: int) -> int:
    """``value * 10^scale`` as the venue's integer (exact from the shortest decimal text)."""
    return int(Decimal(num_text(value)).scaleb(scale).to_integral_value(ROUND_HALF_EVEN))


class PhemexProtocol(VenueProtocol):
    @property
    def futures(self) -> bool:
        return self.spec.market_type == "futures"

    @property
    def method(self) -> str:
        return "trade_p" if self.futures else "trade"

    def make_parser(self, instruments: Instruments) -> FrameParser:
        return self._perp_parser(instruments) if self.futures else self._spot_parser(instruments)

    def _spot_parser(self, instruments: Instruments) -> FrameParser:
        # venue symbol → (symbol, price divisor, qty divisor)
        scales: dict[str, tuple[str, int, int]] = {}
        decode = _SPOT.decode

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if msg.type == "snapshot":
                return 0  # replayed history
            scale = scales.get(msg.symbol)
            if scale is None:
                inst = instruments.get(msg.symbol)
                if inst is None:
                    raise FrameError(f"unknown instrument {msg.symbol!r} (price/qty scales needed)")
                scale = scales[msg.symbol] = (inst.symbol, 10**inst.price_scale, 10**inst.qty_scale)
            symbol, price_div, qty_div = scale
            sequence = _sequence(msg.sequence)
            rows = []
            for ts_ns, side, price_ep, qty_ev in msg.trades:
                try:
                    price, quantity = price_ep / price_div, qty_ev / qty_div
                except OverflowError:
                    raise FrameError(f"price/qty out of range: {price_ep}/{qty_ev}") from None
                norm = _side(side)
                rows.append((ts_ns, price, quantity, norm, f"{ts_ns}:{price_ep}:{qty_ev}"))
            for ts_ns, price, quantity, norm, trade_id in rows:
                out.add(ts_ns, symbol, price, quantity, norm, trade_id, recv_ns, sequence)
            return len(rows)

        return parse

    def _perp_parser(self, instruments: Instruments) -> FrameParser:
        symbols: dict[str, str] = {}
        symbol_of = instruments.symbol_of
        decode = _PERP.decode

        def parse(frame: Frame, recv_ns: int, out: TradeColumns) -> int:
            try:
                msg = decode(frame)
            except msgspec.DecodeError as exc:
                return _control(frame, exc)
            except UNREADABLE as exc:  # nested too deeply, or a str frame with lone surrogates
                raise malformed(exc) from None
            if msg.type == "snapshot":
                return 0  # replayed history
            symbol = symbols.get(msg.symbol)
            if symbol is None:
                symbol = symbols[msg.symbol] = symbol_of(msg.symbol)
            sequence = _sequence(msg.sequence)
            rows = []
            for ts_ns, side, price_text, qty_text in msg.trades_p:
                try:
                    price, quantity = float(price_text), float(qty_text)
                except ValueError:
                    raise FrameError(f"bad price/qty text: {price_text!r}/{qty_text!r}") from None
                norm = _side(side)
                rows.append((ts_ns, price, quantity, norm, f"{ts_ns}:{price_text}:{qty_text}"))
            for ts_ns, price, quantity, norm, trade_id in rows:
                out.add(ts_ns, symbol, price, quantity, norm, trade_id, recv_ns, sequence)
            return len(rows)

        return parse

    def subscribe_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        names = [inst.venue_symbol for inst in instruments]
        step = self.spec.topics_per_message
        method = f"{self.method}.subscribe"
        return [
            json_body({"id": self.next_id(), "method": method, "params": names[i : i + step]}).decode()
            for i in range(0, len(names), step)
        ]

    def ping_message(self) -> str:
        return json_body({"id": self.next_id(), "method": "server.ping", "params": []}).decode()

    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        return parse_products(await rest.get(self.spec.rest_url + "/public/products"), futures=self.futures)

    # ---- replay side -------------------------------------------------------------------
    def instrument_for(self, base: str, quote: str) -> Instrument:
        if self.futures:
            return Instrument.make(f"{base}{quote}", base, quote)
        return Instrument.make(f"s{base}{quote}", base, quote, price_scale=_SPOT_SCALE, qty_scale=_SPOT_SCALE)

    def encode_trades(self, inst: Instrument, trades: Sequence[Trade]) -> list[Frame]:
        if not trades:
            return []
        if self.futures:
            key = "trades_p"
            rows: list[list[object]] = [
                [t.ts_ns, _WIRE_SIDES[t.side], num_text(t.price), num_text(t.quantity)] for t in trades
            ]
        else:
            key = "trades"
            rows = [
                [t.ts_ns, _WIRE_SIDES[t.side], _scaled(t.price, inst.price_scale), _scaled(t.quantity, inst.qty_scale)]
                for t in trades
            ]
        msg = {"sequence": self.next_id(), "symbol": inst.venue_symbol, key: rows, "type": "incremental"}
        return [json_body(msg).decode()]

    def answer(self, frame: Frame) -> Answer:
        try:
            req = msgspec.json.decode(frame)
        except msgspec.DecodeError:
            req = None
        if not isinstance(req, dict):
            return Answer([json_body({"error": {"code": 6001, "message": "invalid request"}, "id": None,
                                      "result": None}).decode()])  # fmt: skip
        req_id, method, params = req.get("id"), req.get("method"), req.get("params")
        if method == "server.ping":
            return Answer([json_body({"error": None, "id": req_id, "result": "pong"}).decode()])
        if method not in (f"{self.method}.subscribe", f"{self.method}.unsubscribe") or not isinstance(params, list):
            return Answer([json_body({"error": {"code": 6001, "message": "invalid argument"}, "id": req_id,
                                      "result": None}).decode()])  # fmt: skip
        names = [str(p) for p in params]
        ack = [json_body({"error": None, "id": req_id, "result": {"status": "success"}}).decode()]
        if method.endswith(".subscribe"):
            return Answer(ack, subscribe=names)
        return Answer(ack, unsubscribe=names)

    def serve_rest(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        instruments: Sequence[Instrument],
        recent: RecentTrades,
        ws_url: str,
    ) -> RestReply | None:
        if path != "/public/products":
            return None
        data: dict[str, object]
        if self.futures:
            data = {
                "currencies": [],
                "products": [],
                "perpProductsV2": [
                    {"symbol": i.venue_symbol, "type": "PerpetualV2", "status": "Listed", "baseCurrency": i.base,
                     "quoteCurrency": i.quote, "settleCurrency": i.quote}
                    for i in instruments
                ],
            }  # fmt: skip
        else:
            scales = {i.quote: _SPOT_SCALE for i in instruments} | {i.base: i.qty_scale for i in instruments}
            data = {
                "currencies": [{"currency": c, "valueScale": s} for c, s in scales.items()],
                "products": [
                    {"symbol": i.venue_symbol, "type": "Spot", "status": "Listed", "baseCurrency": i.base,
                     "quoteCurrency": i.quote, "priceScale": i.price_scale}
                    for i in instruments
                ],
                "perpProductsV2": [],
            }  # fmt: skip
        return RestReply(json_body({"code": 0, "msg": "", "data": data}))


def parse_products(body: bytes, *, futures: bool) -> list[Instrument]:
    """Listed spot products (``data.products``, type "Spot") or hedged perpetuals (``data.perpProductsV2``).

    Spot scales: price from the product's ``priceScale``, quantity from the ``valueScale`` of its
    base currency in ``data.currencies`` (8 when the currency is not listed there).
    """
    data = _PRODUCTS.decode(body).data
    out = []
    if futures:
        for p in data.perpProductsV2:
            if p.status != "Listed":
                continue
            pair = _base_quote(p.symbol, p.baseCurrency, p.quoteCurrency)
            if pair is not None:
                out.append(Instrument.make(p.symbol, *pair))
        return out
    value_scales = {c.currency: c.valueScale for c in data.currencies}
    for s in data.products:
        if s.type != "Spot" or s.status != "Listed":
            continue
        pair = _base_quote(s.symbol.removeprefix("s"), s.baseCurrency, s.quoteCurrency)
        if pair is not None:
            qty_scale = value_scales.get(s.baseCurrency or pair[0], _SPOT_SCALE)
            out.append(Instrument.make(s.symbol, *pair, price_scale=s.priceScale, qty_scale=qty_scale))
    return out


def _base_quote(symbol: str, base: str, quote: str) -> tuple[str, str] | None:
    """Base and quote from the product's currency fields, else from the symbol's quote suffix."""
    if base and quote:
        return base, quote
    if quote and symbol.endswith(quote) and len(symbol) > len(quote):
        return symbol[: -len(quote)], quote
    return split_concatenated(symbol)


def protocols() -> list[VenueProtocol]:
    return [PhemexProtocol(SPOT), PhemexProtocol(FUTURES)]
