"""Operator metrics: gauges follow each resource's latest state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from genfab.operator.metrics import OperatorMetrics


def test_operator_metrics_follow_resources_incrementally() -> None:
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
