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


def test_operator_metrics_follow_resources_incrementally() -> None:
    from prometheus_client import CollectorRegistry

    from genfab.operator.metrics import OperatorMetrics

    m = OperatorMetrics(CollectorRegistry())
    a, b = ("SceneJob", "ns", "a"), ("SceneJob", "ns", "b")
    m.observe_resource(a, "Running", "Unschedulable", {"scaffold": (3, 1)})
    m.observe_resource(b, "Running", None, {"scaffold": (1, 1)})
    m.observe_resource(a, "Succeeded", None, {})

    def value(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)
    assert value("genfab_resources", kind="SceneJob", phase="Running") == 1
    assert value("genfab_resources", kind="SceneJob", phase="Succeeded") == 1
    assert value("genfab_resources_stalled", kind="SceneJob", reason="Unschedulable") == 0
    assert value("genfab_pending_shards", kind="SceneJob", stage="scaffold") == 1
    m.observe_resource(b, None, None)
    assert value("genfab_resources", kind="SceneJob", phase="Running") == 0
    assert value("genfab_active_shards", kind="SceneJob", stage="scaffold") == 0
