"""Imports point down: the domain packages never import the command line (``questdb_ingest.cli``),
so a view or a command group can never be a dependency of capture, storage or the sender."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "questdb_ingest"
DOMAIN = ("app", "archive", "connectors", "sender", "hybrid", "store", "ingest", "server", "ops")


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_no_domain_module_imports_the_cli() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in _imports(path) if m.startswith("questdb_ingest.cli"))
        for package in DOMAIN
        for path in (PACKAGE / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_a_cli_import() -> None:
    """The scanner resolves relative imports: ``from ..cli.support import X`` in a domain module counts."""
    sample = PACKAGE / "store" / "pg.py"
    assert "questdb_ingest.config" in _imports(sample)
    assert any(m.startswith("questdb_ingest.cli") for m in _imports(PACKAGE / "cli" / "query.py"))
