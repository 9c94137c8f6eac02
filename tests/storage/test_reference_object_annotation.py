"""Step 6 on the CPU: the annotation stage's own code (model loading from the model location,
PerSAM's location prior and cascade, PerSAM-F, SAM2's refinement, masks to YOLO labels, the split,
dropped images) over stand-ins of `segment-anything` and `sam2` (tests/fakes/packages: their
interfaces, flood fills instead of SAM). The real packages and tiny random SAM/SAM2 run in tests/gpu."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from genfab.api.quality import REFERENCE_IMAGE, QualityGate
from genfab.inventory import ShardReport, write_report
from genfab.stages.reference_object.yolo import iou, parse_label, rasterize
from genfab.storage import open_storage
from tests.helpers import ROOT
from tests.storage.annotation_scenes import SIZE, annotation_env, disc, png, scene

pytestmark = pytest.mark.storage
FAKES = ROOT / "tests" / "fakes" / "packages"
DECLARED = "genfab.stages.reference_object.annotate_stage:ANNOTATION"


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(FAKES))
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("segment_anything", "sam2")]:
        del sys.modules[name]










def prepare(tmp_path: Path) -> tuple[Path, Path, Any, Any, dict[str, np.ndarray]]:
    """The reference (an orange disc), four generated scenes with the disc at known places and sizes
    (radius 22, 25, 28, 31) and a noise image, as a finished `scenes` stage under `tmp_path/run`."""
    from scripts.tiny_models import save_reference_object_models

    models = save_reference_object_models(tmp_path / "models", edit=False)
    rng = np.random.default_rng(0)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    ref_mask = disc((80, 80), 40)
    (inputs / "ref.png").write_bytes(png(np.where(ref_mask[..., None] > 0, np.array([255, 140, 0], np.uint8),
                                                 np.full((SIZE, SIZE, 3), 255, np.uint8))))
    cv2.imwrite(str(inputs / "ref_mask.png"), ref_mask * 255)

    run = open_storage(f"file://{tmp_path}/run")
    scenes = open_storage(f"file://{tmp_path}/run/04_dataset")
    truth = {}
    for i, center in enumerate([(40, 50), (110, 60), (60, 115), (120, 120)]):
        unit = f"perspective_0_prompt_{i}_seed_1"
        truth[unit] = disc(center, 22 + 3 * i)
        scenes.write_bytes(f"{unit}.png", png(scene(rng, truth[unit])))
    noise = (rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)  # nothing to find: a drop
    scenes.write_bytes("perspective_0_prompt_9_seed_1.png", png(noise))
    units = [*truth, "perspective_0_prompt_9_seed_1"]
    write_report(run, ShardReport("scenes", "s" * 64, 0, 1, state="succeeded", total=len(units), succeeded=units))
    return models, inputs, run, scenes, truth


def quality_table(run: Any) -> dict[str, dict[str, float]]:
    """The annotation shard's quality table: each annotated image's figures."""
    (key,) = [o.key for o in run.list("_genfab/quality/annotation/")]
    return dict(json.loads(run.read_bytes(key)))


@pytest.mark.parametrize(("persam_training", "model_threads"), [(False, 1), (True, 1), (False, 2)])
def test_annotation_writes_a_yolo_dataset_and_drops_what_it_cannot_find(
        tmp_path: Path, stand_ins: None, persam_training: bool, model_threads: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`model_threads` 2: the GPU's two model threads (each its own predictors over the shared
    models), here on the CPU."""
    from genfab.stages.reference_object import annotate_stage
    from genfab.stages.runtime.loop import main

    models, inputs, run, scenes, truth = prepare(tmp_path)
    config = {"objectName": "orange disc", "seed": 3,
              "annotation": {"splitRatio": 0.75, "persamTraining": persam_training, "persamEpochs": 60,
                             "persamLogEpoch": 20, "samType": "vit_b"}}
    monkeypatch.setattr(annotate_stage.Annotator, "model_threads", lambda self, device: model_threads)
    given: list[list[str]] = []  # each batch, and what had gone to the models when it returned
    held: list[annotate_stage.Annotator] = []

    def noting_process_batch(annotator: annotate_stage.Annotator, samples: list[Any]) -> list[Exception | None]:
        held.append(annotator)
        errors = annotate_stage.Annotator.process_batch(annotator, samples)
        given.append([s.id for s in samples])
        given.append(list(annotator.segmenting))
        return errors

    # three batches: the models go on into the next one before a batch returns
    stage = replace(annotate_stage.ANNOTATION, make_batch=noting_process_batch, batch_size=2).stage()
    stage.declared_as = DECLARED  # the declared stage, with the batches noted: its settings typed
    assert main(stage, annotation_env(tmp_path, models, inputs, config)) == 0
    assert held[0].predictors.qsize() == model_threads  # each thread gave its predictors back
    batches, ahead = given[0::2], given[1::2]
    assert len(batches) == 3
    assert ahead == [*batches[1:], []]  # each batch returned with the next one's images in the models

    dataset = open_storage(f"file://{tmp_path}/run/06_yolo_dataset")
    found = {o.key for o in dataset.list() if o.key.endswith(".txt") and "/labels/" in o.key}
    assert len(found) == 4  # the noise image is dropped
    assert sum(k.startswith("train/") for k in found) == 3  # 0.75 of the four the split saw... of five units
    for key in found:
        unit = key.rsplit("/", 1)[1].removesuffix(".txt")
        ((cls, points),) = parse_label(dataset.read_bytes(key).decode())
        assert cls == 0 and iou(truth[unit], rasterize(points, SIZE, SIZE)) > 0.9, unit
        split = key.split("/")[0]
        assert dataset.read_bytes(f"{split}/images/{unit}.png") == scenes.read_bytes(f"{unit}.png")
    doc = yaml.safe_load(dataset.read_bytes("dataset.yaml"))
    assert doc["names"] == {0: "orange disc"} and (Path(doc["path"]) / "train/images").is_dir()
    state = json.loads(run.read_bytes("pipeline_state.json"))
    assert [(f["step"], f["id"], f["reason"]) for f in state["failed_operations"]] == [
        (6, "perspective_0_prompt_9_seed_1", "NoMask")]
    assert state["completed_steps"] == [4, 6]
    table = quality_table(run)  # each annotated image's figures
    assert set(table) == set(truth)
    for unit, figures in table.items():
        assert figures["objectArea"] == pytest.approx(truth[unit].mean(), abs=0.01) and figures["objects"] == 1
        assert figures["polygonCoverage"] > 0.9 and figures["maskAgreement"] > 0.8 and figures["sharpness"] > 0


