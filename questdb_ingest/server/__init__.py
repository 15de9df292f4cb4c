"""The locally managed QuestDB server: install location, start, stop, status."""

from .install import QuestDBInstall, find_install, install
from .process import QuestDBProcess, ServerStatus

__all__ = ["QuestDBInstall", "QuestDBProcess", "ServerStatus", "find_install", "install"]
