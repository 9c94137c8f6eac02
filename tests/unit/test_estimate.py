"""`genfab plan --estimate`: the pure estimate against the calibration table (genfab.planner.calibration),
by hand-computed rows, and the CLI's output on the examples."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from genfab.api import parse_resource
from genfab.cli.cost_table import EXAMPLE_SAMPLES
from genfab.cli.main import cli
from genfab.planner import INPUT, plan
from genfab.planner.calibration import CALIBRATION, GPU_KINDS, Measured, lookup
from genfab.planner.estimate import EstimateError, check_gpu, duration, estimate, row_for
from tests.helpers import ROOT
from tests.unit.shared import example_plan

Doc = dict[str, Any]
RO = "datasetjob-reference-object.yaml"
WE = "scenejob-worldexplorer.yaml"
ROW = Measured("p", "s", "h100", sample_seconds=10.0, pod_seconds=100.0, source="x.md §1", command="bench",
               baseline_sample_seconds=25.0)


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node = doc["spec"]
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return mutate


def _update(path: str, values: Doc) -> Callable[[Doc], None]:
    """Set several fields of the block at `path`, keeping the others."""
    def mutate(doc: Doc) -> None:
        node = doc["spec"]
        for part in path.split("."):
            node = node.setdefault(part, {})
        node.update(values)
    return mutate


def _bf16(runtime: Doc) -> Callable[[Doc], None]:
    """reference-object's edits on the bf16 model with an `editRuntime`."""
    def mutate(doc: Doc) -> None:
        _set("referenceObject.scenes.modelPath", "Qwen/Qwen-Image-Edit-2509")(doc)
        _set("referenceObject.scenes.editRuntime", runtime)(doc)
    return mutate


def test_every_row_is_of_a_known_gpu_kind_and_cites_its_measurement() -> None:
    for row in CALIBRATION:
        assert row.gpu in GPU_KINDS and row.sample_seconds > 0 and row.pod_seconds >= 0
        assert (ROOT / row.source.split(" ")[0]).is_file(), row.source
        assert row.command.startswith(("python ", "python3 ")) and "benchmarks/" in row.command


@pytest.mark.parametrize("config, path, value", [
    ({"a": {"b": 1}}, "a.b", 1),
    ({"a": {"b": 1}}, "a.c", None),
    ({"a": ["x", "y"]}, "a.1", "y"),
    ({"a": ["x"]}, "a.3", None),
    ({"a": 1}, "a.b", None),
])
def test_lookup(config: Doc, path: str, value: Any) -> None:
    assert lookup(config, path) == value


@pytest.mark.parametrize("label, samples, shards, capacity, gpus, parallelism, gpu_s, wall_s", [
    # GPU-seconds = gpus x (samples x 10 + Pods x 100); wall = 100 + rounds x largest shard x 10
    ("one shard", 8, 1, 8, 1, None, 180.0, 180.0),
    ("four shards at once", 32, 4, 8, 1, None, 720.0, 180.0),
    ("four shards on two warm workers", 32, 4, 8, 1, 2, 520.0, 260.0),
    ("a partial last shard, one warm worker", 30, 4, 8, 1, 1, 400.0, 420.0),
    ("two GPUs per Pod", 8, 1, 8, 2, None, 360.0, 180.0),
    ("fewer samples than a shard", 3, 1, 8, 1, None, 130.0, 130.0),
])
def test_stage_seconds(label: str, samples: int, shards: int, capacity: int, gpus: int, parallelism: int | None,
                       gpu_s: float, wall_s: float) -> None:
    base = example_plan(RO, inventory={INPUT: 1})
    stage = replace(base.stage("scenes"), samples=samples, shards=shards, shard_size=capacity,
                    resources=replace(base.stage("scenes").resources, gpus=gpus))
    row = replace(ROW, pipeline="reference-object", stage="scenes")
    est = estimate(replace(base, stages=(stage,)), "h100", parallelism, (row,))
    (s,) = est.stages
    assert (s.state, s.gpu_seconds, s.wall_seconds) == ("estimated", gpu_s, wall_s), label
    assert s.baseline_gpu_seconds == gpus * samples * 25.0
    assert est.gpu_hours == round(gpu_s / 3600, 3) and est.wall_seconds == wall_s and est.complete


