"""Models a plan cannot run without are refused before anything starts (`sequencing.preflight`):
which models count (a fallback's, the endpoint's, a custom stage's do not), without a location and
with one the executor read (identity `missing`)."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api import parse_resource
from genfab.inventory.model_identity import MISSING
from genfab.planner import plan
from genfab.sequencing.preflight import MODEL_MISSING, NO_LOCATION, model_refusal


def relighting(**relighting_spec: Any) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "r"},
            "spec": {"type": "relighting", "output": "file:///out",
                     "relighting": {"input": {"uri": "file:///in"}, **relighting_spec}}}


CLASSICAL = {"segmentation": {"backends": ["classical"]}, "degradation": {"softShading": {"normals": "classical"}}}
REFERENCE = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "ro"},
             "spec": {"type": "reference-object", "output": "file:///out",
                      "referenceObject": {"inputImage": "file:///in/a.jpg", "inputMask": "file:///in/m.png",
                                          "objectName": "bag",
                                          "scenes": {"projectInfoUri": "file:///in/p.txt"}}}}


@pytest.mark.parametrize(("doc", "needed"), [
    (relighting(**CLASSICAL), []),  # the main job: no model at all
    (relighting(segmentation={"backends": ["sam3", "classical"]},  # a fallback's models are optional
                degradation={"softShading": {"normals": "auto"}}), []),
    (relighting(segmentation={"backends": ["sam3", "sam2"]},  # the lab's SAM3 -> SAM2: either may run
                degradation={"softShading": {"normals": "classical"}}), []),
    (relighting(segmentation={"backends": ["sam3"]}, degradation={"softShading": {"normals": "midas"}}),
     ["facebook/sam3", "Intel/dpt-hybrid-midas"]),  # named, with nothing to fall back to
    ({**REFERENCE, "spec": {**REFERENCE["spec"], "onlyStages": ["prompts"]}}, []),  # the LLM is an endpoint's
    (REFERENCE, ["ovedrive/Qwen-Image-Edit-2509-4bit", "dx8152/Qwen-Edit-2509-Multiple-angles",
                 "ybelkada/segment-anything", "facebook/sam2.1-hiera-large"]),
    ({**REFERENCE, "spec": {**REFERENCE["spec"], "onlyStages": ["white-background"], "customStages": [
        {"name": "white-background", "image": "lab/wb:1", "command": ["python", "wb.py"]}]}}, []),
])
def test_which_models_a_run_cannot_do_without(doc: dict[str, Any], needed: list[str]) -> None:
    the_plan = plan(parse_resource(doc))
    assert list(dict.fromkeys(m for s in the_plan.stages if s.run for m in s.required_models)) == needed
    refusal = model_refusal(the_plan, None)
    if not needed:
        assert refusal is None
        return
    assert refusal is not None and refusal[0] == NO_LOCATION
    assert "none is configured: set spec.models.uri" in refusal[1] and all(m in refusal[1] for m in needed)
    assert refusal[1].count("\n") == 0
    # a location the executor read: refused only for a model that is not there
    identities = {m: "sha:1" for m in needed}
    assert model_refusal(plan(parse_resource(doc), models=identities), "s3://models/") is None
    identities[needed[-1]] = MISSING
    missing = model_refusal(plan(parse_resource(doc), models=identities), "s3://models/")
    assert missing is not None and missing[0] == MODEL_MISSING
    assert missing[1].startswith(f"model {needed[-1]} (stage ")
    assert "not in the model location s3://models/" in missing[1]
    # a location only a Pod can read (a volume): the stage says it when it loads the model
    assert model_refusal(plan(parse_resource(doc)), "/models") is None
