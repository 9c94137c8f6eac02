"""A shared worker Pod serves the metrics of every stage it runs on its one port, each metric once, its
samples told apart by `stage` (genfab.stages.runtime.metrics.SharedPodMetrics)."""

from __future__ import annotations

from prometheus_client import generate_latest

from genfab.stages.runtime.metrics import SharedPodMetrics, StageMetrics


def test_every_stage_of_a_shared_worker_on_one_page_each_metric_once() -> None:
    pod = SharedPodMetrics()
    outpaint, depth = StageMetrics("outpaint"), StageMetrics("depth")
    pod.add(outpaint)
    pod.add(depth)
    outpaint.sample("succeeded", 2.0)
    depth.sample("succeeded", 0.5)
    depth.sample("failed", reason="EmptyMask")
    page = generate_latest(pod.registry).decode()
    assert page.count("# TYPE genfab_stage_samples_total counter") == 1
    assert 'genfab_stage_samples_total{outcome="succeeded",stage="outpaint"} 1.0' in page
    assert 'genfab_stage_samples_total{outcome="failed",stage="depth"} 1.0' in page
    assert 'genfab_stage_sample_failures_total{reason="EmptyMask",stage="depth"} 1.0' in page
    assert page.count("# TYPE genfab_stage_sample_seconds histogram") == 1
