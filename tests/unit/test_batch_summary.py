"""The per-sample batch summary (the lab's worldexplorer `batch_summary.json`) from shard reports: a table of
outcomes per stage (produced, reused, failed, not run, not selected) and the sample's status."""

from __future__ import annotations

from genfab.api import parse_resource
from genfab.inventory import FailedSample, ShardReport
from genfab.planner import plan
from genfab.sequencing.batch import batch_summary
from tests.helpers import load_example

A, B, C = "photorealistic/index_0000", "stylized/index_0000", "default/index_0003"


def report(stage: str, succeeded: list[str], seconds: dict[str, float], failed: list[FailedSample]) -> ShardReport:
    return ShardReport(stage, "h", 0, 1, state="succeeded", succeeded=succeeded, seconds=seconds, failed=failed)


def test_each_sample_gets_every_stage_outcome_and_a_status() -> None:
    doc = load_example("scenejob-worldexplorer.yaml")
    doc["spec"]["onlyStages"] = ["scaffold", "expansion"]
    p = plan(parse_resource(doc))
    reports = {
        "scaffold": {0: report("scaffold", [A, B], {A: 12.5}, [FailedSample(C, "NoPrompt", "no prompt")])},
        "expansion": {0: report("expansion", [A], {A: 30.25}, [FailedSample(B, "SampleError", "no depth")])},
    }
    out = batch_summary(p.stages, reports, "s3://genfab-out/worldexplorer/batch")
    rows = {r["sample"]: r for r in out["samples"]}
    assert list(rows) == sorted([A, B, C])
    a = rows[A]
    assert (a["variant"], a["index"], a["status"], a["seconds"]) == ("photorealistic", 0, "succeeded", 42.75)
    assert a["stages"]["scaffold"] == {"status": "succeeded", "reused": False, "seconds": 12.5,
                                       "output": "s3://genfab-out/worldexplorer/batch/photorealistic/index_0000/"
                                                 "scaffold/"}
    assert a["stages"]["gaussians"] == {"status": "not selected"}
    b = rows[B]
    assert b["status"] == "failed" and b["stages"]["scaffold"]["reused"] is True  # committed by an earlier run
    assert b["stages"]["expansion"] == {"status": "failed", "reason": "SampleError", "message": "no depth"}
    c = rows[C]
    assert (c["variant"], c["index"], c["status"]) == ("default", 3, "failed")
    assert c["stages"]["expansion"] == {"status": "not run"}  # its scaffold failed: it never reached stage 2
    assert out["counts"] == {"succeeded": 1, "failed": 2, "incomplete": 0}


def test_a_sample_still_on_its_way_is_incomplete() -> None:
    p = plan(parse_resource(load_example("scenejob-worldexplorer.yaml")))
    out = batch_summary(p.stages, {"scaffold": {0: report("scaffold", [A], {A: 1.0}, [])}}, "file:///out")
    assert out["samples"][0]["status"] == "incomplete" and out["counts"]["incomplete"] == 1
