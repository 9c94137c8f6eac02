"""What a list made after a watch expired says was deleted meanwhile (genfab.operator.relist.gone)."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.operator.relist import gone

pytestmark = pytest.mark.unit


def obj(uid: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "t", "resourceVersion": rv}}


@pytest.mark.parametrize(("cached", "listed", "list_rv", "missed", "removed"), [
    ([obj("a", "10"), obj("b", "11")], {"a", "b"}, "20", set(), []),           # all still there
    ([obj("a", "10"), obj("b", "11")], {"a"}, "20", set(), ["b"]),             # b deleted meanwhile
    ([obj("a", "10"), obj("c", "25")], {"a"}, "20", set(), []),                # c made after the list
    ([obj("a", "10"), obj("c", "20")], {"a"}, "20", set(), ["c"]),             # c as old as the list, not in it
    ([obj("a", "x1"), obj("b", "x2")], {"a"}, "y", set(), []),                 # versions not comparable: once
    ([obj("a", "x1"), obj("b", "x2")], {"a"}, "y", {"b"}, ["b"]),              # ... twice missed: gone
    ([obj("b", "11")], set(), "", set(), []),                                  # a list without a version
    ([{"metadata": {"name": "no-uid"}}], set(), "20", set(), []),              # nothing to match it by
])
def test_gone_is_what_the_list_lacks_and_is_not_newer_than_it(cached: list[dict[str, Any]], listed: set[str],
                                                              list_rv: str, missed: set[str],
                                                              removed: list[str]) -> None:
    assert [o["metadata"]["uid"] for o in gone(cached, listed, list_rv, missed)] == removed


def test_a_sweep_reads_an_empty_metadata_list_whose_items_are_null() -> None:
    """kube-apiserver answers a metadata-only list that matches nothing with `"items": null` (a Go nil slice,
    no omitempty): what the real control plane showed (tests/realcluster), where `get("items", [])` raised in
    the resync thread. Every cached object is then gone, and paging stops at the list's last page."""
    from genfab.operator.relist import Relister, Watched

    pages = [{"metadata": {"continue": "t1", "resourceVersion": ""}, "items": [{"metadata": {"uid": "a"}}]},
             {"metadata": {"resourceVersion": "30"}, "items": None}]
    asked: list[dict[str, Any]] = []

    class Kube:
        def request(self, method: str, path: str, query: dict[str, Any], accept: str) -> dict[str, Any]:
            asked.append(dict(query))
            return pages[len(asked) - 1]

    deleted: list[str] = []
    cached = [obj("a", "10"), obj("b", "11")]
    watched = Watched("Job", ("/apis/batch/v1/jobs",), None, lambda: cached,
                      lambda o: deleted.append(o["metadata"]["uid"]))
    assert Relister(Kube(), [watched]).sweep() == 1  # type: ignore[arg-type]
    assert deleted == ["b"] and [q.get("continue") for q in asked] == [None, "t1"]
