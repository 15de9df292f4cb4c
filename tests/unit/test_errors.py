"""The exception tree: the drawing in ``errors``' docstring is the tree the classes form, and every
error is importable from the package, so callers can catch exactly what they mean."""

from __future__ import annotations

import inspect
import re

import questdb_ingest
from questdb_ingest import errors

BRANCH = re.compile(r"^(?P<indent>[│ ]*)[├└]── (?P<name>\w+)")


def _drawn_parents() -> dict[str, str]:
    """Class name → parent name, read off the docstring's drawing."""
    doc = errors.__doc__ or ""
    lines = doc[doc.index("PumpwatchError\n") :].splitlines()
    stack = ["PumpwatchError"]
    parents: dict[str, str] = {}
    for line in lines[1:]:
        m = BRANCH.match(line)
        if m is None:
            break
        depth = len(m["indent"]) // 4 + 1
        assert len(m["indent"]) % 4 == 0, f"misaligned drawing line: {line!r}"
        del stack[depth:]
        assert m["name"] not in parents, f"{m['name']} drawn twice"
        parents[m["name"]] = stack[-1]
        stack.append(m["name"])
    return parents


def _classes() -> dict[str, type[errors.PumpwatchError]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.PumpwatchError) and cls.__module__ == errors.__name__
    }


def test_docstring_drawing_is_the_class_tree() -> None:
    actual = {
        name: next(b for b in cls.__bases__ if issubclass(b, errors.PumpwatchError)).__name__
        for name, cls in _classes().items()
        if cls is not errors.PumpwatchError
    }
    assert _drawn_parents() == actual


def test_every_error_is_exported_from_the_package() -> None:
    names = set(_classes())
    assert names <= set(questdb_ingest.__all__), f"not exported: {sorted(names - set(questdb_ingest.__all__))}"
    for name in names:
        assert getattr(questdb_ingest, name) is getattr(errors, name)
