"""The operator's work queue: dedup, no concurrent processing of one key, backoff."""

from __future__ import annotations

from genfab.operator.workqueue import WorkQueue


def test_dedup_and_requeue_while_processing() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert q.get(0) == "a"
    q.add("a")  # changed while processing: comes back after done(), not before
    assert q.get(0) == "b"
    assert q.get(0.05) is None
    q.done("a")
    assert q.get(0) == "a"


def test_retry_backs_off_exponentially_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert [q.retry("k") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    q.forget("k")
    assert q.retry("k") == 0.01
    assert q.get(1.0) == "k"


def test_close_wakes_waiters() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.close()
    assert q.get(5) is None



def test_new_resources_go_first_in_their_own_order() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("started-1")
    q.add("new-1", first=True)
    q.add("started-2")
    q.add("new-2", first=True)
    q.add("new-1", first=True)  # already queued: once, in its place
    assert q.ready() == 4
    assert [q.get(0) for _ in range(4)] == ["new-1", "new-2", "started-1", "started-2"]


def test_the_depth_counts_each_key_once_however_often_it_is_scheduled() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(50):  # progress polling re-schedules the same resource on every reconcile
        q.add_after("a", 60)
    q.add("b")
    q.add_after("b", 60)
    assert len(q) == 2 and q.ready() == 1
