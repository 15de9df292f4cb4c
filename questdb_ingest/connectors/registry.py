"""The venue feeds the product captures, by registered name (``binance_spot``, ...).

Twelve connectors on six venues (spot + USDⓈ-M/linear futures each) plus the two Korean
reference venues, Upbit and Bithumb, whose listings move the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .core import VenueProtocol


@dataclass(frozen=True)
class Connector:
    name: str
    exchange: str
    market_type: str
    module: str

    def protocol(self) -> VenueProtocol:
        """A fresh protocol object for this connector (real endpoints)."""
        mod = importlib.import_module(f"{__package__}.{self.module}")
        for proto in mod.protocols():
            if proto.spec.connector == self.name:
                return proto  # type: ignore[no-any-return]
        raise ConfigError("connectors", f"module {self.module} does not provide {self.name}")


_VENUES = ("binance", "bybit", "okx", "kucoin", "gate", "phemex")
CONNECTORS: tuple[Connector, ...] = (
    *(Connector(f"{venue}_{market}", venue, market, venue) for venue in _VENUES for market in ("spot", "futures")),
    Connector("upbit_spot", "upbit", "spot", "upbit"),
    Connector("bithumb_spot", "bithumb", "spot", "upbit"),
)
_BY_NAME = {c.name: c for c in CONNECTORS}
# Every exchange a connector writes, in registry order: the values the ``exchange`` column can hold.
EXCHANGES: tuple[str, ...] = tuple(dict.fromkeys(c.exchange for c in CONNECTORS))


def connector(name: str, key: str = "connectors.enabled") -> Connector:
    """Look a connector up by name; unknown names fail with the list of valid ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(key, f"unknown connector {name!r}; known: {', '.join(_BY_NAME)}") from None


def select(names: str | list[str] | tuple[str, ...] | None, key: str = "connectors.enabled") -> list[Connector]:
    """Connectors named in a comma list (or all when empty/``all``), each name checked; errors name ``key``."""
    if names is None or names == "" or names == "all" or names == ["all"]:
        return list(CONNECTORS)
    items = names.split(",") if isinstance(names, str) else list(names)
    chosen = [connector(n.strip(), key) for n in items if n.strip()]
    if not chosen:
        raise ConfigError(key, "no connector selected")
    return chosen
