"""Plans remembered per resource generation, and watch echoes of the operator's own writes."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.operator.cache import Cache
from genfab.operator.plan_memo import PlanMemo, fingerprint


def body(generation: int | None = 1, uid: str = "u1", labels: dict[str, str] | None = None,
         rv: str = "1", status: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "resourceVersion": rv, "labels": labels or {}}
    if generation is not None:
        meta["generation"] = generation
    return {"metadata": meta, "spec": {}, **({"status": status} if status else {})}


@pytest.mark.parametrize("a, b, same", [
    (body(), body(rv="7", status={"phase": "Running"}), True),     # a status write: same plan
    (body(), body(generation=2), False),                          # a spec change
    (body(), body(uid="u2"), False),                              # deleted and created again
    (body(), body(labels={"team": "a"}), False),                  # metadata genfab reads
])
def test_fingerprint(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert (fingerprint(a) == fingerprint(b)) is same


def test_computed_once_per_generation_and_part() -> None:
    memo, calls = PlanMemo(), []

    def make(tag: str) -> str:
        calls.append(tag)
        return tag
    key = ("SceneJob", "ns", "a")
    assert memo.get(key, body(), "plan", lambda: make("p1")) == "p1"
    assert memo.get(key, body(rv="9"), "plan", lambda: make("again")) == "p1"
    assert memo.get(key, body(), ("plan", "exec-2"), lambda: make("p2")) == "p2"
    assert memo.get(key, body(generation=2), "plan", lambda: make("p3")) == "p3"
    assert calls == ["p1", "p2", "p3"]
    memo.forget(key)
    assert len(memo) == 0


def test_no_generation_no_memory_and_errors_are_not_remembered() -> None:
    memo, calls = PlanMemo(), []
    key = ("SceneJob", "ns", "a")
    for _ in range(2):
        memo.get(key, body(generation=None), "plan", lambda: calls.append(1))
    assert len(calls) == 2

    def fail() -> str:
        raise ValueError("bad")
    for _ in range(2):
        with pytest.raises(ValueError):
            memo.get(key, body(), "plan", fail)


def test_the_watch_echo_of_an_own_write_is_no_news() -> None:
    cache = Cache()
    key = ("SceneJob", "ns", "a")
    assert cache.put_resource(key, body(rv="1"))
    cache.put_resource(key, body(rv="2", status={"phase": "Running"}))  # the status patch's answer
    assert not cache.put_resource(key, body(rv="2", status={"phase": "Running"}))  # its watch event
    assert cache.put_resource(key, body(rv="3"))
    job = {"metadata": {"name": "a-scaffold", "namespace": "ns", "resourceVersion": "5",
                        "labels": {"genfab.dev/kind": "SceneJob", "genfab.dev/resource": "a"}}}
    assert cache.put_job(job) == key  # first seen: news
    assert cache.put_job(job) is None  # the same version again (created by the operator, then watched)
    assert cache.put_job({**job, "metadata": {**job["metadata"], "resourceVersion": "6"}}) == key


def test_memory_is_bounded_least_recently_used_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from genfab.operator import plan_memo

    monkeypatch.setattr(plan_memo, "MAX_RESOURCES", 2)
    memo, calls = PlanMemo(), []
    for name in ("a", "b"):
        memo.get(name, body(), "plan", lambda n=name: calls.append(n))
    memo.get("a", body(), "plan", lambda: calls.append("a again"))  # a hit: a is now the most recent
    memo.get("c", body(), "plan", lambda: calls.append("c"))          # b goes
    memo.get("b", body(), "plan", lambda: calls.append("b again"))
    assert calls == ["a", "b", "c", "b again"] and len(memo) == 2
