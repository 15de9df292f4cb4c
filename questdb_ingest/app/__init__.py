"""The composition root: the running system as one object (``Capture``) the CLI drives."""

from .capture import Capture, CaptureOptions, CaptureOutcome

__all__ = ["Capture", "CaptureOptions", "CaptureOutcome"]
