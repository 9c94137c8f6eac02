"""Operator metrics: gauges follow each resource's latest state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from genfab.operator.metrics import OperatorMetrics


def test_operator_metrics_follow_resources_incrementally() -> None:
    m = OperatorMetrics(CollectorRegistry())
    a, b = ("SceneJob", "ns", "a"), ("SceneJob", "ns", "b")
    m.observe_resource(a, "Running", "Unschedulable", {"scaffold": (3, 1, 2)}, 1_700_000_000.0)
    m.observe_resource(b, "Running", None, {"scaffold": (1, 1, 2)})
    assert m.registry.get_sample_value("genfab_resource_stalled_since_timestamp_seconds", {
        "kind": "SceneJob", "namespace": "ns", "name": "a", "reason": "Unschedulable"}) == 1_700_000_000.0
    m.observe_resource(a, "Succeeded", None, {})

    def value(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)
    assert value("genfab_resources", kind="SceneJob", phase="Running") == 1
    assert value("genfab_resources", kind="SceneJob", phase="Succeeded") == 1
    assert value("genfab_resources_stalled", kind="SceneJob", reason="Unschedulable") == 0
    assert not [s for metric in m.registry.collect() for s in metric.samples
                if s.name == "genfab_resource_stalled_since_timestamp_seconds"]  # recovered: series removed
    assert value("genfab_pending_shards", kind="SceneJob", stage="scaffold") == 1
    assert value("genfab_gpus_held", kind="SceneJob", stage="scaffold") == 2
    m.observe_resource(b, None, None)
    assert value("genfab_resources", kind="SceneJob", phase="Running") == 0
    assert value("genfab_active_shards", kind="SceneJob", stage="scaffold") == 0
    assert value("genfab_gpus_held", kind="SceneJob", stage="scaffold") == 0
