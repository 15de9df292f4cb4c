#!/usr/bin/env python3
"""Write ``constraints.txt``: exact pins of the runtime dependency closure, read from the venv this
runs in (the one the tests passed in), so a deploy installs exactly that with
``pip install -c constraints.txt .``. Dev tools are left out: they are not deployed.

    .venv/bin/python scripts/freeze-constraints.py          # rewrite constraints.txt
    .venv/bin/python scripts/freeze-constraints.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "constraints.txt"
HEADER = (
    "# Exact versions of questdb_ingest's runtime dependencies (and theirs), as tested.\n"
    "# Install with: pip install -c constraints.txt .\n"
    "# Regenerate from a venv that passed the tests: python scripts/freeze-constraints.py\n"
)


def closure(requirements: list[str]) -> dict[str, str]:
    """Installed name → version for the requirements and everything they pull in (markers and
    extras evaluated as pip would on this interpreter)."""
    pins: dict[str, str] = {}
    todo = [(Requirement(r), "") for r in requirements]
    seen: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            dist = metadata.distribution(req.name)
            pins[name] = dist.version
            todo.extend((Requirement(r), wanted) for r in dist.requires or [])
    return pins


def render() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = closure(project["dependencies"])
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.name} is out of date; run: python scripts/freeze-constraints.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count('==')} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
