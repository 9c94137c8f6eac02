"""The difix export's pure parts: which triplets a scene gives (every reference strategy, the frame
offset, each drop reason decided before reading), skip lists, source layouts from key listings, and
camera files in each format read into the same poses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genfab.stages.difix.cameras import camera_id, read_cameras
from genfab.stages.difix.layouts import GenericLayout, Hi4dLayout, SceneRef, SourceError, index_files, layout_for
from genfab.stages.difix.procedural import ring, write_cameras
from genfab.stages.difix.triplets import (
    Selection,
    frame_value,
    nearest_camera,
    offset_frame,
    plan_scene,
    random_camera,
    skip_set,
)
from genfab.storage import open_storage

CAMS = (4, 16, 28, 40)
FRAMES = ("000000", "000001", "000002", "000003")
CENTERS = {4: 0.0, 16: 1.0, 28: 2.5, 40: 5.0}  # on a line: 16's nearest is 4, 28's is 16


def distance(a: int, b: int) -> tuple[float, float]:
    return abs(CENTERS[a] - CENTERS[b]), 0.0


def plan(strategy: str = "nearest-camera", ref: int | None = None, offset: int = 0, stride: int = 1,
         targets: tuple[int, ...] | None = None, gt_missing: tuple[tuple[int, str], ...] = (),
         render_missing: tuple[tuple[int, str], ...] = (), skipped: tuple[str, ...] = (), seed: int = 0
         ) -> tuple[list[tuple[int, str, int, str]], list[tuple[int, str, str]]]:
    gt = [(c, f) for c in CAMS for f in FRAMES if (c, f) not in gt_missing]
    triplets, drops = plan_scene("s", CAMS, gt, lambda c, f: (c, f) not in render_missing, set(skipped),
                                 Selection(targets, stride, strategy, ref, offset, seed), distance)
    return ([(t.target_cam, t.frame, t.reference_cam, t.reference_frame) for t in triplets],
            [(d.target_cam, d.frame, d.reason) for d in drops])


def test_nearest_camera_by_pose() -> None:
    triplets, drops = plan(targets=(16, 28, 40), stride=4)
    assert triplets == [(16, "000000", 4, "000000"), (28, "000000", 16, "000000"), (40, "000000", 28, "000000")]
    assert not drops
    assert nearest_camera(4, [4], distance) is None


def test_fixed_camera_is_never_its_own_target_and_the_offset_moves_the_reference_frame() -> None:
    triplets, drops = plan("fixed-camera", ref=4, offset=1, stride=2)
    assert triplets == [(c, f, 4, g) for f, g in (("000000", "000001"), ("000002", "000003")) for c in (16, 28, 40)]
    triplets, drops = plan("fixed-camera", ref=4, offset=-1, targets=(16,))
    assert [t[3] for t in triplets] == ["000000", "000001", "000002"]
    assert drops == [(16, "000000", "missing_reference")]  # frame -1 does not exist


def test_random_camera_is_seeded_and_never_the_target() -> None:
    first, _ = plan("random-camera", seed=3)
    assert first == plan("random-camera", seed=3)[0]
    assert all(t[0] != t[2] for t in first)
    picks = {random_camera(16, CAMS, s, "s", "000000") for s in range(40)}
    assert picks == {4, 28, 40}  # every other camera comes up across seeds
    assert first != plan("random-camera", seed=4)[0]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"skipped": ("2",)}, [(16, "000002", "skipped_frame")]),
    ({"gt_missing": ((16, "000001"),)}, [(16, "000001", "missing_ground_truth")]),
    ({"render_missing": ((16, "000003"),)}, [(16, "000003", "missing_render")]),
    ({"gt_missing": ((4, "000000"),)}, [(16, "000000", "missing_reference")]),  # 16's reference is 4
    ({"skipped": ("1",), "offset": 1}, [(16, "000000", "skipped_frame"), (16, "000001", "skipped_frame"),
                                        (16, "000003", "missing_reference")]),
])
def test_drops_decided_before_reading(kwargs: dict[str, object], expected: list[tuple[int, str, str]]) -> None:
    triplets, drops = plan(targets=(16,), **kwargs)  # type: ignore[arg-type]
    assert drops == expected
    assert len(triplets) + len(drops) == len(FRAMES)


def test_skip_lists_and_frame_ids() -> None:
    assert skip_set(["7", "proc_a:000002", "b:3", "a:000004"], "proc_a", "proc", "5, 12\n") == {"7", "2", "4", "5",
                                                                                             "12"}
    assert frame_value("000123") == "123" and frame_value("f_a") == "f_a"
    assert offset_frame("000009", 1, ["000009", "000010"]) == "000010"
    assert offset_frame("000009", 2, ["000009"]) == "000011"
    assert offset_frame("b", -1, ["a", "b"]) == "a" and offset_frame("a", -1, ["a", "b"]) == "a-1"


def test_generic_and_lab_layouts_from_a_listing() -> None:
    keys = ["cameras.json", "images/16/000001.jpg", "images/16/000002.png", "images/x/000001.jpg",
            "renders/16/000001.png", "masks/16/000001.png", "seg/img_seg_mask/16/all/000002.png",
            "seg/img_seg_mask/16/0/000002.png", "splats/000001.ply", "splats/scene.ply", "skip_frames.csv"]
    scene = SceneRef("a", "proc_a")
    files = index_files(keys, scene, "cameras.json", "images", GenericLayout.masks, "renders", "splats",
                        "skip_frames.csv")
    assert files.images == {(16, "000001"): "images/16/000001.jpg", (16, "000002"): "images/16/000002.png"}
    assert files.renders == {(16, "000001"): "renders/16/000001.png"}
    assert files.masks == {(16, "000001"): "masks/16/000001.png", (16, "000002"): "seg/img_seg_mask/16/all/000002.png"}
    assert files.plys == {"000001": "splats/000001.ply", "*": "splats/scene.ply"}
    assert files.camera_ids == [16] and files.frames == ["000001", "000002"]


def test_hi4d_scene_names_follow_the_lab() -> None:
    layout = Hi4dLayout()
    assert layout.scene_name("hi4d", "pair17/dance17") == "hi4d_pair17_dance"
    assert layout.scene_name("hi4d", "pair00/talk01") == "hi4d_pair00_talk01"
    assert isinstance(layout_for("generic"), GenericLayout)
    with pytest.raises(SourceError, match=r"dataset 'studio' has no loader .*'genfab\.difix_sources'"):
        layout_for("studio")


@pytest.mark.parametrize("fmt", ["cameras.json", "transforms.json", "colmap"])
def test_every_camera_format_gives_the_same_poses(tmp_path: Path, fmt: str) -> None:
    cams = ring(64, 48)
    scene = tmp_path / "src" / "s"
    scene.mkdir(parents=True)
    write_cameras(scene, fmt, cams)
    storage = open_storage(f"file://{tmp_path}/src")
    layout = GenericLayout()
    (ref,) = layout.scenes(storage, "proc")
    got = read_cameras(storage, layout.files(storage, ref, None, False))
    assert sorted(got) == sorted(cams)
    for cid, cam in cams.items():
        assert np.allclose(got[cid].c2w, cam.c2w, atol=1e-6) and np.allclose(got[cid].K, cam.K)
        assert (got[cid].width, got[cid].height) == (64, 48)


def test_a_bad_camera_file_is_one_line(tmp_path: Path) -> None:
    scene = tmp_path / "src" / "s"
    scene.mkdir(parents=True)
    (scene / "cameras.json").write_text(json.dumps({"4": {"K": [[1, 0], [0, 1]], "cam_T_world": np.eye(4).tolist()}}))
    storage = open_storage(f"file://{tmp_path}/src")
    layout = GenericLayout()
    (ref,) = layout.scenes(storage, "proc")
    with pytest.raises(SourceError, match=r"cameras.json: camera 4: K must be a finite 3x3 matrix"):
        read_cameras(storage, layout.files(storage, ref, None, False))
    shutil.rmtree(scene)
    assert layout.scenes(storage, "proc") == []
    with pytest.raises(SourceError, match="names no integer camera id"):
        camera_id("images/front.jpg", "transforms.json")
