"""The end-to-end cost table of the benchmarks page (genfab.cli.cost_table): each row is the estimate of
its example with its settings, the lab's way is the chained stage baselines, and a row that leaves
stages out says so instead of a ratio."""

from __future__ import annotations

import pytest

from genfab.cli.cost_table import CASES, Case, case_estimate, row, table, with_overrides
from genfab.planner.calibration import CALIBRATION
from tests.helpers import ROOT

EXAMPLES = ROOT / "examples"


def _case(pipeline: str, index: int = 0) -> Case:
    return [c for c in CASES if c.pipeline == pipeline][index]


def test_overrides_set_nested_paths_on_a_copy() -> None:
    spec = {"a": {"b": 1}, "keep": [1]}
    out = with_overrides(spec, {"a.c.d": 2, "a.b": 3, "e": None})
    assert out == {"a": {"b": 3, "c": {"d": 2}}, "keep": [1], "e": None}
    assert spec == {"a": {"b": 1}, "keep": [1]}


def test_every_case_plans_and_counts_its_samples() -> None:
    for case in CASES:
        est, samples = case_estimate(case, "h100", EXAMPLES)
        assert est.stages and (samples is None or samples > 0), case


def test_the_lab_defaults_of_reference_object_chain_each_stages_baseline() -> None:
    case = _case("reference-object")
    est, samples = case_estimate(case, "h100", EXAMPLES)
    stages = {s.stage: s for s in est.stages}
    # the lab's document's defaults: 5 prompts x 3 iterations per view, no Qwen augmentation
    assert stages["scenes"].samples == 15 * stages["perspectives"].samples
    assert "qwen-augmentation" not in stages
    r = row(case, "h100", EXAMPLES)
    estimated = [s for s in est.stages if s.state == "estimated"]
    assert r.lab_hours == est.lab_gpu_hours == pytest.approx(
        sum(s.baseline_gpu_seconds or 0 for s in estimated) / 3600, abs=1e-3)
    assert r.gpu_hours == est.gpu_hours and r.samples == samples == stages["annotation"].samples
    assert r.ratio == pytest.approx(est.gpu_hours / r.lab_hours)
    # the edits' own ratio (36.11 against 51.8 s) and annotation's (0.62x) bound it, with the Pods' load on top
    assert 0.62 < r.ratio < 0.9
    fp8 = row(_case("reference-object", 2), "h100", EXAMPLES)
    assert fp8.ratio is not None and fp8.ratio < r.ratio and fp8.peak_gib == 21.4


@pytest.mark.parametrize(("pipeline", "every_shard", "one_worker"), [
    ("worldexplorer", 0, 1), ("vistadream", 0, 1), ("reference-object", 0, 1)])
def test_one_warm_worker_per_stage_pays_each_stages_load_once(pipeline: str, every_shard: int,
                                                              one_worker: int) -> None:
    """The same work, the per-Pod seconds counted once per worker instead of once per shard: cheaper by
    exactly the loads of the shards beyond the first, the lab's way unchanged."""
    all_at_once, worker = _case(pipeline, every_shard), _case(pipeline, one_worker)
    assert worker.overrides.get("parallelism") == 1 and "parallelism" not in all_at_once.overrides
    a, w = case_estimate(all_at_once, "h200", EXAMPLES)[0], case_estimate(worker, "h200", EXAMPLES)[0]
    assert a.lab_gpu_hours == w.lab_gpu_hours and w.gpu_hours < a.gpu_hours
    for every, one in zip(a.stages, w.stages, strict=True):
        if every.state != "estimated":
            continue
        assert every.shards and every.samples and every.sample_seconds is not None and every.gpu_seconds is not None
        work = every.gpus * every.samples * every.sample_seconds
        loads = every.gpu_seconds - work  # one per shard, all at once
        assert one.gpu_seconds == pytest.approx(work + loads / every.shards, abs=0.5)


def test_a_row_that_leaves_stages_out_gives_no_ratio_and_a_lower_bound() -> None:
    r = row(_case("worldexplorer"), "h100", EXAMPLES)
    assert r.missing == ["scaffold", "expansion"] and r.ratio is None
    line = next(x for x in table(EXAMPLES) if "`single_image`" in x and "| H100 |" in x)
    assert "| ≥ " in line and "not measured on H100: scaffold, expansion" in line and "| - | - | - |" in line


def test_cpu_pipelines_cost_nothing_and_say_so() -> None:
    line = next(x for x in table(EXAMPLES) if x.startswith("| difix |"))
    assert "| 0 |" in line and "runs on CPUs only" in line


def test_every_gpu_kind_with_rows_appears_and_no_row_without_any_estimate() -> None:
    kinds = {r.gpu for r in CALIBRATION}
    lines = table(EXAMPLES)[2:]
    assert {k.upper() for k in kinds} == {line.split(" | ")[2] for line in lines}
    assert all("| 0.00 per" not in line for line in lines)


def test_the_committed_cost_page_is_current() -> None:
    from genfab.cli.estimate import calibration_page

    assert (ROOT / "benchmarks" / "results" / "cost.md").read_text() == calibration_page(EXAMPLES)
