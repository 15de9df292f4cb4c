"""What a deploy gets: the wheel (typed, runnable with ``python -m``, a description that stands on its
own) and the constraints file that pins the runtime dependencies."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# Directories and files only a checkout has; a wheel's description must not send its reader there.
REPO_ONLY = re.compile(r"(?<![\w./~-])(?:\.\./|\.ci/|scripts/|benchmarks/|tests/|config/|docker/|schema/|[\w-]+\.md\b)")
MD_LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    (path,) = out.glob("questdb_ingest-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_py_typed_and_main(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "questdb_ingest/py.typed" in names
    assert "questdb_ingest/__main__.py" in names


def test_wheel_description_has_no_links_to_repo_files(wheel: zipfile.ZipFile) -> None:
    (meta,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    message = email.message_from_bytes(wheel.read(meta))
    description = str(message.get_payload())
    assert "pumpwatch" in description and "pip install" in description
    relative = [t for t in MD_LINK.findall(description) if not re.match(r"(https?://|mailto:|#)", t)]
    assert relative == [], f"relative links in the wheel's description: {relative}"
    mentions = sorted({m.group(0) for m in REPO_ONLY.finditer(description)})
    assert mentions == [], f"the wheel's description points at files a wheel user lacks: {mentions}"


def test_python_dash_m_runs_the_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "questdb_ingest", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: pumpwatch ")
    assert "run" in done.stdout and "questdb" in done.stdout


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def test_constraints_pin_every_direct_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name} (pyproject: {spec!r})"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {spec!r}"
        )
    assert "psycopg-binary" in pins  # psycopg[binary]: the extra's package is pinned too
