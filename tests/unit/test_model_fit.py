"""Models that do not fit each other are refused before any stage starts (issue: a LoRA that does not
fit the edit model was refused only when step 2 loaded it, after step 1 may have run): the pure rule
per stage (`StageDecl.model_fit`, `sequencing.preflight.fit_refusal`), the model location read by
`genfab validate`, `plan` and `run` on this machine, and step 1's own check at its start where the
executor cannot read the location."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.api import parse_resource
from genfab.api.reference_object import PerspectivesConfig, SceneGenerationConfig
from genfab.planner import plan
from genfab.sequencing.preflight import fit_refusal
from tests.helpers import ROOT
from tests.reference_object_job import job

EDIT_MODEL = SceneGenerationConfig.model_fields["model_path"].default
LORA = PerspectivesConfig.model_fields["lora"].default


def _doc(tmp_path: Path, **ro: Any) -> dict[str, Any]:
    doc = job(tmp_path, f"file://{tmp_path}/out", "http://127.0.0.1:9", "llama3.1", tmp_path / "models",
              stand_in=False, **ro)
    return doc


@pytest.mark.parametrize(("ro", "spec", "classes", "refused"), [
    ({}, {}, {EDIT_MODEL: "QwenImageEditPlusPipeline"}, False),  # the defaults pair
    ({}, {}, {EDIT_MODEL: "QwenImageEditPipeline"}, True),  # the first Qwen Image Edit: the LoRA was not trained on it
    ({}, {}, {}, False),  # nothing read here: the stage says it at its start
    ({}, {"onlyStages": ["white-background"]}, {EDIT_MODEL: "QwenImageEditPipeline"}, False),  # no views made
    ({"perspectives": {"generator": "zero123"}}, {}, {EDIT_MODEL: "QwenImageEditPipeline"}, False),  # no LoRA
], ids=["defaults-pair", "2509-lora-on-first-edit-model", "location-unread", "perspectives-not-selected",
        "zero123"])
def test_fit_refusal_names_the_stage_and_both_fixes(tmp_path: Path, ro: dict[str, Any], spec: dict[str, Any],
                                                   classes: dict[str, str], refused: bool) -> None:
    doc = _doc(tmp_path, **ro)
    doc["spec"].update(spec)
    why = fit_refusal(plan(parse_resource(doc)), classes)
    if not refused:
        assert why is None, why
        return
    assert why is not None and "\n" not in why
    assert why.startswith(f"stage perspectives: perspectives.lora {LORA} was trained on Qwen-Image-Edit-2509")
    assert f"scenes.modelPath {EDIT_MODEL} is a QwenImageEditPipeline" in why and "generator: zero123" in why


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genfab.cli.main", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                       "PYTHONPATH": f"{ROOT / 'operator'}:{ROOT / 'stages'}:{ROOT}"})


def test_validate_plan_and_run_refuse_a_lora_that_does_not_fit_before_anything_is_made(tmp_path: Path) -> None:
    """The edit model in spec.models is a first Qwen Image Edit export (`model_index.json` names
    `QwenImageEditPipeline`): `validate` and `plan` exit 1 and `genfab run` exits 2, each with the same
    one line, and the run writes nothing to its output."""
    folder = tmp_path / "models" / EDIT_MODEL
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "QwenImageEditPipeline",
                                                         "_diffusers_version": "0.35.0"}))
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_doc(tmp_path)))
    line = f"perspectives.lora {LORA} was trained on Qwen-Image-Edit-2509"
    for args, code in ((("validate", str(path)), 1), (("plan", str(path)), 1), (("run", str(path)), 2)):
        result = _cli(tmp_path, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        lines = [x for x in result.stderr.splitlines() if line in x]
        assert len(lines) == 1 and "Traceback" not in result.stderr, (args, result.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_step_one_carries_the_lora_to_check_at_its_start_out_of_its_hash(tmp_path: Path) -> None:
    """Where the executor cannot read the model location (a volume only Pods mount), step 1, the run's
    first, checks the pair when it loads the edit model: its settings carry the perspectives' LoRA
    (none for zero123), and another LoRA does not make step 1's image again."""
    from genfab.api.pipelines.reference_object import WhiteBackgroundSettings
    from genfab.stages.reference_object.edit_stages import step_one_lora

    def step_one(**ro: Any) -> Any:
        return plan(parse_resource(_doc(tmp_path, **ro))).stage("white-background")

    default, other = step_one(), step_one(perspectives={"lora": "fal/Qwen-Image-Edit-2511-Multiple-Angles-LoRA"})
    assert step_one_lora(WhiteBackgroundSettings.model_validate(default.config)) == LORA
    assert other.config_hash == default.config_hash
    assert step_one_lora(WhiteBackgroundSettings.model_validate(
        step_one(perspectives={"generator": "zero123"}).config)) is None
