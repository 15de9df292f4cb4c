"""Trade sources: venue connectors (registry), and the synthetic generator."""

from .registry import CONNECTORS, Connector, connector
from .synthetic import SyntheticMarket

__all__ = ["CONNECTORS", "Connector", "SyntheticMarket", "connector"]
