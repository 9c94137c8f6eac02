"""`Throttled`: a value is read again only once older than its age; past `keep`, old reads go."""

from __future__ import annotations

import pytest

from genfab.operator.throttle import Throttled


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("age", "fresh", "reads"), [
    (0.0, False, 1), (4.9, False, 1), (5.0, False, 2), (1.0, True, 2),
], ids=["at once", "just younger", "as old as max_age", "fresh asked"])
def test_a_value_is_read_again_only_when_old_or_asked(age: float, fresh: bool, reads: int) -> None:
    clock, calls = Clock(), []
    throttled: Throttled[str, int] = Throttled(5.0, clock=clock)

    def read() -> int:
        calls.append(clock.now)
        return len(calls)

    assert throttled.get("a", read) == 1
    clock.now = age
    assert throttled.get("a", read, fresh=fresh) == reads
    assert len(calls) == reads


def test_past_keep_only_the_old_reads_are_dropped() -> None:
    clock = Clock()
    throttled: Throttled[int, str] = Throttled(10.0, keep=3, clock=clock)
    throttled.put(1, "old")
    clock.now = 20.0
    throttled.put(2, "new")
    throttled.put(3, "new")
    throttled.put(4, "newest")  # the fourth: 1 (20 s old) goes, 2 and 3 stay
    assert throttled.recent(1) is None
    assert [throttled.recent(k).value for k in (2, 3, 4)] == ["new", "new", "newest"]  # type: ignore[union-attr]


def test_forget_drops_a_read() -> None:
    throttled: Throttled[str, str] = Throttled(60.0)
    throttled.put("a", "x")
    throttled.forget("a")
    assert throttled.recent("a") is None
