"""Choosing reference-object's execution folder (`genfab.sequencing.execution`): table tests."""

from __future__ import annotations

import calendar

import pytest

from genfab.sequencing.execution import ExecutionError, choose_execution, executions, last_execution, new_execution
from genfab.storage.base import ObjectInfo

NOW = calendar.timegm((2026, 11, 23, 21, 45, 7, 0, 0, 0))


def obj(key: str, modified: float | None = 0.0) -> ObjectInfo:
    return ObjectInfo(key, 1, modified=modified)


@pytest.mark.parametrize(("taken", "expected"), [
    ((), "20261123_214507"),
    (("20261123_214506",), "20261123_214507"),
    (("20261123_214507",), "20261123_214507_2"),
    (("20261123_214507", "20261123_214507_2"), "20261123_214507_3"),
])
def test_new_is_the_seeds_timestamp_made_unique(taken: tuple[str, ...], expected: str) -> None:
    assert new_execution(NOW, taken) == expected


def test_executions_are_named_first_level_folders_with_their_newest_write() -> None:
    listing = [obj("a/x.png", 5), obj("a/deep/y.png", 9), obj("b/z.json", 7), obj("_genfab/executions/p.json", 99),
               obj("loose.txt", 50), obj("c/n.png", None)]
    assert executions(listing) == {"a": 9, "b": 7, "c": 0.0}


@pytest.mark.parametrize(("listing", "expected"), [
    ([obj("20250610_143022/pipeline_state.json", 10), obj("mine/x.png", 20)], "mine"),
    ([obj("20250610_143022/pipeline_state.json", 30), obj("mine/x.png", 20)], "20250610_143022"),
    ([obj("a/x", 5), obj("b/x", 5)], "b"),  # a tie: the later name
])
def test_last_is_the_most_recently_modified(listing: list[ObjectInfo], expected: str) -> None:
    assert last_execution(listing, "file://out") == expected


def test_last_with_no_execution_says_so() -> None:
    with pytest.raises(ExecutionError, match="executionMode last: no execution under s3://b/out"):
        last_execution([obj("_genfab/executions/p.json")], "s3://b/out")


def test_choose_lists_only_what_it_needs() -> None:
    asked: list[str] = []

    def listing(prefix: str) -> list[ObjectInfo]:
        asked.append(prefix)
        return [obj("20261123_214507/x.png")] if prefix else [obj("old/x.png", 3)]

    assert choose_execution("new", NOW, "file://out", listing) == "20261123_214507_2"
    assert choose_execution("last", NOW, "file://out", listing) == "old"
    assert asked == ["20261123_214507", ""]