def test_scaled_rows_follow_their_setting() -> None:
    at = {steps: estimate(example_plan(WE, _set("gaussians.steps", steps), {INPUT: 8}), "h100", None)
          for steps in (7000, 14000)}
    rows = {k: v.stages[2] for k, v in at.items()}
    assert rows[7000].sample_seconds == 48.1 and rows[14000].sample_seconds == pytest.approx(96.2)
    missing = replace(ROW, scale=(("gaussians.nothing", 1.0),))
    assert missing.factor({"gaussians": {}}) is None


def test_the_critical_path_sums_a_chain_and_takes_the_longest_branch() -> None:
    # reference-object: scenes waits for perspectives and prompts; annotation for scenes and qwen-augmentation
    est = estimate(example_plan(RO, inventory={INPUT: 1}), "h100", None)
    walls = {s.stage: s.wall_seconds or 0.0 for s in est.stages}
    chain = ("white-background", "perspectives", "scenes", "qwen-augmentation", "annotation")
    assert est.wall_seconds == pytest.approx(sum(walls[s] for s in chain), abs=0.5)
    assert est.gpu_hours == pytest.approx(sum(s.gpu_seconds or 0 for s in est.stages) / 3600, abs=1e-3)


@pytest.mark.parametrize("label, mutate, stage, state, source", [
    ("the default 4-bit edit model, dequantized", lambda d: None, "scenes", "estimated", "§1, §1b"),
    ("the 4-bit export kept as saved", _set("referenceObject.scenes.editRuntime", {"dequantize": "off"}), "scenes",
     "estimated", "§1b"),
    ("4-bit with fp8 (dequantized first)", _set("referenceObject.scenes.editRuntime", {"fp8": "rowwise"}), "scenes",
     "estimated", "§1, §1b"),
    ("cfgTruncation changes the time: not measured for the default", _set(
        "referenceObject.scenes.editRuntime", {"cfgTruncation": 0.3}), "scenes", "not calibrated", None),
    ("nor a first-block cache", _set("referenceObject.scenes.editRuntime", {"firstBlockCache": 0.1}), "scenes",
     "not calibrated", None),
    ("bf16, compile: blocks", _bf16({"compile": "blocks"}), "scenes", "estimated", "§1"),
    ("bf16 with fp8", _bf16({"compile": "blocks", "fp8": "rowwise"}), "scenes", "estimated", "§1"),
    ("bf16 without compile was not measured", _bf16({"compile": "off"}), "scenes", "not calibrated", None),
    ("prompts run on an endpoint", lambda d: None, "prompts", "cpu", None),
])
def test_row_selection_by_settings(label: str, mutate: Callable[[Doc], None], stage: str, state: str,
                                   source: str | None) -> None:
    est = estimate(example_plan(RO, mutate, {INPUT: 1}), "h100", None)
    row = next(s for s in est.stages if s.stage == stage)
    assert row.state == state, label
    if source:
        assert row.source is not None and row.source.endswith(source)


def test_fp8_costs_less_than_bf16_and_says_what_it_deviates() -> None:
    def edit(fp8: str) -> Measured | None:
        p = example_plan(RO, _bf16({"compile": "blocks", "fp8": fp8}), {INPUT: 1})
        return row_for(p.pipeline, p.stage("scenes"), "h100")
    lossless, fp8 = edit("off"), edit("rowwise")
    assert lossless and fp8 and fp8.sample_seconds < lossless.sample_seconds
    assert "cosine" in fp8.note and "lossy" in fp8.note


