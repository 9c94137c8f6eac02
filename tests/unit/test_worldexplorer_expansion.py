"""worldexplorer stage 2's pieces on the CPU: the trajectories through the scaffold, the img2trajvid
layout as the gaussians loader reads it, the similarity that moves VGGT's frame into the scene's, and
the SEVA and VGGT adapters against stand-ins of their packages (tests/fakes/research: their import
paths, signatures and output shapes, none of their models)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from genfab.stages.gaussians.loaders import load_scene
from genfab.stages.runtime import BadInput
from genfab.stages.scene.geometry import intrinsics_from_fov
from genfab.stages.worldexplorer.expansion_stage import walks
from genfab.stages.worldexplorer.img2trajvid import TrajFrame, subsample, write_img2trajvid
from genfab.stages.worldexplorer.keyframes import key_frames
from genfab.stages.worldexplorer.research import similarity
from genfab.stages.worldexplorer.scaffold_geometry import cam_T_world, yaw_pose
from genfab.stages.worldexplorer.scaffold_stage import sweep_poses
from genfab.stages.worldexplorer.trajectories import camera_centres, direction, frames_per_view, scaffold_trajectory
from tests.helpers import own_pixel_error

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "research"


# -- trajectories ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("frames", "split"), [(8, [1] * 8), (20, [3, 3, 3, 3, 2, 2, 2, 2]), (120, [15] * 8)])
def test_outward_frames_are_shared_among_the_eight_views(frames: int, split: list[int]) -> None:
    assert frames_per_view(frames) == split


def test_outward_walks_out_along_each_scaffold_view_looking_its_way() -> None:
    poses = scaffold_trajectory("outward", 24, 2.0)
    centres = camera_centres(poses)
    assert len(poses) == 24
    for view in range(8):
        segment = slice(3 * view, 3 * view + 3)
        heading = direction(45.0 * view)
        np.testing.assert_allclose(centres[segment], np.outer([2 / 3, 4 / 3, 2.0], heading), atol=1e-9)
        for pose in poses[segment]:  # the same rotation as the scaffold view: it looks along its walk
            np.testing.assert_allclose(pose[:3, :3], cam_T_world(view)[:3, :3], atol=1e-9)
    assert np.linalg.norm(centres, axis=1).min() > 0  # no pose at the centre: those are the scaffold views


def test_orbit_circles_the_centre_looking_outwards() -> None:
    poses = scaffold_trajectory("orbit", 16, 0.5)
    centres = camera_centres(poses)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 0.5)
    np.testing.assert_allclose(centres[:, 1], 0.0, atol=1e-12)
    for pose, centre in zip(poses, centres, strict=True):
        forward = np.linalg.inv(pose)[:3, 2]
        np.testing.assert_allclose(forward, centre / 0.5, atol=1e-9)


@pytest.mark.parametrize(("kind", "frames", "distance", "message"), [
    ("outward", 0, 1.0, "at least one frame"), ("orbit", 8, 0.0, "distance must be > 0"),
    ("spiral", 8, 1.0, "outward or orbit")])
def test_a_bad_trajectory_says_what_is_allowed(kind: str, frames: int, distance: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scaffold_trajectory(kind, frames, distance)  # type: ignore[arg-type]


# -- img2trajvid ----------------------------------------------------------------------------------
def test_img2trajvid_is_what_the_gaussians_loader_reads(tmp_path: Path) -> None:
    K = intrinsics_from_fov(32, 32, 60.0)
    poses = [cam_T_world(0), cam_T_world(2), yaw_pose(30.0, np.array([0.2, 0.0, 0.1]))]
    rng = np.random.default_rng(0)
    frames = [TrajFrame(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), K, pose, source)
              for pose, source in zip(poses, ("scaffold", "scaffold", "generated"), strict=True)]
    points = rng.normal(size=(50, 3))
    colors = rng.random((50, 3))
    counts = write_img2trajvid(tmp_path / "img2trajvid", frames, points, colors, max_points=20)
    assert counts == {"scaffold": 2, "generated": 1, "rendered": 0, "points": 20}
    scene = load_scene(tmp_path / "img2trajvid")
    assert [c.name for c in scene.cameras] == ["0000", "0001", "0002"]
    for cam, frame in zip(scene.cameras, frames, strict=True):
        np.testing.assert_allclose(cam.w2c, frame.cam_T_world, atol=1e-6)  # OpenGL on disk, OpenCV back
        np.testing.assert_allclose(cam.K, K)
        assert (tmp_path / "img2trajvid" / cam.image).is_file()
    assert scene.points is not None and len(scene.points) == 20
    np.testing.assert_allclose(scene.points, subsample(points, colors, 20)[0], atol=1e-5)


# -- the similarity into the scene's frame ---------------------------------------------------------
def _random_similarity(seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return float(rng.uniform(0.3, 3.0)), q * np.sign(np.linalg.det(q)), rng.normal(size=3)


def test_similarity_recovers_scale_rotation_and_shift() -> None:
    scale, rotation, shift = _random_similarity(1)
    source = np.random.default_rng(2).normal(size=(12, 3))
    s, r, t = similarity(source, scale * source @ rotation.T + shift)
    assert s == pytest.approx(scale)
    np.testing.assert_allclose(r, rotation, atol=1e-9)
    np.testing.assert_allclose(t, shift, atol=1e-9)


def test_similarity_refuses_degenerate_sets() -> None:
    with pytest.raises(ValueError, match="not all in one place"):
        similarity(np.zeros((4, 3)), np.ones((4, 3)))


# -- the adapters against stand-ins ---------------------------------------------------------------
@pytest.fixture()
def research(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(FAKES))
    yield
    for name in [n for n in sys.modules if n.split(".")[0] in ("seva", "vggt")]:
        del sys.modules[name]


def _cpu() -> object:
    import torch

    from genfab.stages.models.placement import Placement

    return Placement(torch.device("cpu"), torch.float32, "none")


def test_without_the_package_the_adapter_names_the_image_to_set(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from genfab.stages.worldexplorer.seva_adapter import Seva

    with pytest.raises(BadInput, match=r"set worldexplorer.seva.image to an image built from images/seva/Dockerfile"):
        Seva(tmp_path, _cpu(), None, None, 50, 3.0, 2.0)  # type: ignore[arg-type]


def test_seva_generates_the_targets_in_order_at_their_cameras(tmp_path: Path, research: None) -> None:
    from genfab.stages.worldexplorer.seva_adapter import PosedView, Seva

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"")
    seva = Seva(tmp_path / "w", _cpu(), None, None, 7, 3.5, 2.0)  # type: ignore[arg-type]
    K = intrinsics_from_fov(48, 48, 60.0)
    image = np.full((48, 48, 3), 200, np.uint8)
    targets = [PosedView(K, yaw_pose(yaw, np.array([0.1, 0, 0]))) for yaw in (10.0, 50.0, 100.0, 300.0)]
    out = seva([PosedView(K, cam_T_world(0), image), PosedView(K, cam_T_world(2), image)], targets, 5, tmp_path / "run")
    assert [o.shape for o in out] == [(48, 48, 3)] * 4
    assert [int(o[0, 0, 0]) for o in out] == [0, 1, 2, 3]  # target order kept
    assert [int(o[0, 0, 1]) for o in out] == [5, 25, 50, 150]  # each at its own camera (yaw / 2)
    from seva import eval as seva_eval  # the stand-in's record of the call

    assert seva_eval.CALLS[-1] == {"task": "img2trajvid", "inputs": 2, "targets": 4, "seed": 5, "arrays": True,
                                   "cfg": 3.5, "steps": 7}
    assert not list((tmp_path / "run").rglob("*.png"))  # views in and frames out in memory: no files
    assert not seva_eval.LOADS  # SEVA's load_model skipped: everything is on the device already
    # SEVA's own paths and writes (benchmarks/seva_speed.py's baseline) give the same frames, read back from
    # its PNGs, with its load_model called
    saved = len(seva_eval.SAVES)
    seva.in_memory = False
    again = seva([PosedView(K, cam_T_world(0), image), PosedView(K, cam_T_world(2), image)], targets, 5,
                 tmp_path / "own")
    assert seva_eval.CALLS[-1]["arrays"] is False and len(seva_eval.LOADS) == 3
    assert seva_eval.SAVES[saved:] == [str(tmp_path / "own" / "seva" / "first-pass"), str(tmp_path / "own" / "seva")]
    assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))
    assert seva_eval.load_model is not None and seva_eval.load_model.__name__ == "load_model"  # restored


def test_seva_runs_with_its_autoencoder_and_conditioner_from_the_model_location(tmp_path: Path,
                                                                                 research: None) -> None:
    """SEVA's AutoEncoder and CLIPConditioner download their weights when constructed (the stand-ins
    refuse, as an offline Pod would): the adapter builds them as SEVA's classes around the VAE and the
    CLIP checkpoint under the model location, and SEVA's own methods run on them."""
    pytest.importorskip("diffusers")
    import torch
    from seva.modules import autoencoder, conditioner

    from genfab.stages.worldexplorer.seva_adapter import seva_autoencoder, seva_conditioner
    from tests.helpers import save_seva_stand_in

    with pytest.raises(OSError, match="downloads"):
        autoencoder.AutoEncoder(chunk_size=1)
    save_seva_stand_in(tmp_path)
    ae = seva_autoencoder(tmp_path / "stabilityai/stable-diffusion-2-1-base", _cpu())  # type: ignore[arg-type]
    assert isinstance(ae, autoencoder.AutoEncoder) and ae.chunk_size == 1 and not ae.module.training
    assert ae.encode(torch.zeros(1, 3, 16, 16)).shape == (1, 4, 16, 16)  # SEVA's encode on the tiny VAE
    clip = seva_conditioner(tmp_path / "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", _cpu())  # type: ignore[arg-type]
    assert isinstance(clip, conditioner.CLIPConditioner)
    assert float(clip.module.proj.weight[0, 0]) == 0.5  # the checkpoint's weights, not a fresh init
    assert clip.mean.tolist() == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert clip(torch.zeros(1, 3, 8, 8)).shape == (1, 4)
    with pytest.raises(BadInput, match=r"worldexplorer.seva.clipModel names a copy of laion/CLIP-ViT-H-14"):
        seva_conditioner(tmp_path, _cpu())  # type: ignore[arg-type]


