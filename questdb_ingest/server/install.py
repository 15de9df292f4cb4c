"""Where ``scripts/install-questdb.sh`` puts the pinned jar and which JDK it chose."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import QuestDBNotInstalledError, QuestDBServerError
from ..resources import questdb_pin, resource


def cache_root() -> Path:
    """PUMPWATCH_CACHE_DIR, else $XDG_CACHE_HOME/pumpwatch, else ~/.cache/pumpwatch (as the script)."""
    explicit = os.environ.get("PUMPWATCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pumpwatch"


@dataclass(frozen=True)
class QuestDBInstall:
    version: str
    jar: Path
    java: Path


def find_install() -> QuestDBInstall:
    """The installed pinned release, or ``QuestDBNotInstalledError`` saying how to install it."""
    version = questdb_pin().version
    dest = cache_root() / "questdb" / version
    jar = dest / f"questdb-{version}.jar"
    java_file = dest / "java"
    if not jar.is_file() or not java_file.is_file():
        raise QuestDBNotInstalledError(
            f"QuestDB {version} is not installed under {dest}; run `pumpwatch questdb install` "
            "(or scripts/install-questdb.sh)"
        )
    java = Path(java_file.read_text(encoding="utf-8").strip())
    if not os.access(java, os.X_OK):
        raise QuestDBNotInstalledError(f"JDK {java} recorded for QuestDB {version} is gone; re-run the installer")
    return QuestDBInstall(version=version, jar=jar, java=java)


def install() -> QuestDBInstall:
    """Run the install script (idempotent) and return the result."""
    script = resource("scripts/install-questdb.sh")
    proc = subprocess.run(["bash", str(script)], check=False)
    if proc.returncode != 0:
        raise QuestDBServerError(f"{script} failed with exit code {proc.returncode}")
    return find_install()