def test_uncalibrated_and_unknown_stages_stay_out_of_the_totals_and_say_why() -> None:
    est = estimate(example_plan(WE, inventory={INPUT: 8}), "h100", None)
    states = {s.stage: s.state for s in est.stages}
    assert states == {"scaffold": "not calibrated", "expansion": "not calibrated", "gaussians": "estimated"}
    assert not est.complete and est.missing == ["scaffold", "expansion"]
    assert est.stages[0].note == ("measured on h100 only with scaffold.method scaffold_gen (here single_image); "
                                  "these settings were measured on h200 (--gpu h200)")
    on_h200 = estimate(example_plan(WE, inventory={INPUT: 8}), "h200", None)
    assert [s.state for s in on_h200.stages] == ["estimated"] * 3 and on_h200.complete
    tuning = estimate(example_plan("tuningrun-difix.yaml"), "h200", None)
    assert tuning.stages[0].note == "never measured on h200; these settings were measured on h100 (--gpu h100)"
    unknown = estimate(example_plan(WE), "h100", None)
    assert {s.state for s in unknown.stages} == {"not calibrated", "samples unknown"}
    skipped = estimate(example_plan(RO, _set("onlyStages", ["annotation"]), {INPUT: 1}), "h100", None)
    assert {s.stage for s in skipped.stages if s.state != "skipped"} == {"annotation"}


@pytest.mark.parametrize("gpu, message", [
    ("h100", None),
    ("h200", None),
    ("l40s", "no stage has been measured on l40s yet"),
    ("v100", "unknown GPU kind; known kinds are h100, h200, l40s, a100"),
])
def test_gpu_kinds(gpu: str, message: str | None) -> None:
    if message is None:
        check_gpu(gpu)
        return
    with pytest.raises(EstimateError, match=message):
        check_gpu(gpu)


@pytest.mark.parametrize("seconds, text", [(None, "-"), (40.2, "40 s"), (720, "12 min"), (3900, "1 h 05 min")])
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_every_example_prints_an_estimate(example: str) -> None:
    path = str(ROOT / "examples" / example)
    out = CliRunner().invoke(cli, ["plan", path, "--estimate", "--input-samples", "16"])
    assert out.exit_code == 0, out.output
    assert "estimate on h100" in out.output and "GPU-hours, wall" in out.output
    doc = json.loads(CliRunner().invoke(cli, ["plan", path, "--estimate", "--input-samples", "16", "--json"]
                                        ).stdout)
    assert {"gpu", "stages", "gpuHours", "gpu_hours"} & set(doc["estimate"]) and doc["estimate"]["gpu"] == "h100"


def test_an_unknown_gpu_kind_is_one_line_and_exit_1(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["plan", str(ROOT / "examples" / RO), "--estimate", "--gpu", "v100"])
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [
        "genfab plan: --gpu 'v100': unknown GPU kind; known kinds are h100, h200, l40s, a100 (measured: h100, h200)"]