def test_single_image_scaffold_takes_the_key_frames_of_the_sweep(tmp_path: Path, research: None) -> None:
    from genfab.stages.worldexplorer.seva_adapter import PosedView, Seva

    (tmp_path / "model.safetensors").write_bytes(b"")
    seva = Seva(tmp_path, _cpu(), None, None, 2, 3.0, 2.0)  # type: ignore[arg-type]
    K = intrinsics_from_fov(32, 32, 60.0)
    poses = sweep_poses(24)  # 15° apart: every 45° view has a frame exactly on it
    image = np.zeros((32, 32, 3), np.uint8)
    frames = [image, *seva([PosedView(K, poses[0], image)], [PosedView(K, p) for p in poses[1:]], 0, tmp_path / "run")]
    keys = key_frames(list(poses))
    assert [k.frame for k in keys] == [0, 3, 6, 9, 12, 15, 18, 21]
    for key in keys[1:]:
        assert int(frames[key.frame][0, 0, 1]) == round(45 * key.view / 2)  # the frame SEVA made at that view


def test_vggt_points_land_in_the_scene_frame(tmp_path: Path, research: None) -> None:
    from genfab.stages.common.imaging import encode_png
    from genfab.stages.worldexplorer.vggt_adapter import Vggt, to_scene

    scene_poses = np.stack([yaw_pose(yaw, np.array([np.cos(i), 0.3 * i, np.sin(i)]))
                            for i, yaw in enumerate((0.0, 40.0, 95.0, 180.0, 270.0))])
    scale, rotation, shift = _random_similarity(3)
    to_vggt = np.eye(4)
    to_vggt[:3, :3], to_vggt[:3, 3] = scale * rotation, shift
    vggt_poses = []
    for pose in scene_poses:  # the same cameras seen in VGGT's frame: x_v = s R x + t
        rigid = pose @ np.linalg.inv(to_vggt)
        rigid[:3, :] *= scale  # camera-frame lengths scale with the world: s · P · S⁻¹ is rigid
        vggt_poses.append(rigid)
    depth_scene = np.array([1.0, 2.0, 1.5, 3.0, 2.5])
    np.savez(tmp_path / "stand_in.npz", cam_T_world=np.stack(vggt_poses), depth=depth_scene * scale)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(encode_png(np.full((56, 56, 3), 40 * i, np.uint8)))
    vggt = Vggt(tmp_path, _cpu())  # type: ignore[arg-type]
    assert vggt.source == "vggt 0+genfab.stand.in"  # producedBy names the code: here the stand-in's metadata
    geometry = vggt(paths)
    assert geometry.points.shape == (5, 518, 518, 3) and geometry.confidence.shape == (5, 518, 518)
    assert geometry.K.shape == (5, 3, 3) and geometry.cam_T_world.shape == (5, 4, 4)
    assert own_pixel_error(geometry.points, geometry.cam_T_world, geometry.K).max() < 1e-2
    points, colors = to_scene(geometry, scene_poses, quantile=0.0)
    per_frame = points.reshape(5, -1, 3)
    for i, pose in enumerate(scene_poses):  # every frame's points sit at its depth in its scene camera
        z = per_frame[i] @ pose[:3, :3].T[:, 2] + pose[2, 3]
        np.testing.assert_allclose(z, depth_scene[i], rtol=1e-4)
    assert colors.shape == points.shape
    kept, _ = to_scene(geometry, scene_poses, quantile=0.5)
    assert abs(len(kept) / len(points) - 0.5) < 0.01  # the confidence quantile drops the rest


