"""Deterministic fuzz cases for the CRD/genfab agreement: every example resource with one field
replaced by a value of another shape or an edge value (strings that are no names, non-finite and
out-of-range numbers, null, lists for objects and objects for lists), and a few resource names.
What the CRD refuses must be what genfab refuses (tests/realserver/test_fuzz_agreement.py)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import load_example

REPO = Path(__file__).resolve().parents[1]
STRINGS = ("", "x" * 300, "UPPER", "with space", "../x", "-x", "x.", "é", "a/b", "0", "x" * 64, "a_b", "a.b")
NUMBERS = (float("nan"), float("inf"), -1, 0, 1e300, 0.5, 3)
NAMES = ("a" * 40, "a" * 52, "a" * 63, "a.b", "a-b-c-d")


@dataclass(frozen=True)
class FuzzCase:
    id: str
    doc: dict[str, Any]


def _paths(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), value
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*path, i), value
            yield from _paths(value, (*path, i))


def _replaced(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _values(value: Any) -> tuple[Any, ...]:
    if isinstance(value, bool):
        return (None, "true", 1)
    if isinstance(value, str):
        return STRINGS
    if isinstance(value, int | float):
        return (*NUMBERS, None)
    if isinstance(value, dict):
        return (None, [], "x", {})
    if isinstance(value, list):
        return (None, {}, [], "x")
    return ()


def fuzz_cases() -> list[FuzzCase]:
    cases = []
    for example in sorted(p.name for p in (REPO / "examples").glob("*.yaml")):
        base = load_example(example)
        stem = example.removesuffix(".yaml")
        for path, value in _paths(base["spec"], ("spec",)):
            for candidate in _values(value):
                where = ".".join(str(p) for p in path)
                cases.append(FuzzCase(f"{stem}:{where}={candidate!r:.24}", _replaced(base, path, candidate)))
        for name in NAMES:
            cases.append(FuzzCase(f"{stem}:metadata.name={name}",
                                  _replaced(base, ("metadata", "name"), name)))
    tiny = load_example("datasetjob-reference-object-tiny.yaml")  # a null the examples do not write
    cases.append(FuzzCase("datasetjob-reference-object-tiny:spec.referenceObject.executionMode=None",
                          _replaced(tiny, ("spec", "referenceObject", "executionMode"), None)))
    return cases
