"""The twelve venue feeds the product captures, by registered name (``binance_spot``, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Connector:
    name: str
    exchange: str
    market_type: str


_VENUES = ("binance", "bybit", "okx", "kucoin", "gate", "phemex")
CONNECTORS: tuple[Connector, ...] = tuple(
    Connector(f"{venue}_{market}", venue, market) for venue in _VENUES for market in ("spot", "futures")
)
_BY_NAME = {c.name: c for c in CONNECTORS}


def connector(name: str) -> Connector:
    """Look a connector up by name; unknown names fail with the list of valid ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError("connectors", f"unknown connector {name!r}; known: {', '.join(_BY_NAME)}") from None
