"""Table rows are named by what they hold (tests/conftest.py's `pytest_make_parametrize_id`), so a failing
row says which it is: a mapping's items, a function's name, a dataclass's fields that differ from their
defaults; text and numbers stay pytest's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import row_id


@dataclass
class Row:
    name: str
    state: str = "running"
    shards: int = 0


def check_phase() -> None:
    """A named function (its name is the id)."""


@pytest.mark.parametrize(("value", "shown"), [
    ({"phase": "Failed", "samples": 3}, "phase=Failed,samples=3"),
    ({}, "empty"),
    (check_phase, "check_phase"),
    (Row("a", state="finished"), "a,state=finished"),
    (Row("b"), "b"),
    ([Row("a"), Row("b", shards=2)], "a+b,shards=2"),
    (Path("/data/in/portrait.png"), "portrait.png"),
    (b"\x89PNG", "4-bytes"),
    ("plain text", None), (3, None), (None, None),
], ids=["mapping", "empty mapping", "function", "dataclass", "dataclass defaults", "list", "path", "bytes",
        "text", "number", "none"])
def test_a_row_value_reads_as_what_it_holds(value: object, shown: str | None) -> None:
    assert row_id(value) == shown
