import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from questdb_ingest.errors import ValidationError
from questdb_ingest.models import (
    MIN_TS_NS,
    NO_SEQUENCE,
    HealthEvent,
    ListingEvent,
    Trade,
    TradeBatch,
)

NOW = 1_763_700_000_000_000_000


def trade(**kw: object) -> Trade:
    base: dict[str, object] = dict(
        ts_ns=NOW - 5,
        exchange="binance",
        market_type="spot",
        symbol="BTC-USDT",
        price=100.5,
        quantity=0.25,
        side="buy",
        trade_id="42",
    )
    base.update(kw)
    return Trade(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", math.nan),
        ("price", math.inf),
        ("price", 0.0),
        ("price", -1.0),
        ("quantity", -0.1),
        ("quantity", math.nan),
        ("side", "long"),
        ("side", "BUY"),
        ("market_type", "margin"),
        ("symbol", ""),
        ("trade_id", ""),
        ("exchange", ""),
        ("ts_ns", 0),
        ("ts_ns", MIN_TS_NS - 1),
        ("ts_ns", NOW + 2 * 86_400 * 10**9),
    ],
)
def test_invalid_trade_names_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        trade(**{field: value}).validate(now=NOW)
    assert err.value.field == field
    assert err.value.value == value or (isinstance(value, float) and math.isnan(value))
    assert field in str(err.value)


BROKEN_SYMBOLS = [" ", "-", "KRW-", "-BTC", "BTC USDT", "BTC-USDT ", "\tBTC-USDT", "BTC--USDT", "BTC-USDT-SWAP",
                  "BTCUSDT", "BTC-\u200bUSDT"]  # fmt: skip


@pytest.mark.parametrize("symbol", BROKEN_SYMBOLS)
def test_a_symbol_must_be_base_dash_quote_without_whitespace(symbol: str) -> None:
    with pytest.raises(ValidationError) as err:
        trade(symbol=symbol).validate(now=NOW)
    assert (err.value.field, err.value.value, err.value.row) == ("symbol", symbol, 0)


def test_invalid_mask_flags_exactly_the_broken_symbols() -> None:
    good = ["BTC-USDT", "1000PEPE-USDC", "币安人生-USDT", "BTC-KRW"]
    batch = TradeBatch.from_trades([trade(symbol=s) for s in good + BROKEN_SYMBOLS])
    assert batch.invalid_mask(now=NOW).tolist() == [False] * len(good) + [True] * len(BROKEN_SYMBOLS)
    batch.take(~batch.invalid_mask(now=NOW)).validate(now=NOW)


def test_the_timestamp_window_opens_on_2009_01_01() -> None:
    first = 1_230_768_000_000_000_000  # 2009-01-01T00:00:00Z (Bitcoin's genesis block is 2009-01-03)
    assert first == MIN_TS_NS
    trade(ts_ns=first).validate(now=NOW)
    trade(ts_ns=first + 180 * 86_400 * 10**9).validate(now=NOW)  # mid-2009
    for ts in (first - 1, 1_000_000_000):  # 2008, 1970
        with pytest.raises(ValidationError, match="2009-01-01"):
            trade(ts_ns=ts).validate(now=NOW)


def test_batch_validation_reports_the_first_bad_row() -> None:
    rows = [trade(trade_id=str(i)) for i in range(10)]
    rows[7] = trade(trade_id="7", quantity=0.0)
    with pytest.raises(ValidationError) as err:
        TradeBatch.from_trades(rows).validate(now=NOW)
    assert (err.value.field, err.value.row) == ("quantity", 7)


def test_non_string_trade_id_is_rejected() -> None:
    batch = TradeBatch.from_trades([trade(), trade()])
    batch.trade_id[1] = 17
    with pytest.raises(ValidationError) as err:
        batch.validate(now=NOW)
    assert (err.value.field, err.value.row, err.value.value) == ("trade_id", 1, 17)


def test_valid_trade_passes_and_columns_have_canonical_dtypes() -> None:
    batch = TradeBatch.from_trades([trade(), trade(trade_id="43", sequence_number=9)]).validate(now=NOW)
    assert batch.ts_ns.dtype == np.int64 and batch.price.dtype == np.float64
    assert batch.exchange.dtype == object
    assert batch.sequence_number.tolist() == [NO_SEQUENCE, 9]


def test_ragged_columns_are_refused() -> None:
    good = TradeBatch.from_trades([trade()])
    with pytest.raises(ValueError, match="rows"):
        TradeBatch(**{**{n: getattr(good, n) for n in good.column_names()}, "price": np.array([1.0, 2.0])})


def test_to_frame_keeps_nanoseconds_and_nulls() -> None:
    ts = 1_758_067_201_122_000_001
    frame = TradeBatch.from_trades([trade(ts_ns=ts, sequence_number=None, recv_ns=ts + 10)]).to_frame()
    assert frame["ts"].iloc[0].value == ts
    assert frame["recv_ts"].iloc[0].value == ts + 10
    assert frame["sequence_number"].isna().iloc[0]
    assert list(frame.columns)[-1] == "ts"


# One side of a BASE-QUOTE symbol: any printable text without '-' or whitespace (categories Z and C).
symbol_part = st.text(st.characters(exclude_categories=("Z", "C"), exclude_characters="-"), min_size=1, max_size=6)
trades_strategy = st.builds(
    trade,
    ts_ns=st.integers(MIN_TS_NS, NOW),
    exchange=st.sampled_from(["binance", "okx", "gate"]),
    market_type=st.sampled_from(["spot", "futures"]),
    symbol=st.builds("{}-{}".format, symbol_part, symbol_part),
    price=st.floats(min_value=1e-12, max_value=1e12),
    quantity=st.floats(min_value=1e-12, max_value=1e12),
    side=st.sampled_from(["buy", "sell"]),
    trade_id=st.text(min_size=1, max_size=30),
    sequence_number=st.none() | st.integers(0, 2**62),
    recv_ns=st.none() | st.integers(MIN_TS_NS, NOW),
)


@given(st.lists(trades_strategy, max_size=30))
def test_row_and_columnar_forms_round_trip(rows: list[Trade]) -> None:
    batch = TradeBatch.from_trades(rows).validate(now=NOW)
    assert batch.to_trades() == rows
    assert TradeBatch.concat([batch, batch]).to_trades() == rows + rows


def test_health_and_listing_validation() -> None:
    HealthEvent(ts_ns=NOW, exchange="okx", market_type="spot", status="connected").validate(now=NOW)
    with pytest.raises(ValidationError) as err:
        HealthEvent(ts_ns=NOW, exchange="okx", market_type="spot", status="flaky").validate(now=NOW)
    assert err.value.field == "status"
    with pytest.raises(ValidationError) as err:
        ListingEvent(
            ts_ns=NOW,
            symbol="NEW-KRW",
            announced_ns=None,
            detected_ns=NOW,
            trigger_delay_ms=-1,
            collected_trades=0,
            exchanges_with_data=0,
        ).validate(now=NOW)
    assert err.value.field == "trigger_delay_ms"