def test_the_readme_cost_column_is_what_plan_estimate_says_for_its_example() -> None:
    """Each pipeline row's GPU-hours are `genfab plan --estimate`'s for the example it names, at
    EXAMPLE_SAMPLES input samples on an H100 (benchmarks/results/cost.md lists the same)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| resource | pipeline |")
    table = readme[start:readme.index("\n\n", start)]
    cells = [line.strip("|").split("|")[5].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(cells) == 6
    for cell in cells:
        hours, example = float(cell.split()[0]), cell.split("(`", 1)[1].split("`", 1)[0]
        doc = next(d for d in yaml.safe_load_all((ROOT / "examples" / example).read_text())
                   if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("genfab.dev/"))
        resource = parse_resource(doc)
        est = estimate(plan(resource, {INPUT: EXAMPLE_SAMPLES}), "h100", resource.spec.parallelism)
        assert round(est.gpu_hours, 2) == hours, (example, est.gpu_hours)
        assert ("not calibrated" in cell) == bool(est.missing), example


def test_the_default_4bit_export_is_priced_dequantized_against_the_lab_running_it_4bit() -> None:
    """The dequantized export runs the bf16 computation; the lab's way is the 4-bit export in diffusers'
    eager pipeline (H100: 20.72 s at 20 steps, so 51.8 at the default 50)."""
    default = example_plan(RO, inventory={INPUT: 1})
    row = row_for(default.pipeline, default.stage("scenes"), "h100")
    assert row is not None and (row.sample_seconds, row.baseline_sample_seconds) == (36.11, 51.8)
    kept = example_plan(RO, _set("referenceObject.scenes.editRuntime", {"dequantize": "off"}), {INPUT: 1})
    as_saved = row_for(kept.pipeline, kept.stage("scenes"), "h100")
    assert as_saved is not None and as_saved.sample_seconds == as_saved.baseline_sample_seconds == 20.72
    est = estimate(kept, "h100", None).stages
    scenes = next(s for s in est if s.stage == "scenes")
    assert scenes.baseline_gpu_seconds == pytest.approx(scenes.samples * 51.8, abs=0.1)  # both at 50 steps


def test_plan_estimate_prints_the_lab_way_only_where_every_stage_has_one() -> None:
    out = CliRunner().invoke(cli, ["plan", str(ROOT / "examples" / RO), "--estimate"])
    est = estimate(example_plan(RO, inventory={INPUT: 1}), "h100", None)
    assert est.lab_gpu_hours is not None and est.without_lab == []
    assert (f"the lab's way: {est.lab_gpu_hours:.2f} GPU-hours for the same work (each stage's eager pipeline, "
            f"research code or plain loop, no model loads): genfab {est.gpu_hours / est.lab_gpu_hours:.2f}x"
            ) in out.output.replace("\n", " ")
    measured = _update("vistadream", {"maxResolution": 1024, "fluxSteps": 50, "coarseDenseMultiplier": 4,
                                      "nFrames": 12, "depthBackend": "depth-pro"})  # the depth model measured
    vistadream = estimate(example_plan("scenejob-vistadream.yaml", measured, {INPUT: 1}), "h100", None)
    assert vistadream.complete and vistadream.lab_gpu_hours is None
    assert vistadream.without_lab == ["outpaint", "depth", "gaussians", "coarse", "render"]
    partial = estimate(example_plan(WE, inventory={INPUT: 8}), "h100", None)
    assert partial.lab_gpu_hours is None and not partial.complete  # never a ratio over part of a run


@pytest.mark.parametrize("label, parallelism, gpu_s, wall_s", [
    # 32 samples in 4 shards of 8 at 10 s; a Pod 100 s cold (40 s once the compile cache is stored: a
    # worker's Pod started again loads it, which the estimate does not count on)
    ("all shards at once: every Pod compiles", None, 720.0, 180.0),
    ("two warm workers: each starts once", 2, 320 + 2 * 100.0, 100 + 2 * 80.0),
    ("one warm worker: it starts once", 1, 320 + 100.0, 100 + 4 * 80.0),
])
def test_warm_workers_pay_their_start_once(label: str, parallelism: int | None, gpu_s: float,
                                           wall_s: float) -> None:
    base = example_plan(RO, inventory={INPUT: 1})
    stage = replace(base.stage("scenes"), samples=32, shards=4, shard_size=8)
    row = replace(ROW, pipeline="reference-object", stage="scenes", cached_pod_seconds=40.0)
    (s,) = estimate(replace(base, stages=(stage,)), "h100", parallelism, (row,)).stages
    assert (s.gpu_seconds, s.wall_seconds) == (gpu_s, wall_s), label


def test_a_row_can_hang_on_an_upstream_stages_setting() -> None:
    """vistadream's gaussians stage has no maxResolution of its own, but its scene is as large as the image
    the depth stage fitted: its H100 row holds for `@depth.maxResolution` 1024 only, and says so."""
    measured = example_plan("scenejob-vistadream.yaml", _update("vistadream", {"maxResolution": 1024}), {INPUT: 1})
    assert "maxResolution" not in measured.stage("gaussians").config
    row = row_for(measured.pipeline, measured.stage("gaussians"), "h100", plan_stages=measured.stages)
    assert row is not None and row.sample_seconds == 8.5
    default = example_plan("scenejob-vistadream.yaml", inventory={INPUT: 1})
    assert row_for(default.pipeline, default.stage("gaussians"), "h100", plan_stages=default.stages) is None
    gaussians = next(s for s in estimate(default, "h100", None).stages if s.stage == "gaussians")
    assert gaussians.state == "not calibrated"
    assert gaussians.note == ("measured on h100 only with @depth.maxResolution 1024 (here 512); these settings "
                              "were measured on h200 (--gpu h200)")


@pytest.mark.parametrize("steps, seconds, lab", [
    (25, 70.2 + 14.55, 151.1 + 13.35),  # as measured
    (50, 2 * 70.2 + 14.55, 2 * 151.1 + 13.35),  # SEVA's part doubles, VGGT's pass does not
])
def test_an_unscaled_part_stays_as_measured_whatever_the_scaled_setting(steps: int, seconds: float,
                                                                        lab: float) -> None:
    row = Measured("p", "s", "h200", 70.2, 0.0, "x.md §1", "bench", scale=(("seva.steps", 25.0),),
                   unscaled_seconds=14.55, baseline_sample_seconds=151.1, unscaled_baseline_seconds=13.35)
    factor = row.factor({"seva": {"steps": steps}})
    assert factor is not None
    assert row.seconds(factor) == pytest.approx(seconds) and row.baseline_seconds(factor) == pytest.approx(lab)
    assert Measured("p", "s", "h200", 1.0, 0.0, "x", "y").baseline_seconds(1.0) is None


@pytest.mark.parametrize("shards, parallelism, shown", [(10, 2, "2 warm"), (10, None, "10"), (10, 10, "10"),
                                                        (None, 2, "?")])
def test_the_plan_table_shows_each_stages_pods(shards: int | None, parallelism: int | None, shown: str) -> None:
    from genfab.cli.main import _pods

    stage = replace(example_plan(RO, inventory={INPUT: 1}).stage("scenes"), shards=shards)
    assert _pods(stage, parallelism) == shown


@pytest.mark.parametrize("label, streams, parallelism, wall_s", [
    # each stage 32 samples in 4 shards of 8: on 2 warm workers a stage is 100 + 2 rounds x 80 = 260 s,
    # one round 180 s
    ("barrier: the chain's sum", False, 2, 520.0),
    # streaming: the second starts after the first's first round (180 s) and ends at 440 s, no sooner than
    # one of its shards (80 s) after the first's end (260 s)
    ("streaming: one round behind", True, 2, 440.0),
    # every shard at once (one round each): the second still waits for the first's shards to end
    ("streaming, one round each", True, None, 360.0),
])
def test_a_streaming_stage_runs_one_round_behind_its_upstream(label: str, streams: bool, parallelism: int | None,
                                                               wall_s: float) -> None:
    base = example_plan(RO, inventory={INPUT: 1})
    first = replace(base.stage("scenes"), samples=32, shards=4, shard_size=8)
    second = replace(base.stage("qwen-augmentation"), samples=32, shards=4, shard_size=8, upstream=("scenes",),
                     streams_from=("scenes",) if streams else ())
    rows = tuple(replace(ROW, pipeline="reference-object", stage=s) for s in ("scenes", "qwen-augmentation"))
    est = estimate(replace(base, stages=(first, second)), "h100", parallelism, rows)
    assert [s.wall_seconds for s in est.stages] == [260.0 if parallelism else 180.0] * 2, label
    assert est.wall_seconds == wall_s, label
