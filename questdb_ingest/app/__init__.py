"""The composition root: the running system as one object (``Service``) the CLI, views and API drive."""

from .service import Service, ServiceOptions, ServiceOutcome
from .snapshot import FeedSnapshot, ServiceSnapshot

__all__ = ["FeedSnapshot", "Service", "ServiceOptions", "ServiceOutcome", "ServiceSnapshot"]
