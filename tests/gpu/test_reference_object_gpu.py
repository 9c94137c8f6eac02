"""Step 6 with the real `segment-anything` and `sam2` packages and tiny random SAM / SAM2 models
(scripts/tiny_models.py) on a GPU machine (the packages need torchvision, which the CPU machines do
not have). Random weights: the masks are meaningless, so this checks that the real packages load
from the model location and run the stage's whole path: every image ends as a labelled dataset
entry or as a NoMask drop, and the dataset files are written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genfab.inventory import ShardReport, write_report
from genfab.storage import open_storage
from tests.storage.test_reference_object_annotation import annotation_env, disc, png, scene

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(importlib.util.find_spec("segment_anything") is None
                       or importlib.util.find_spec("sam2") is None, reason="needs segment-anything and sam2"),
]


@pytest.mark.parametrize("persam_training", [False, True])
def test_annotation_runs_the_real_sam_and_sam2_on_tiny_models(tmp_path: Path, persam_training: bool) -> None:
    from scripts.tiny_models import save_reference_object_models

    from genfab.stages.reference_object.annotate_stage import AnnotationStage
    from genfab.stages.runtime.loop import main

    models = save_reference_object_models(tmp_path / "models")
    rng = np.random.default_rng(0)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    ref_mask = disc((80, 80), 40)
    (inputs / "ref.png").write_bytes(png(scene(rng, ref_mask)))
    (inputs / "ref_mask.png").write_bytes(png(np.repeat(ref_mask[..., None] * 255, 3, axis=2)))
    run = open_storage(f"file://{tmp_path}/run")
    scenes = open_storage(f"file://{tmp_path}/run/04_dataset")
    units = [f"perspective_0_prompt_{i}_seed_1" for i in range(4)]
    for i, unit in enumerate(units):
        scenes.write_bytes(f"{unit}.png", png(scene(rng, disc((40 + 25 * i, 60), 25))))
    write_report(run, ShardReport("scenes", "s" * 64, 0, 1, state="succeeded", total=4, succeeded=units))
    config = {"objectName": "orange disc", "seed": 3,
              "annotation": {"splitRatio": 0.75, "persamTraining": persam_training, "persamEpochs": 50}}
    assert main(AnnotationStage(), annotation_env(tmp_path, models, inputs, config)) == 0
    dataset = open_storage(f"file://{tmp_path}/run/06_yolo_dataset")
    labelled = [o.key for o in dataset.list() if "/labels/" in o.key]
    state = json.loads(run.read_bytes("pipeline_state.json"))
    dropped = [f for f in state["failed_operations"] if f["step"] == 6]
    assert len(labelled) + len(dropped) == 4 and all(f["reason"] == "NoMask" for f in dropped)
    assert dataset.exists("dataset.yaml") and dataset.read_bytes("classes.txt") == b"orange disc\n"
