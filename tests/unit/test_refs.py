"""Inputs that are another resource's output (`ref:Kind/name/path`), pure: when a reference is
usable, what the stage reading it does meanwhile, and the substituted plan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.operator.decide import Observed, decide
from genfab.planner import plan
from genfab.sequencing.refs import RefState, ref_state, stage_refs, substitute_refs


def body(phase: str, root: str | None = "s3://lab-out/data") -> dict[str, Any]:
    return {"status": {"phase": phase, "outputs": {"root": root} if root else {}}}


@pytest.mark.parametrize(("obj", "state", "text"), [
    (None, "waiting", "does not exist"),
    (body("Running"), "waiting", "to succeed (now Running)"),
    (body("Succeeded"), "ready", ""),
    (body("PartiallySucceeded"), "ready", ""),
    (body("Succeeded", root=None), "waiting", "now Succeeded"),  # no output root yet: not usable
    (body("Failed"), "failed", "failed"),
])
def test_ref_state(obj: dict[str, Any] | None, state: str, text: str) -> None:
    found = ref_state("DatasetJob/data", obj)
    assert found.state == state and text in found.message
    if state == "ready":
        assert found.root == "s3://lab-out/data"


def tuning() -> Any:
    return parse_resource({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "TuningRun", "metadata": {"name": "tr", "namespace": "lab"},
        "spec": {"trainer": "difix", "dataset": {"datasetJobRef": "data"}, "runName": "r1",
                 "output": "s3://lab-out/exp"}})


def test_the_plan_substitutes_usable_references_and_keeps_its_hash() -> None:
    p = plan(tuning())
    train = p.stage("train")
    assert stage_refs(train) == ["DatasetJob/data"] and train.input_uris == ("ref:DatasetJob/data/difix/data.json",)
    resolved = substitute_refs(p, {"DatasetJob/data": "s3://lab-out/data"})
    assert resolved.stage("train").input_uris == ("s3://lab-out/data/difix/data.json",)
    assert resolved.stage("train").config_hash == train.config_hash
    assert substitute_refs(p, {}) == p


@pytest.mark.parametrize(("state", "phase", "reason"), [
    (RefState("waiting", message="waiting for DatasetJob/data to succeed (now Running)"), "Waiting",
     "WaitingForReference"),
    (RefState("failed", message="DatasetJob/data failed: its output is not usable"), "Failed", "ReferenceFailed"),
])
def test_a_stage_waits_for_or_fails_with_its_reference(state: RefState, phase: str, reason: str) -> None:
    r = tuning()
    d = decide(plan(r), r.spec, Observed(refs={"DatasetJob/data": state}), None, datetime(2026, 11, 23, tzinfo=UTC))
    assert d.start == []
    obs = d.observations[0]
    assert obs.reason == reason and obs.message == state.message
    from genfab.operator.decide import resource_status

    status = resource_status(d, r.spec, None, 1, "2026-11-23T00:00:00Z", {}, {})
    assert status.stages[0].phase == phase


def test_a_usable_reference_starts_the_stage() -> None:
    r = tuning()
    p = substitute_refs(plan(r), {"DatasetJob/data": "s3://lab-out/data"})
    d = decide(p, r.spec, Observed(), None, datetime(2026, 11, 23, tzinfo=UTC))
    assert d.start == ["train"]
