"""One table of sequencing cases through both executors: the operator's reconcile decision and the
local runner must agree on every row (they share genfab.sequencing; this checks they apply it the
same way from what each of them observes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.inventory import FailedSample, ShardReport
from genfab.local.runner import LocalRunner
from genfab.local.stage_runs import Shard
from genfab.operator.decide import Observed, Progress, decide
from genfab.planner import Plan, plan
from genfab.sequencing import gate, models_env, stage_command
from tests.unit.shared import NOW, stage_job

# (upstream outcome, continueOnError) -> what the downstream stage does
CASES = [
    ("succeeded", False, "ready"),
    ("succeeded", True, "ready"),
    ("samples-failed", True, "ready"),  # partial success flows on with continueOnError
    ("samples-failed", False, "blocked"),
    ("shard-failed", True, "blocked"),
    ("shard-failed", False, "blocked"),
    ("running", False, "waiting"),
    ("running", True, "waiting"),
    ("not-selected", False, "ready"),  # onlyStages: its committed outputs are reused
    ("not-selected", True, "ready"),
]


def resource(coe: bool, upstream_selected: bool) -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "s", "namespace": "lab"},
        "spec": {"pipeline": "worldexplorer", "input": {"image": "file:///data/a.png"}, "output": "file:///tmp/out",
                 "continueOnError": coe, **({} if upstream_selected else {"onlyStages": ["expansion"]})}})


def operator_verdict(outcome: str, coe: bool) -> str:
    r = resource(coe, outcome != "not-selected")
    p = plan(r)
    jobs = {"succeeded": [stage_job(p, "scaffold", "done")], "samples-failed": [stage_job(p, "scaffold", "done")],
            "shard-failed": [stage_job(p, "scaffold", "failed")], "running": [stage_job(p, "scaffold", "running")],
            "not-selected": []}[outcome]
    progress = Progress(0, 1) if outcome == "samples-failed" else Progress(1, 0)
    d = decide(p, r.spec, Observed(jobs=jobs, progress={"scaffold": progress}), None, NOW)
    state = next(o.state for o in d.observations if o.name == "expansion")
    return {"pending": "ready", "waiting": "waiting", "blocked": "blocked"}[state]


def local_verdict(outcome: str, coe: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    r = resource(coe, outcome != "not-selected")
    p: Plan = plan(r)
    # worldexplorer's scaffold has no built-in implementation, so the runner's preflight would refuse
    # the plan before any gating; gating is what this checks.
    monkeypatch.setattr(LocalRunner, "check_runnable", lambda self: None)
    runner = LocalRunner(r, p, workers=1, log_dir=tmp_path)
    up = runner.stages["scaffold"]
    if outcome != "not-selected":
        up.state = "running" if outcome == "running" else "finished"
        up.shards = [Shard(0, done=outcome != "running", failed=outcome == "shard-failed")]
        report = ShardReport("scaffold", p.stage("scaffold").config_hash, 0, 1, state="succeeded", total=1)
        if outcome == "samples-failed":
            report.failed = [FailedSample("index_0000", "SampleError")]
        elif outcome != "shard-failed":
            report.succeeded = ["index_0000"]
        up.reports = {0: report}
    started: list[str] = []
    monkeypatch.setattr(runner, "_start_stage", lambda run: started.append(run.stage.name))
    runner._start_ready_stages()
    if "expansion" in started:
        return "ready"
    return "blocked" if runner.stages["expansion"].state == "blocked" else "waiting"


@pytest.mark.parametrize(("outcome", "coe", "expected"), CASES)
def test_both_executors_gate_a_downstream_stage_alike(outcome: str, coe: bool, expected: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert operator_verdict(outcome, coe) == expected
    # except that `genfab run` starts a stage that streams from its upstream while that one runs (the
    # operator does not stream yet)
    streams = bool(plan(resource(coe, True)).stage("expansion").streams_from)
    local = "ready" if outcome == "running" and streams else expected
    assert local_verdict(outcome, coe, tmp_path, monkeypatch) == local


@pytest.mark.parametrize(("phases", "coe", "expected"), [
    ({"a": "Succeeded", "b": "Skipped"}, False, "ready"),
    ({"a": "Succeeded", "b": "Running"}, True, "waiting"),
    ({"a": "Blocked", "b": "Succeeded"}, True, "blocked"),
    ({"a": "PartiallySucceeded", "b": "Succeeded"}, False, "blocked"),
    ({"a": "Waiting", "b": "Failed"}, True, "blocked"),  # any failed upstream blocks at once
])
def test_gate_over_several_upstream_stages(phases: dict[str, str], coe: bool, expected: str) -> None:
    stage = plan(resource(coe, True)).stage("expansion")
    two = dataclasses.replace(stage, upstream=("a", "b"))
    assert gate(two, phases, coe) == expected


def test_both_executors_run_the_same_command_and_model_location() -> None:
    r = parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "d"},
        "spec": {"type": "relighting", "output": "file:///tmp/o", "models": {"hubCache": "/data/hub"},
                 "relighting": {"input": {"uri": "file:///data/in"}},
                 "customStages": [{"name": "extra", "image": "x:1", "command": ["python3", "x.py"], "args": ["-v"]}]}})
    p = plan(r)
    assert stage_command(p.stage("segment")) == (["python", "-m", "genfab.stages", "segment"], [])
    assert stage_command(p.stage("extra"), "/venv/bin/python") == (["/venv/bin/python", "x.py"], ["-v"])
    assert models_env(r.spec.models, mounted=True) == {"GENFAB_MODELS": "/models"}
    assert models_env(r.spec.models, mounted=False) == {"GENFAB_MODELS": "/data/hub"}


@pytest.mark.parametrize(("stage_name", "gated", "held"), [
    ("scaffold", True, False),  # the gated stage itself runs
    ("expansion", True, True),  # right after the gate
    ("gaussians", True, True),  # two stages down: held too (the runner used to wait for it forever)
    ("gaussians", False, False),  # everything chosen
])
def test_a_gate_holds_every_stage_downstream_of_it(stage_name: str, gated: bool, held: bool) -> None:
    from genfab.sequencing.manual import Awaiting, held_back

    the_plan = plan(parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we"},
        "spec": {"pipeline": "worldexplorer", "input": {"manifest": "file:///data/metadata.json"},
                 "output": "file:///out", "worldexplorer": {"scaffold": {"method": "scaffold_gen",
                                                                         "selection": "manual"}}}}))
    waiting = Awaiting("scaffold", "AwaitingSelection", {"s": ("final/001.png",)}, "choose")
    found = held_back(the_plan.stage(stage_name), {"scaffold": waiting} if gated else {}, the_plan)
    assert (found is waiting) if held else found is None


WORLDEXPLORER = {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob", "metadata": {"name": "we"},
                 "spec": {"pipeline": "worldexplorer", "input": {"manifest": "file:///data/metadata.json"},
                          "output": "file:///out", "worldexplorer": {"scaffold": {"method": "scaffold_gen"},
                                                                     "expansion": {"method": "walk"}}}}


@pytest.mark.parametrize(("extra", "cuda", "expected"), [
    ({}, False, "stages expansion, gaussians of pipeline worldexplorer need a CUDA GPU (gsplat) and this machine "
                "has none: run it on a GPU machine, or run only the others with onlyStages: [scaffold] "
                "(--only scaffold)"),
    ({}, True, None),
    ({"onlyStages": ["scaffold"]}, False, None),  # the tiny example's CPU route
    ({"onlyStages": ["gaussians"]}, False, "stage gaussians of pipeline worldexplorer needs a CUDA GPU (gsplat) "
                                           "and this machine has none: run it on a GPU machine"),
    ({"onlyStages": ["scaffold", "gaussians"], "customStages": [
        {"name": "gaussians", "image": "lab/splat:1", "command": ["python", "splat.py"]}]}, False, None),
    # a manual gate stands before them: the run may stop there first; they are refused as they start
    ({"worldexplorer": {"scaffold": {"method": "scaffold_gen", "selection": "manual"},
                        "expansion": {"method": "walk"}}}, False, None),
    ({"onlyStages": ["expansion", "gaussians"],  # the gated stage does not run: nothing stops before them
      "worldexplorer": {"scaffold": {"method": "scaffold_gen", "selection": "manual"},
                        "expansion": {"method": "walk"}}}, False,
     "stages expansion, gaussians of pipeline worldexplorer need a CUDA GPU (gsplat) and this machine has none: "
     "run it on a GPU machine"),
])
def test_stages_that_need_cuda_are_refused_before_anything_starts(extra: dict[str, Any], cuda: bool,
                                                                  expected: str | None) -> None:
    from genfab.sequencing import cuda_refusal

    doc = {**WORLDEXPLORER, "spec": {**WORLDEXPLORER["spec"], **extra}}
    assert cuda_refusal(plan(parse_resource(doc)), cuda) == expected


@pytest.mark.parametrize(("env", "present", "visible"), [
    ({}, True, True),
    ({}, False, False),
    ({"CUDA_VISIBLE_DEVICES": ""}, True, False),  # hidden, as torch sees it
    ({"CUDA_VISIBLE_DEVICES": "-1"}, True, False),
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, True, True),
])
def test_a_gpu_is_seen_through_its_driver_files(tmp_path: Path, env: dict[str, str], present: bool,
                                                visible: bool) -> None:
    from genfab.local.devices import cuda_visible

    driver = tmp_path / "nvidiactl"
    if present:
        driver.write_text("")
    assert cuda_visible(env, (str(tmp_path / "absent"), str(driver))) is visible


@pytest.mark.parametrize(("family", "gang", "shards", "parallelism", "workers"), [
    ("diffusion", False, 10, None, 10),  # every shard at once: one Pod per shard
    ("diffusion", False, 10, 10, 10),
    ("diffusion", False, 10, 20, 10),
    ("diffusion", False, 10, 3, 3),  # fewer Pods than shards: warm workers
    ("custom", False, 10, 3, 10),  # a custom stage's command runs one shard
    ("diffusion", True, 4, 2, 4),  # a gang's nodes are one process group
])
def test_a_stage_runs_warm_workers_only_where_fewer_pods_than_shards_can_run_its_runtime(
        family: str, gang: bool, shards: int, parallelism: int | None, workers: int) -> None:
    from dataclasses import replace

    from genfab.sequencing import worker_env
    from tests.unit.shared import worldexplorer_plan

    stage = replace(worldexplorer_plan()[1].stage("scaffold"), family=family, gang=gang)
    assert stage.workers(shards, parallelism) == workers
    assert bool(worker_env(stage, shards, workers, 2)) == (workers < shards)
