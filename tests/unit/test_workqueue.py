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


def test_one_namespace_holds_at_most_its_share_of_workers() -> None:
    """A tenant whose reconciles are slow (hostile storage) holds `per_group` workers at most: another
    namespace's key is served while all of its keys are in flight or waiting."""
    from genfab.operator.workqueue import per_group_share

    q: WorkQueue[tuple[str, str]] = WorkQueue(group=lambda key: key[0], per_group=2)
    for i in range(5):
        q.add(("team-a", f"r{i}"))
    assert [q.get(0), q.get(0)] == [("team-a", "r0"), ("team-a", "r1")]
    assert q.get(0.01) is None  # team-a is at its share; its other keys wait
    q.add(("team-b", "x"))
    assert q.get(0) == ("team-b", "x")
    q.done(("team-a", "r0"))
    assert q.get(0) == ("team-a", "r2")
    assert q.ready() == 2
    assert [per_group_share(n) for n in (1, 2, 4, 8, 16)] == [1, 1, 3, 6, 12]


def test_namespaces_are_served_in_turn_and_new_resources_first() -> None:
    q: WorkQueue[tuple[str, str]] = WorkQueue(group=lambda key: key[0], per_group=8)
    for i in range(3):
        q.add(("team-a", f"a{i}"))
    q.add(("team-b", "b0"))
    q.add(("team-b", "b1"))
    q.add(("team-c", "new"), first=True)
    order = []
    while (key := q.get(0)) is not None:
        order.append(key[1])
    assert order[0] == "new"  # a resource never reconciled goes first
    assert order[1:] == ["a0", "b0", "a1", "b1", "a2"]  # then the namespaces in turn


def test_busy_while_keys_wait_or_are_processed() -> None:
    q: WorkQueue[str] = WorkQueue()
    assert not q.busy()
    q.add("a")
    assert q.busy() and q.ready() == 1
    assert q.get(0) == "a"
    assert q.busy() and q.ready() == 0  # processed, none waiting: Events still wait (Controller._post_events)
    q.done("a")
    assert not q.busy()
    q.add_after("b", 60)
    assert not q.busy()  # scheduled for later is not busy


def test_a_key_scheduled_twice_is_due_at_the_earlier_time_once() -> None:
    """Pod events within `CHILD_EVENT_SECONDS` of each other become one reconcile."""
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.05)
    q.add_after("a", 0.06)  # later: the earlier time stands
    q.add_after("b", 60)
    q.add_after("b", 0.02)  # sooner: replaces the later time
    assert len(q) == 2
    assert q.get(1.0) == "b"
    assert q.get(1.0) == "a"
    q.done("a")
    q.done("b")
    assert q.get(0.1) is None  # neither comes again: "a" once, "b"'s hour-late entry superseded
    assert len(q) == 0