def test_an_image_outside_a_quality_bound_is_dropped_before_its_label_is_written(tmp_path: Path,
                                                                                  stand_ins: None) -> None:
    from genfab.stages.reference_object.annotate_stage import ANNOTATION
    from genfab.stages.runtime.loop import main

    models, inputs, run, _, truth = prepare(tmp_path)
    config = {"objectName": "orange disc", "seed": 3, "annotation": {"splitRatio": 0.75, "samType": "vit_b"},
              "quality": {"bounds": {"objectArea": {"max": 0.085}}, "named": ["objectArea"]}}
    assert main(ANNOTATION.stage(), annotation_env(tmp_path, models, inputs, config)) == 0
    big = {u for u, m in truth.items() if m.mean() > 0.085}  # the discs of radius 28 and 31
    assert len(big) == 2
    state = json.loads(run.read_bytes("pipeline_state.json"))
    dropped = {f["id"]: f for f in state["failed_operations"] if f["reason"] == "QualityOutOfRange"}
    assert set(dropped) == big
    assert all(d["message"].startswith("objectArea 0.") and d["message"].endswith("above max 0.085")
               for d in dropped.values()), dropped
    dataset = open_storage(f"file://{tmp_path}/run/06_yolo_dataset")
    labelled = {o.key.rsplit("/", 1)[1].removesuffix(".txt") for o in dataset.list() if "/labels/" in o.key}
    assert labelled == set(truth) - big  # their labels and images never written


def test_a_scene_that_repeats_an_earlier_one_is_dropped_at_the_default_bound(tmp_path: Path,
                                                                               stand_ins: None) -> None:
    """The scenes step's `metadata.json` names each scene's nearest earlier one (`duplicateDistance`);
    annotation takes the figure into the image's quality record, and the default bound (min 1) drops the
    later of two identical scenes, not the first."""
    from genfab.api.quality import DUPLICATE_RADIUS
    from genfab.stages.reference_object.annotate_stage import ANNOTATION
    from genfab.stages.reference_object.duplicates import phash
    from genfab.stages.reference_object.edit_stages import with_duplicates
    from genfab.stages.runtime.loop import main

    models, inputs, run, scenes, truth = prepare(tmp_path)
    original, repeat = "perspective_0_prompt_0_seed_1", "perspective_0_prompt_5_seed_1"
    scenes.write_bytes(f"{repeat}.png", scenes.read_bytes(f"{original}.png"))  # the edit ignored its prompt
    units = [*truth, repeat]
    hashes = {f"{u}.png": {"phash": f"{phash(cv2.imread(str(tmp_path / 'run/04_dataset' / f'{u}.png'))):016x}"}
              for u in units}
    scenes.write_bytes("metadata.json", json.dumps({"images": with_duplicates(hashes)}).encode())
    write_report(run, ShardReport("scenes", "s" * 64, 0, 1, state="succeeded", total=len(units), succeeded=units))
    gate = QualityGate.of(REFERENCE_IMAGE, {}).model_dump(mode="json", exclude_none=True)
    assert gate["bounds"]["duplicateDistance"] == {"min": 1.0}  # as the planner writes a spec without `quality`
    config = {"objectName": "orange disc", "seed": 3, "annotation": {"splitRatio": 0.75, "samType": "vit_b"},
              "quality": gate}
    assert main(ANNOTATION.stage(), annotation_env(tmp_path, models, inputs, config)) == 0
    state = json.loads(run.read_bytes("pipeline_state.json"))
    assert [(f["id"], f["reason"]) for f in state["failed_operations"]] == [(repeat, "QualityOutOfRange")]
    message = state["failed_operations"][0]["message"]
    assert message.startswith("duplicateDistance 0") and message.endswith("below min 1"), message
    table = quality_table(run)
    assert set(table) == set(truth)  # the original is kept, with its distance to the scenes before it
    far = DUPLICATE_RADIUS + 1  # no earlier scene within the radius: the first scene, and scenes unlike it
    assert table[original]["duplicateDistance"] == far and all(table[u]["duplicateDistance"] > 6 for u in truth)
