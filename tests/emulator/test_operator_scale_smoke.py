"""The operator-scale benchmark stays runnable: N = 20 SceneJobs in one burst through its own code
(its own emulator and operator process), every one reaching a Job and Running. Timing is the
benchmark's business (benchmarks/results/operator.md), not this test's."""

from __future__ import annotations

from benchmarks.operator_scale import run


def test_the_operator_scale_benchmark_completes_at_n_20() -> None:
    result = run(20, workers=8)
    assert result.n == 20 and result.requests_by_kind.get("POST jobs") == 1.0
