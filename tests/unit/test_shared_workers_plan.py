"""Which stages share one warm worker (genfab.planner.sharing): declared per pipeline, decided by the plan."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.api.pipeline import SharedWorker
from genfab.cli.loading import load_one
from genfab.cli.main import shared_worker_lines
from genfab.planner import Plan, plan
from genfab.planner.model import Resources
from genfab.planner.sharing import shared_group
from tests.helpers import ROOT

pytestmark = pytest.mark.unit


def vistadream(tmp: Path, **spec: Any) -> Plan:
    doc = yaml.safe_load((ROOT / "examples" / "scenejob-vistadream.yaml").read_text())
    for key, value in spec.items():
        if isinstance(value, dict):
            doc["spec"].setdefault(key, {}).update(value)
        else:
            doc["spec"][key] = value
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    resource = load_one(path).resource
    assert resource is not None
    return plan(resource, {"input": 16})


@pytest.mark.parametrize("spec, shared", [
    ({}, ("outpaint", "depth", "coarse")),  # the FLUX fill and the depth model, loaded once for the three
    ({"vistadream": {"stage": "outpaint"}}, ()),  # no coarse: nothing holds both models
    ({"onlyStages": ["outpaint", "depth"]}, ()),  # coarse reuses its outputs: it does not run
    ({"onlyStages": ["depth", "gaussians", "coarse"]}, ("depth", "coarse")),
    ({"customStages": [{"name": "depth", "image": "lab/depth:1", "command": ["python", "depth.py"]}]},
     ("outpaint", "coarse")),  # the lab's own depth stage runs its own code: it keeps its own Pods
])
def test_vistadreams_model_stages_share_a_worker_where_the_plan_runs_them(
        tmp_path: Path, spec: dict[str, Any], shared: tuple[str, ...]) -> None:
    p = vistadream(tmp_path, **spec)
    assert {s.name: s.shares_worker for s in p.stages if s.shares_worker} == {name: shared for name in shared}
    lines = shared_worker_lines(p)
    assert len(lines) == (1 if shared else 0)
    if shared:
        assert lines[0].startswith(f"shared worker: {', '.join(shared)} run in one warm worker that loads the FLUX")


def test_members_share_only_what_the_holder_loads_with_its_gpus_and_models(tmp_path: Path) -> None:
    by_name = {s.name: s for s in vistadream(tmp_path).stages}
    declared = SharedWorker(("outpaint", "depth", "coarse"), holder="coarse", models="m")
    assert shared_group(declared, by_name) == ("outpaint", "depth", "coarse")
    two_gpus = {**by_name, "depth": replace(by_name["depth"], resources=Resources(gpus=2, cpu="4", memory="16Gi"))}
    assert shared_group(declared, two_gpus) == ("outpaint", "coarse")
    assert shared_group(replace(declared, differs=lambda configs: "another fill"), by_name) == ()
    no_holder = {k: v for k, v in by_name.items() if k != "coarse"}
    assert shared_group(declared, no_holder) == ()
