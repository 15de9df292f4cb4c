import numpy as np
import pytest

from questdb_ingest.connectors import CONNECTORS, SyntheticMarket, connector
from questdb_ingest.errors import ConfigError


def test_fourteen_registered_connectors() -> None:
    names = [c.name for c in CONNECTORS]
    assert len(names) == 14 == len(set(names))
    assert connector("binance_spot").exchange == "binance"
    with pytest.raises(ConfigError, match="binance_spot"):
        connector("nasdaq")


def test_synthetic_batches_are_valid_unique_and_ordered() -> None:
    market = SyntheticMarket(symbols=50, seed=3, run_id="r")
    batch = market.batch(20_000, start_ns=1_760_000_000_000_000_000, span_ns=10**9)
    batch.validate(now=1_760_000_001_000_000_000)
    assert len(set(batch.trade_id.tolist())) == 20_000
    assert {(e, m) for e, m in zip(batch.exchange, batch.market_type, strict=True)} == {
        (c.exchange, c.market_type) for c in CONNECTORS
    }
    assert np.all(np.diff(batch.ts_ns) > 0)
    # A second batch continues the ids.
    assert market.batch(1).trade_id[0] == "r-20000"
