"""``pumpwatch query`` and ``store.market`` filters: any case means the stored case, and an exchange
or market type that no row can have is refused with the valid list (exit 2, before connecting)
instead of an empty table. A recording connection stands in for QuestDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questdb_ingest.cli.query import query
from questdb_ingest.config import Settings, load_settings
from questdb_ingest.connectors.registry import CONNECTORS
from questdb_ingest.models import MarketType
from questdb_ingest.store import market, pg

from .cli_env import isolate, one_error_line

VALID_EXCHANGES = list(dict.fromkeys(c.exchange for c in CONNECTORS))


class RecordingConnection:
    """Takes every query, records its parameters, answers no rows."""

    def __init__(self) -> None:
        self.params: list[list[object]] = []

    @contextmanager
    def cursor(self, **_: Any) -> Iterator[RecordingConnection]:
        yield self

    def execute(self, _query: object, params: list[object]) -> RecordingConnection:
        self.params.append(list(params))
        return self

    def fetchall(self) -> list[tuple[object, ...]]:
        return []


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordingConnection:
    conn = RecordingConnection()

    @contextmanager
    def connect(_settings: Settings, **_: Any) -> Iterator[RecordingConnection]:
        yield conn

    monkeypatch.setattr(pg, "connect", connect)
    return conn


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(*_: object, **__: object) -> None:
        raise AssertionError("the command connected before checking its arguments")

    monkeypatch.setattr(pg, "connect", connect)


@pytest.mark.parametrize(
    ("args", "params"),
    [
        (
            ["recent", "--exchange", "BINANCE", "--market-type", "SPOT", "--symbol", "xyz-usdt"],
            ["XYZ-USDT", "binance", "spot", 20],
        ),
        (
            ["recent", "--exchange", "OKX", "--market-type", "Futures", "--symbol", "Btc"],
            ["BTC", "BTC-%", "okx", "futures", 20],
        ),
        (
            ["latest", "--symbol", "eth-usdt", "--symbol", "sol", "--exchange", "Bybit"],
            ["ETH-USDT", "SOL", "SOL-%", "bybit"],
        ),
        (
            ["candles", "cnd-usdt", "--from", "0", "--to", "59999999999", "--exchange", "GATE"],
            [0, 0, "CND-USDT", "gate"],
        ),
    ],
)
def test_filters_reach_the_query_in_stored_case(
    recorded: RecordingConnection, args: list[str], params: list[object]
) -> None:
    result = CliRunner().invoke(query, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
    assert recorded.params == [params]


def test_window_symbol_is_upper_cased(recorded: RecordingConnection) -> None:
    result = CliRunner().invoke(query, ["window", "xyz", "--at-ns", str(10**18), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["symbol"] == "XYZ"
    assert recorded.params[0][2:] == ["XYZ", "XYZ-%"]


@pytest.mark.usefixtures("no_server")
@pytest.mark.parametrize(
    ("args", "flag", "valid"),
    [
        (["recent", "--exchange", "binanse"], "--exchange", VALID_EXCHANGES),
        (["recent", "--exchange", "nyse"], "--exchange", VALID_EXCHANGES),
        (["candles", "XYZ", "--from", "1", "--to", "2", "--exchange", "coinbase"], "--exchange", VALID_EXCHANGES),
        (["latest", "--exchange", ""], "--exchange", VALID_EXCHANGES),
        (["recent", "--market-type", "perp"], "--market-type", [m.value for m in MarketType]),
        (["latest", "--market-type", "SWAP"], "--market-type", [m.value for m in MarketType]),
        (["recent", "--symbol", " XYZ"], "--symbol", []),
        (["window", "XYZ-", "--at-ns", "1"], "SYMBOL", []),
    ],
)
def test_unknown_filter_is_refused_with_the_valid_list_before_connecting(
    args: list[str], flag: str, valid: list[str]
) -> None:
    line = one_error_line(CliRunner().invoke(query, args), f"'{flag}'")
    for name in valid:
        assert name in line


def test_market_functions_normalise_and_refuse_too() -> None:
    settings = load_settings(env={})
    conn: Any = RecordingConnection()
    market.recent_trades(conn, settings, exchange="Upbit", market_type="SPOT", symbol="abc-krw", limit=5)
    market.latest_prices(conn, settings, ["abc"], market_type="FUTURES")
    assert conn.params == [["ABC-KRW", "upbit", "spot", 5], ["ABC", "ABC-%", "futures"]]
    with pytest.raises(market.QueryArgumentError) as err:
        market.recent_trades(conn, settings, exchange="nyse")
    assert err.value.argument == "exchange" and all(name in str(err.value) for name in VALID_EXCHANGES)
    with pytest.raises(market.QueryArgumentError) as err:
        market.candles(conn, settings, "ABC", 0, 1, market_type="margin")
    assert err.value.argument == "market_type" and "futures, spot" in str(err.value)
    assert len(conn.params) == 2  # nothing was sent for the refused ones
