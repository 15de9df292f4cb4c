"""The locally managed QuestDB server: install location, start, stop, status."""

from .process import QuestDBProcess, ServerStatus
from .install import QuestDBInstall, find_install, install

__all__ = ["QuestDBInstall", "QuestDBProcess", "ServerStatus", "find_install", "install"]
