"""The operator-scale benchmark stays runnable: N = 20 SceneJobs in one burst through its own code
(its own emulator and operator process), every one reaching a Job and Running; and so do its two
floors (benchmarks/operator_floor.py in the operator's place, watching with aiohttp and with kopf).
Timing is the benchmark's business (benchmarks/results/operator.md), not this test's."""

from __future__ import annotations

import pytest
from benchmarks.operator_scale import run


@pytest.mark.parametrize("floor", ["", "aiohttp", "kopf"])
def test_the_operator_scale_benchmark_completes_at_n_20(floor: str) -> None:
    result = run(20, workers=8, floor=floor)
    assert result.n == 20 and result.requests_by_kind.get("POST jobs") == 1.0
    if floor:  # the least any operator sends: one ConfigMap, one Job, one status write each
        assert result.requests_by_kind == {"POST configmaps": 1.0, "POST jobs": 1.0, "PATCH scenejobs": 1.0}


def test_the_benchmark_runs_sharded_operators() -> None:
    """`--shards 2`: two operator processes, every resource reaching a Job, their RSS summed."""
    result = run(20, workers=4, shards=2)
    assert result.shards == 2 and result.requests_by_kind.get("POST jobs") == 1.0
    assert result.rss_mb > result.rss_process_mb > 0
