"""The reference-object DatasetJob the end-to-end tests run (storage tier: stand-in edit stages;
GPU tier: the built-in ones with tiny Qwen Image Edit pipelines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.helpers import ROOT

STAND_IN = ROOT / "tests" / "fixtures" / "stand_in_edit_stage.py"
FAKES = ROOT / "tests" / "fakes" / "packages"
EDIT_STEPS = ("white-background", "perspectives", "scenes", "qwen-augmentation")


def job(tmp_path: Path, output: str, endpoint: str, model: str, models: Path, stand_in: bool = True,
        execution_name: str | None = "mug", **ro: Any) -> dict[str, Any]:
    """A mug on white, 2 views x 2 prompts x 1 iteration, one Qwen augmentation and one CV copy each,
    in the execution `mug` (None: the `executionMode` in `ro`, or the default `new`); `stand_in`: the
    edit steps are tests/fixtures/stand_in_edit_stage.py (custom stages)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    mask = np.zeros((160, 160), np.uint8)
    cv2.circle(mask, (80, 80), 35, 255, -1)
    image = np.full((160, 160, 3), 255, np.uint8)
    image[mask > 0] = (0, 140, 255)  # BGR orange
    cv2.imwrite(str(inputs / "mug.png"), image)
    cv2.imwrite(str(inputs / "mug_mask.png"), mask)
    block = {"inputImage": f"file://{inputs}/mug.png", "inputMask": f"file://{inputs}/mug_mask.png",
             "objectName": "mug", "perspectives": {"azimuths": ["front", "back"]},
             "scenes": {"numPrompts": 2, "numIterations": 1, "llmEndpoint": endpoint, "llmModel": model,
                        "llmTemperature": 1.0},
             "qwenAugmentation": {"enabled": True, "count": 1},
             "annotation": {"splitRatio": 0.75, "samType": "vit_b"}, "cvAugmentation": {"count": 1}, **ro}
    if execution_name is not None:
        block["executionName"] = execution_name
    custom = [{"name": s, "image": "example.org/stand-in:1", "command": ["python", str(STAND_IN)]}
              for s in EDIT_STEPS if stand_in]
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "mug"},
            "spec": {"type": "reference-object", "output": output, "continueOnError": True,
                     "models": {"uri": f"file://{models}"}, "referenceObject": block, "customStages": custom}}
