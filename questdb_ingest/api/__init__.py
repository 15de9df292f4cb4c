"""The HTTP API and Prometheus exposition a running service serves (``ApiServer``)."""

from .server import ApiServer, ServiceView

__all__ = ["ApiServer", "ServiceView"]
