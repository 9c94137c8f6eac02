"""reference-object's pure parts: views and their prompts, unit names, masks <-> YOLO labels, the
split, dataset.yaml, and the CV augmentation cascade (run through the real stage runtime)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from genfab.api.reference_object import CvAugmentationParameters, PerspectivesConfig
from genfab.inventory import ShardReport, write_report
from genfab.inventory.reports import FailedSample
from genfab.stages.reference_object.augment import NAMES, augment, build_transform
from genfab.stages.reference_object.cv_stage import CV_AUGMENTATION, compute_cv
from genfab.stages.reference_object.dataset import write_dataset_files
from genfab.stages.reference_object.state import Facts, build_state, scene_iterations, view_info
from genfab.stages.reference_object.summary import ShardParts
from genfab.stages.reference_object.units import SceneUnit, aug_id, is_augmented, scene_seed, scene_units_of
from genfab.stages.reference_object.views import camera_prompt, views, white_background_prompt
from genfab.stages.reference_object.yolo import (
    iou,
    label_line,
    mask_to_polygon,
    parse_label,
    rasterize,
    split_assignment,
)
from genfab.stages.runtime import load_context
from genfab.stages.runtime.loop import main
from genfab.storage import open_storage
from tests.helpers import stage_contract

pytestmark = pytest.mark.unit


# -- step 2: views and the LoRA's own phrases
@pytest.mark.parametrize(("cfg", "count", "first"), [
    (PerspectivesConfig(), 4, "perspective_00_front__eye_level"),
    (PerspectivesConfig(azimuths=["front", "back"], elevations=["eye_level", "high_angle"],
                        distances=["medium", "close_up"]), 8, "perspective_00_front__eye_level"),
    (PerspectivesConfig(generator="zero123"), 6, "perspective_00_azimuth_030__elevation_20"),
])
def test_views_follow_the_config_and_the_seed_names(cfg: PerspectivesConfig, count: int, first: str) -> None:
    found = views(cfg)
    assert len(found) == count == cfg.count()
    assert found[0].id == first
    assert len({v.id for v in found}) == count  # several distances never share a file name
    assert [v.index for v in found] == list(range(count))


@pytest.mark.parametrize(("azimuth", "elevation", "distance", "lora", "prompt"), [
    ("front_left", "elevated", "medium", "fal/Qwen-Image-Edit-2511-Multiple-Angles-LoRA",
     "<sks> front-left quarter view elevated shot medium shot"),
    ("side_right", "high_angle", "close_up", "fal/Qwen-Image-Edit-2511-Multiple-Angles-LoRA",
     "<sks> right side view high-angle shot close-up"),
    ("front_right", "eye_level", "medium", "dx8152/Qwen-Edit-2509-Multiple-angles",
     "将镜头向左旋转45度 Rotate the camera 45 degrees to the left."),
    ("side_left", "high_angle", "wide", "dx8152/Qwen-Edit-2509-Multiple-angles",
     "将镜头向右旋转90度 Rotate the camera 90 degrees to the right. 将镜头转为俯视 Turn the camera to a top-down "
     "view. 将镜头转为广角镜头 Turn the camera to a wide-angle lens."),
    ("front", "eye_level", "medium", "dx8152/Qwen-Edit-2509-Multiple-angles",
     "保持镜头不变 Keep the camera unchanged."),
])
def test_camera_prompts_use_each_loras_trained_phrases(azimuth: str, elevation: str, distance: str, lora: str,
                                                       prompt: str) -> None:
    cfg = PerspectivesConfig(azimuths=[azimuth], elevations=[elevation], distances=[distance])  # type: ignore[list-item]
    assert camera_prompt(views(cfg)[0], lora) == prompt


def test_zero123_views_have_no_camera_prompt_and_the_white_background_prompt_is_the_seeds() -> None:
    with pytest.raises(ValueError, match="not a multi-camera view"):
        camera_prompt(views(PerspectivesConfig(generator="zero123"))[0], "dx8152/Qwen-Edit-2509-Multiple-angles")
    assert white_background_prompt("pikachu bag") == (
        "pikachu bag with white background, while maintaining object's features and shape")


# -- step 4/5 units
def test_scene_units_are_every_perspective_prompt_and_iteration_with_the_seed_names() -> None:
    units = scene_units_of({"perspective_00_front__eye_level", "perspective_01_side_left__eye_level"}, 3, 2, 12345)
    assert len(units) == 2 * 3 * 2
    assert units[0].id == f"perspective_0_prompt_0_seed_{scene_seed(12345, 0, 0, 0)}"
    assert len({u.seed for u in units}) == len(units)  # random-looking, distinct per unit, not seed + i
    assert all(abs(u.seed - 12345) > 1000 for u in units)
    assert units == scene_units_of({"perspective_00_front__eye_level", "perspective_01_side_left__eye_level"},
                                   3, 2, 12345)  # reproducible from the resource's seed
    assert SceneUnit.parse(units[-1].id) == units[-1] == SceneUnit(1, 2, scene_seed(12345, 1, 2, 1))
    assert is_augmented(aug_id(units[0].id, 1)) and not is_augmented(units[0].id)
    with pytest.raises(ValueError, match="not a scene id"):
        SceneUnit.parse("perspective_0_prompt_x")


# -- step 6: masks <-> YOLO labels
def _shapes() -> dict[str, np.ndarray]:
    h, w = 240, 320
    circle = np.zeros((h, w), np.uint8)
    cv2.circle(circle, (100, 120), 60, 1, -1)
    ring = circle.copy()
    cv2.circle(ring, (100, 120), 25, 0, -1)
    parts = np.zeros((h, w), np.uint8)
    cv2.rectangle(parts, (20, 20), (90, 90), 1, -1)
    cv2.circle(parts, (230, 150), 50, 1, -1)
    holes = np.zeros((h, w), np.uint8)
    cv2.rectangle(holes, (40, 40), (280, 200), 1, -1)
    cv2.circle(holes, (100, 120), 30, 0, -1)
    cv2.rectangle(holes, (180, 80), (240, 160), 0, -1)
    mixed = parts.copy()
    cv2.circle(mixed, (230, 150), 20, 0, -1)
    cv2.ellipse(mixed, (160, 200), (40, 15), 20, 0, 360, 1, -1)
    return {"circle": circle, "ring": ring, "two parts": parts, "two holes": holes, "three parts, one hole": mixed}


@pytest.mark.parametrize("name", list(_shapes()))
def test_mask_polygon_label_round_trip_keeps_the_mask(name: str) -> None:
    mask = _shapes()[name]
    h, w = mask.shape
    line = label_line(mask_to_polygon(mask), w, h)
    assert line.startswith("0 ") and len(line.splitlines()) == 1  # one object, one line
    ((cls, points),) = parse_label(line)
    assert cls == 0 and points.min() >= 0.0 and points.max() <= 1.0
    assert iou(mask, rasterize(points, w, h)) >= 0.95


def test_labels_that_are_not_polygons_are_refused() -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_label("0 0.1 0.2 0.3")
    with pytest.raises(ValueError, match="at least 3 points"):
        label_line(np.zeros((2, 2)), 10, 10)
    assert len(mask_to_polygon(np.zeros((20, 20), np.uint8))) == 0


@pytest.mark.parametrize(("n", "ratio", "train"), [(10, 0.8, 8), (7, 0.8, 6), (2, 0.8, 1), (2, 0.1, 1), (1, 0.8, 1),
                                                    (100, 0.25, 25)])
def test_split_follows_the_ratio_and_is_the_same_everywhere(n: int, ratio: float, train: int) -> None:
    ids = [f"img_{i:03d}" for i in range(n)]
    split = split_assignment(ids, ratio, seed=7)
    assert sum(v == "train" for v in split.values()) == train
    assert split == split_assignment(list(reversed(ids)), ratio, seed=7)  # order of discovery does not matter
    assert set(split) == set(ids)


def test_dataset_yaml_paths_resolve_for_a_local_dataset(tmp_path: Path) -> None:
    store = open_storage(f"file://{tmp_path}/exec")
    for split in ("train", "val"):
        store.write_bytes(f"06_yolo_dataset/{split}/images/a.png", b"x")
    write_dataset_files(store, "06_yolo_dataset", ["pikachu bag"])
    doc = yaml.safe_load((tmp_path / "exec/06_yolo_dataset/dataset.yaml").read_text())
    root = Path(doc["path"])
    assert root.is_absolute() and (root / doc["train"]).is_dir() and (root / doc["val"]).is_dir()
    assert doc["names"] == {0: "pikachu bag"} and doc["nc"] == 1
    assert (tmp_path / "exec/06_yolo_dataset/classes.txt").read_text() == "pikachu bag\n"


# -- step 7: the CV cascade
def test_each_augmentation_fires_with_its_probability() -> None:
    cfg = CvAugmentationParameters()
    transform = build_transform(cfg)
    image = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)
    counts: collections.Counter[str] = collections.Counter()
    draws = 1500
    for seed in range(draws):
        counts.update(augment(transform, image, seed)[1])
    for name in NAMES:
        wanted = getattr(cfg.probabilities, name)
        assert abs(counts[name] / draws - wanted) < 0.05, (name, counts[name] / draws, wanted)
    a, names_a = augment(transform, image, 11)
    b, names_b = augment(transform, image, 11)
    assert names_a == names_b and np.array_equal(a, b)  # a seed gives the same copy


def _annotated_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return cv2.imencode(".png", (rng.random((48, 64, 3)) * 255).astype(np.uint8))[1].tobytes()


def test_cv_copies_keep_the_label_bytes_and_the_split() -> None:
    label = b"0 0.100000 0.200000 0.500000 0.200000 0.300000 0.700000\n"
    out = compute_cv({"id": "img", "split": "val", "suffix": ".png", "image": _annotated_png(1), "label": label,
                      "cfg": CvAugmentationParameters(count=2).model_dump_json(), "seeds": [5, 6]})
    files = out["files"]
    labels = {k: v for k, v in files.items() if k.endswith(".txt")}
    assert set(labels) == {"07_cv_augmented_dataset/val/labels/img_cv_0.txt",
                           "07_cv_augmented_dataset/val/labels/img_cv_1.txt",
                           "07_cv_combined_dataset/val/labels/img_cv_0.txt",
                           "07_cv_combined_dataset/val/labels/img_cv_1.txt"}
    assert all(v == label for v in labels.values())
    assert files["07_cv_augmented_dataset/val/images/img_cv_0.png"] != _annotated_png(1)


def test_cv_stage_runs_over_an_annotated_dataset_and_writes_both_datasets(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}/run")
    annotated = open_storage(f"file://{tmp_path}/run/06_yolo_dataset")
    ids = ["a", "b", "c"]
    for i, unit in enumerate(ids):
        split = "val" if unit == "b" else "train"
        annotated.write_bytes(f"{split}/images/{unit}.png", _annotated_png(i))
        annotated.write_bytes(f"{split}/labels/{unit}.txt", f"0 0.1 0.1 0.5 0.1 0.{i + 3} 0.9\n".encode())
    annotated.write_bytes("classes.txt", b"mug\n")
    write_report(run, ShardReport("annotation", "a" * 64, 0, 1, state="succeeded", total=3, succeeded=ids))
    config = {"seed": 3, "cvAugmentation": {"count": 2}}
    upstream = [{"name": "annotation", "configHash": "a" * 64, "outputUri": f"file://{tmp_path}/run/06_yolo_dataset"}]
    env = stage_contract(tmp_path, "cv-augmentation", pipeline="reference-object", config=config, upstream=upstream,
                         outputUri=f"file://{tmp_path}/run")
    assert main(CV_AUGMENTATION.stage(), env) == 0
    for root in ("07_cv_augmented_dataset", "07_cv_combined_dataset"):
        doc = yaml.safe_load(run.read_bytes(f"{root}/dataset.yaml"))
        assert doc["names"] == {0: "mug"} and Path(doc["path"]).is_dir()
        summary = json.loads(run.read_bytes(f"{root}/augmentation_summary.json"))
        assert summary["source_images"] == 3 and summary["augmented_images"] == 6
        assert summary["applied"]["compression_noise"] == 6  # probability 1
    assert run.read_bytes("07_cv_augmented_dataset/val/labels/b_cv_1.txt") == annotated.read_bytes("val/labels/b.txt")
    assert run.read_bytes("07_cv_combined_dataset/train/images/a.png") == annotated.read_bytes("train/images/a.png")
    assert not run.exists("07_cv_augmented_dataset/train/images/a.png")
    state = json.loads(run.read_bytes("pipeline_state.json"))
    assert state["completed_steps"] == [6, 7] and state["failed_operations"] == []
    assert state["cv_augmented_dataset_path"] == str((tmp_path / "run" / "07_cv_augmented_dataset").resolve())
    assert state["execution_name"] == "run"
    # Again: every sample is reused (setup never runs); the datasets and the state are written again.
    run.delete_prefix("07_cv_augmented_dataset/dataset.yaml")
    assert main(CV_AUGMENTATION.stage(), env) == 0
    assert run.exists("07_cv_augmented_dataset/dataset.yaml")
    assert json.loads(run.read_bytes("07_cv_combined_dataset/augmentation_summary.json"))["augmented_images"] == 6


def test_pipeline_state_is_the_lab_scripts_schema_with_its_failed_entries() -> None:
    """The lab's `load_state` keys, and `failed_images` entries as its `retry_failed_images` reads them
    (perspective, prompt, iteration, seed, file name, the perspective's path, the prompt)."""
    seed = scene_seed(7, 0, 1, 2)
    failing = f"perspective_0_prompt_1_seed_{seed}"
    ok = ShardReport("scenes", "s" * 64, 0, 2, state="succeeded", total=2,
                     succeeded=["perspective_0_prompt_0_seed_1"],
                     failed=[FailedSample(failing, "Timeout", "took too long")])
    broken = ShardReport("scenes", "s" * 64, 1, 2, state="failed", total=2, message="FatalError: out of memory")
    done = ShardReport("perspectives", "p" * 64, 0, 1, state="succeeded", total=1,
                       succeeded=["perspective_00_front__eye_level"])
    facts = Facts(input_image="s3://in/mug.png", object_name="mug", prompts=["a kitchen", "a desk"],
                  iterations=scene_iterations([failing], 7, 3))
    state = build_state("exec", {"scenes": {0: ok, 1: broken}, "perspectives": {0: done}}, facts,
                        lambda key: f"/runs/exec/{key}")
    assert set(LAB_STATE_KEYS) <= set(state)
    assert state["completed_steps"] == [2]  # one of scenes' shards failed: step 4 is not complete
    assert state["perspective_images"] == ["/runs/exec/02_perspectives/perspective_00_front__eye_level.png"]
    assert state["generated_images"] == ["/runs/exec/04_dataset/perspective_0_prompt_0_seed_1.png"]
    assert state["white_bg_image"] is None and state["yolo_dataset_path"] is None
    assert (state["perspective_generator"], state["perspective_view_info"]) == (
        "qwen_multicamera", [{"view": "front", "elevation": "eye_level", "distance": "medium"}])
    assert view_info("perspective_03_azimuth_210__elevation_minus10") == ("zero123", {"azimuth": 210, "elevation": -10})
    (entry,) = state["failed_images"]
    assert {k: entry[k] for k in ("perspective_idx", "prompt_idx", "iteration", "seed", "filename",
                                  "perspective_path", "prompt")} == {
        "perspective_idx": 0, "prompt_idx": 1, "iteration": 2, "seed": seed, "filename": f"{failing}.png",
        "perspective_path": "/runs/exec/02_perspectives/perspective_00_front__eye_level.png", "prompt": "a desk"}
    assert [(f["step"], f.get("id"), f["reason"]) for f in state["failed_operations"]] == [
        (4, failing, "Timeout"), (4, None, "ShardFailed")]


LAB_STATE_KEYS = ("completed_steps", "input_image", "object_name", "white_bg_image", "perspective_generator",
                  "perspective_images", "perspective_view_info", "prompts", "classes", "generated_images",
                  "failed_images", "qwen_combined_images_path", "qwen_augmentation_summary",
                  "failed_qwen_augmentations", "yolo_dataset_path", "annotation_summary", "cv_augmented_dataset_path",
                  "cv_augmentation_summary", "failed_cv_augmentations")
"""The keys of the lab's reference-object script's `load_state` (its `pipeline_state.json`)."""


def test_shard_parts_merge_into_one_record_and_a_rerun_keeps_its_entries(tmp_path: Path) -> None:
    written: list[dict[str, int]] = []
    for index, entries in ((0, {"a": 1}), (1, {"b": 2})):
        env = {**stage_contract(tmp_path, "cv-augmentation"), "JOB_COMPLETION_INDEX": str(index),
               "GENFAB_SHARD_COUNT": "2"}
        parts = ShardParts(load_context(env))
        for k, v in entries.items():
            parts.add(k, v)
        parts.publish(written.append)
    assert written[-1] == {"a": 1, "b": 2}
    again = ShardParts(load_context(stage_contract(tmp_path, "cv-augmentation")))  # shard 0 again, reusing "a"
    again.add("c", 3)
    assert again.publish(lambda merged: None) == {"a": 1, "b": 2, "c": 3}


@pytest.mark.parametrize(("generator", "custom", "models"), [
    ("qwen_multicamera", False, {"ovedrive/Qwen-Image-Edit-2509-4bit", "dx8152/Qwen-Edit-2509-Multiple-angles"}),
    ("zero123", False, {"sudo-ai/zero123plus-v1.2", "sudo-ai/zero123plus-pipeline"}),
    ("zero123", True, set()),
], ids=["qwen-multicamera", "zero123-built-in", "zero123-custom-stage"])
def test_the_built_in_perspectives_stage_runs_both_generators_and_loads_their_models(
        generator: str, custom: bool, models: set[str]) -> None:
    """Zero123++ is built in (its weights and its authors' custom pipeline from the model location); a
    custom stage named `perspectives` still replaces the built-in one."""
    from genfab.api import parse_resource
    from genfab.planner import plan

    doc = yaml.safe_load((Path(__file__).parents[2] / "examples" / "datasetjob-reference-object.yaml").read_text())
    doc["spec"]["referenceObject"]["perspectives"]["generator"] = generator
    if custom:
        doc["spec"]["customStages"] = [{"name": "perspectives", "image": "example.org/zero123pp:1"}]
    stage = next(s for s in plan(parse_resource(doc)).stages if s.name == "perspectives")
    assert stage.unsupported == ""
    assert (stage.implementation is not None) == (not custom)
    assert models <= set(stage.required_models), stage.required_models
    if generator == "zero123" and not custom:  # Zero123++ makes the views: the edit model is not loaded
        assert "ovedrive/Qwen-Image-Edit-2509-4bit" not in stage.required_models


def test_zero123s_grid_splits_row_by_row_into_its_six_views_and_inputs_are_squared_on_white() -> None:
    from genfab.stages.reference_object.views import ZERO123_POSES
    from genfab.stages.reference_object.zero123 import split_grid, square

    grid = np.zeros((960, 640, 3), np.uint8)
    for index in range(6):
        row, column = divmod(index, 2)
        grid[row * 320:(row + 1) * 320, column * 320:(column + 1) * 320] = 10 * (index + 1)
    tiles = split_grid(grid)
    assert len(tiles) == len(ZERO123_POSES) and all(t.shape == (320, 320, 3) for t in tiles)
    assert [int(t[0, 0, 0]) for t in tiles] == [10, 20, 30, 40, 50, 60]
    with pytest.raises(ValueError, match="does not split into 2x3"):
        split_grid(np.zeros((100, 640, 3), np.uint8))
    wide = np.zeros((40, 100, 3), np.uint8)
    squared = square(wide)
    assert squared.shape == (100, 100, 3) and squared[:30].min() == 255 and squared[30:70].max() == 0


@pytest.mark.parametrize(("lora", "pipeline", "refused"), [
    ("dx8152/Qwen-Edit-2509-Multiple-angles", "QwenImageEditPlusPipeline", False),
    ("fal/Qwen-Image-Edit-2511-Multiple-Angles-LoRA", "QwenImageEditPlusPipeline", False),
    ("dx8152/Qwen-Edit-2509-Multiple-angles", "QwenImageEditPipeline", True),  # the lab's script's pairing
    ("fal/Qwen-Image-Edit-2511-Multiple-Angles-LoRA", "QwenImageEditPipeline", True),
])
def test_a_camera_lora_on_a_pipeline_it_was_not_trained_on_is_refused_in_one_line(
        lora: str, pipeline: str, refused: bool) -> None:
    from genfab.api.reference_object import lora_mismatch

    why = lora_mismatch(lora, pipeline, "ovedrive/qwen-image-edit-4bit")
    assert (why is not None) == refused
    if why:
        assert "\n" not in why and f"perspectives.lora {lora}" in why and "scenes.modelPath" in why
        assert "perspectives.generator: zero123" in why
    default = PerspectivesConfig().lora  # the defaults pair: a 2509 LoRA on a 2509 export
    assert lora_mismatch(default, "QwenImageEditPlusPipeline", "ovedrive/Qwen-Image-Edit-2509-4bit") is None


@pytest.mark.parametrize(("text", "value"), [
    ("00000000000000ff", 255), ("ffffffffffffffff", 2**64 - 1), ("not-a-hash", None), ("0x00000000000000f", None),
    ("FFFFFFFFFFFFFFFF", None), ("1" * 17, None), (12, None), (None, None), ("", None)])
def test_a_scenes_recorded_hash_is_read_only_as_the_scenes_step_writes_it(text: object, value: int | None) -> None:
    from genfab.stages.reference_object.duplicates import phash_value

    assert phash_value(text) == value


def test_a_bad_hash_in_the_merged_records_leaves_that_scene_without_a_figure_not_the_stage_failed() -> None:
    from genfab.stages.reference_object.edit_stages import with_duplicates

    images = {"a.png": {"phash": "00000000000000ff"}, "b.png": {"phash": "zz"}, "c.png": {"phash": "00000000000000fe"}}
    out = with_duplicates(images)
    assert "duplicateDistance" not in out["b.png"] and out["c.png"]["duplicateDistance"] == 1
