"""The HTTP API and Prometheus exposition of a running service, served by a child process
(``ApiServer``) from the snapshots the service publishes."""

from .process import ApiServer
from .server import ApiApp, ServiceView

__all__ = ["ApiApp", "ApiServer", "ServiceView"]