def _intrinsics(fx: float, fy: float) -> np.ndarray:
    return np.array([[fx, 0.0, 259.0], [0.0, fy, 196.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(("focals", "expected"), [
    ([(400.0, 400.0)], [False]),
    ([(np.inf, 844.3)], [True]),  # a zero field of view through VGGT's ReLU: what random weights gave
    ([(400.0, np.nan), (400.0, 0.0), (-5.0, 400.0), (300.0, 310.0)], [True, True, True, False]),
], ids=["usable", "infinite-fx", "nan-zero-negative-then-usable"])
def test_vggts_degenerate_frames_are_those_without_a_finite_positive_focal(focals: list, expected: list) -> None:
    from genfab.stages.worldexplorer.vggt_adapter import degenerate_frames

    K = np.stack([_intrinsics(fx, fy) for fx, fy in focals])
    assert degenerate_frames(K).tolist() == expected


def test_a_samples_own_expansion_fields_replace_the_blocks_within_its_bounds() -> None:
    from genfab.api.scenejob import ExpansionConfig
    from genfab.stages.runtime import SampleError
    from genfab.stages.worldexplorer.expansion_stage import sample_expansion

    base = ExpansionConfig(num_frames=120, trajectory="outward", iterations=150)
    assert sample_expansion(base, None, "s") is base
    mine = sample_expansion(base, {"trajectory": "orbit", "num_frames": 24}, "s")
    assert (mine.trajectory, mine.num_frames, mine.iterations, mine.distance) == ("orbit", 24, 150, base.distance)
    with pytest.raises(SampleError, match="numFrames"):
        sample_expansion(base, {"num_frames": 3}, "photorealistic/index_0001")
    with pytest.raises(SampleError, match="trajectory"):
        sample_expansion(base, {"trajectory": "spiral"}, "photorealistic/index_0001")


@pytest.mark.parametrize(("generator", "vggt_geometry", "expected"), [
    ("seva", True, False),  # the lab's way: SEVA's frames, VGGT's points; no scene to grow
    ("seva", False, True),  # the scene's own geometry: every SEVA frame aligned and added
    ("flux-fill", True, True),  # the walk decides which frames need a fill
    ("flux-fill", False, True),
])
def test_the_expansion_walks_its_scene_only_where_something_reads_it(generator: str, vggt_geometry: bool,
                                                                      expected: bool) -> None:
    assert walks(generator, vggt_geometry) is expected
