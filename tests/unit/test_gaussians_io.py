"""The gaussians stage's CPU parts: loaders, camera conventions, PLY, procedural scenes, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genfab.stages.gaussians.cameras import (
    Camera,
    SceneData,
    convert_c2w,
    intrinsics,
    look_at,
    qvec_to_rotmat,
    rotmat_to_qvec,
)
from genfab.stages.gaussians.loaders import (
    SceneFormatError,
    load_colmap,
    load_scene,
    load_transforms,
    write_colmap,
    write_transforms,
)
from genfab.stages.gaussians.ply import Splats, non_finite_rows, property_names, read_ply, write_ply
from genfab.stages.gaussians.stage import ply_key, write_video
from tests.helpers import stage_contract


def known_scene(n: int = 6) -> SceneData:
    """Cameras on a ring looking at the origin: a known synthetic rig."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([3 * np.cos(a), 3 * np.sin(a), 1.0 + 0.1 * i])
        cams.append(Camera(f"v{i:02d}", intrinsics(100.0 + i, 101.0 + i, 32.0, 24.0), look_at(eye, np.zeros(3)), 64,
                           48, image=f"images/v{i:02d}.png"))
    rng = np.random.default_rng(0)
    return SceneData(cams, rng.uniform(-1, 1, (50, 3)), rng.integers(0, 256, (50, 3)) / 255.0)


def project(cam: Camera, point: np.ndarray) -> np.ndarray:
    p = cam.w2c @ np.append(point, 1.0)
    uv = cam.K @ p[:3]
    return uv[:2] / uv[2]


def test_look_at_is_opencv_the_target_projects_to_the_principal_point() -> None:
    for cam in known_scene().cameras:
        assert np.allclose(project(cam, np.zeros(3)), cam.K[:2, 2], atol=1e-9)
        assert (cam.w2c @ np.array([0, 0, 0, 1.0]))[2] > 0  # in front of the camera (+Z forward)
        above = project(cam, np.array([0.0, 0.0, 0.5]))
        assert above[1] < cam.K[1, 2]  # world up is image up (OpenCV +Y down)


def test_opengl_opencv_round_trip_and_axes() -> None:
    c2w = known_scene().cameras[1].c2w
    gl = convert_c2w(c2w, "opencv", "opengl")
    assert np.allclose(gl[:3, 1], -c2w[:3, 1]) and np.allclose(gl[:3, 2], -c2w[:3, 2])
    assert np.allclose(gl[:3, 3], c2w[:3, 3])
    assert np.allclose(convert_c2w(gl, "opengl", "opencv"), c2w)
    assert np.allclose(convert_c2w(c2w, "opencv", "opencv"), c2w)


def test_colmap_quaternions_round_trip() -> None:
    for cam in known_scene().cameras:
        R = cam.w2c[:3, :3]
        q = rotmat_to_qvec(R)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1)
        assert np.allclose(qvec_to_rotmat(q), R, atol=1e-12)


def assert_same_cameras(a: SceneData, b: SceneData) -> None:
    assert [c.name for c in a.cameras] == [c.name for c in b.cameras]
    for x, y in zip(a.cameras, b.cameras, strict=True):
        assert np.allclose(x.c2w, y.c2w, atol=1e-9) and np.allclose(x.K, y.K)
        assert (x.width, x.height) == (y.width, y.height)


def test_transforms_json_round_trip_in_both_conventions(tmp_path: Path) -> None:
    scene = known_scene()
    write_transforms(tmp_path / "transforms.json", scene)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    # The file holds OpenGL poses: camera -Z looks at the origin.
    gl = np.asarray(meta["frames"][0]["transform_matrix"])
    assert np.dot(-gl[:3, 2], -gl[:3, 3]) > 0
    assert_same_cameras(scene, load_scene(tmp_path))
    write_transforms(tmp_path / "transforms.json", scene, convention="opencv")
    assert_same_cameras(scene, load_transforms(tmp_path / "transforms.json", "opencv"))


def test_blender_camera_angle_x(tmp_path: Path) -> None:
    (tmp_path / "transforms.json").write_text(json.dumps({
        "camera_angle_x": 2 * np.arctan(0.5), "w": 64, "h": 48,
        "frames": [{"file_path": "./r_0", "transform_matrix": np.eye(4).tolist()}]}))
    cam = load_scene(tmp_path).cameras[0]
    assert np.isclose(cam.K[0, 0], 64) and cam.image == "./r_0.png" and np.allclose(cam.K[:2, 2], [32, 24])


@pytest.mark.parametrize("binary", [True, False])
def test_colmap_round_trip_text_and_binary(tmp_path: Path, binary: bool) -> None:
    scene = known_scene()
    write_colmap(tmp_path / "sparse" / "0", scene, binary=binary)
    loaded = load_scene(tmp_path)
    assert loaded.meta["format"] == ("colmap-bin" if binary else "colmap-txt")
    assert_same_cameras(scene, loaded)
    assert loaded.points is not None and np.allclose(loaded.points, scene.points)
    assert loaded.colors is not None and np.allclose(loaded.colors, np.round(scene.colors * 255) / 255)
    assert loaded.cameras[0].image == "images/v00.png"


@pytest.mark.parametrize(("write", "message"), [
    (lambda d: (d / "transforms.json").write_text("{"), "not readable JSON"),
    (lambda d: (d / "transforms.json").write_text('{"frames": []}'), "frames must be a non-empty list"),
    (lambda d: (d / "transforms.json").write_text(json.dumps({"w": 4, "h": 4, "fl_x": 2, "k1": 0.1, "frames": [
        {"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]})), "distortion k1=0.1 is not supported"),
    (lambda d: (d / "transforms.json").write_text(json.dumps({"w": 4, "h": 4, "frames": [
        {"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]})), "needs fl_x (and fl_y) or camera_angle_x"),
    (lambda d: (d / "transforms.json").write_text(json.dumps({"w": 4, "h": 4, "fl_x": 2, "frames": [
        {"file_path": "a.png", "transform_matrix": [[1, 0], [0, 1]]}]})), "finite 4x4 matrix"),
    (lambda d: None, "no transforms.json and no COLMAP model"),
])
def test_bad_scene_folders_name_the_problem(tmp_path: Path, write, message: str) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path)
    with pytest.raises(SceneFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_scene(tmp_path)


def test_distorted_colmap_cameras_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "sparse" / "0"
    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text("1 OPENCV 64 48 100 100 32 24 0.1 0 0 0\n")
    (folder / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(SceneFormatError, match="image_undistorter"):
        load_colmap(folder, tmp_path)


def random_splats(n: int = 40, degree: int = 3, seed: int = 0) -> Splats:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    f = np.float32
    return Splats(rng.normal(size=(n, 3)).astype(f), rng.normal(size=(n, 3)).astype(f),
                  rng.normal(size=(n, 4)).astype(f), rng.normal(size=n).astype(f),
                  rng.normal(size=(n, 1, 3)).astype(f), rng.normal(size=(n, k - 1, 3)).astype(f))


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_write_read_equality_and_viewer_property_order(tmp_path: Path, degree: int) -> None:
    from plyfile import PlyData

    splats = random_splats(degree=degree)
    assert write_ply(tmp_path / "gf.ply", splats) == 0
    back = read_ply(tmp_path / "gf.ply")
    for name in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        assert np.array_equal(getattr(back, name), getattr(splats, name)), name
    assert back.sh_degree == degree
    ply = PlyData.read(str(tmp_path / "gf.ply"))
    names = [p.name for p in ply["vertex"].properties]
    rest = 3 * ((degree + 1) ** 2 - 1)
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
                     *[f"f_rest_{i}" for i in range(rest)], "opacity", "scale_0", "scale_1", "scale_2",
                     "rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == property_names(rest // 3)
    assert all(p.val_dtype in ("f4", "float32", "float") for p in ply["vertex"].properties)
    assert not ply.text and ply.byte_order == "<"
    header = (tmp_path / "gf.ply").read_bytes().split(b"end_header")[0]
    assert b"format binary_little_endian 1.0" in header and b"element vertex 40" in header
    if degree:  # f_rest is channel-major: all red coefficients first
        assert np.isclose(ply["vertex"]["f_rest_0"][0], splats.shN[0, 0, 0])
        assert np.isclose(ply["vertex"]["f_rest_1"][0], splats.shN[0, 1, 0])
        assert np.isclose(ply["vertex"][f"f_rest_{rest // 3}"][0], splats.shN[0, 0, 1])


def test_a_ply_from_another_tool_reads_the_same_whatever_its_property_types_and_order(tmp_path: Path) -> None:
    """The packed-float32 fast path (genfab's own PLYs) and the one for any other layout give the same
    splats: here the properties shuffled, the positions float64 and an extra uchar property."""
    from plyfile import PlyData, PlyElement

    splats = random_splats(degree=1)
    write_ply(tmp_path / "gf.ply", splats)
    ours = PlyData.read(str(tmp_path / "gf.ply"))["vertex"].data
    names = list(reversed(ours.dtype.names or ()))
    dtype = [(n, "f8" if n in ("x", "y", "z") else "f4") for n in names] + [("red", "u1")]
    other = np.zeros(len(ours), dtype=dtype)
    for n in names:
        other[n] = ours[n]
    PlyData([PlyElement.describe(other, "vertex")]).write(str(tmp_path / "other.ply"))
    back = read_ply(tmp_path / "other.ply")
    for name in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        assert np.array_equal(getattr(back, name), getattr(splats, name)), name


def test_ply_drops_non_finite_gaussians(tmp_path: Path) -> None:
    splats = random_splats()
    splats.means[3, 0] = np.nan
    splats.scales[7, 1] = np.inf
    splats.shN[3, 0, 2] = np.nan  # the same Gaussian twice counts once
    assert non_finite_rows(splats) == 2  # what a stage that writes its PLY in the background reports
    assert write_ply(tmp_path / "gf.ply", splats) == 2
    assert len(read_ply(tmp_path / "gf.ply")) == 38


@pytest.mark.parametrize(("value", "key"), [("", "gf.ply"), ("gf.ply", "gf.ply"), ("export", "export/gf.ply"),
                                            ("export/", "export/gf.ply"), ("out/scene.PLY", "out/scene.PLY")])
def test_seed_001_ply_path_maps_to_the_layout(value: str, key: str) -> None:
    assert ply_key(value) == key


def test_procedural_scenes_are_deterministic_and_load_like_captures(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    del torch
    from genfab.stages.gaussians.procedural import generate, write_scene

    a = generate(3, n_views=4, width=32, height=24, n_points=300)
    b = generate(3, n_views=4, width=32, height=24, n_points=300)
    assert all(np.array_equal(a.images[k], b.images[k]) for k in a.images)
    assert np.array_equal(a.points, b.points)
    assert not np.array_equal(a.images["view_000"], generate(4, n_views=4, width=32, height=24,
                                                              n_points=300).images["view_000"])
    for fmt in ("nerfstudio", "colmap", "colmap-text"):
        folder = write_scene(a, tmp_path / fmt, fmt)
        loaded = load_scene(folder)
        assert_same_cameras(a.scene_data(), loaded)
        assert (folder / loaded.cameras[0].image).is_file()  # type: ignore[operator]
        # the initial points travel too (COLMAP points3D, Nerfstudio's sparse_pc.ply)
        assert loaded.points is not None and loaded.colors is not None
        np.testing.assert_allclose(loaded.points, a.points, atol=1e-5)
        np.testing.assert_allclose(loaded.colors, a.colors, atol=0.5 / 255 + 1e-6)


def test_a_procedural_scenes_background_is_what_rays_that_meet_nothing_see() -> None:
    pytest.importorskip("torch")
    from genfab.stages.gaussians.procedural import BACKGROUND, generate

    white = generate(3, n_views=2, width=32, height=24, n_points=50)
    black = generate(3, n_views=2, width=32, height=24, n_points=50, background=(0.0, 0.0, 0.0))
    assert white.background == BACKGROUND == (1.0, 1.0, 1.0)
    for name, w in white.images.items():
        sky = (w == 1.0).all(-1)  # pixels of the background alone (no geometry in their supersamples)
        b = black.images[name]
        assert sky.any() and (b[sky] == 0.0).all()
        # geometry is the same; a pixel at an outline mixes in its share of the background
        assert (w >= b).all() and (w == b).all(-1).sum() > 0.2 * sky.size
    assert np.array_equal(white.points, black.points)


def test_config_validation_errors() -> None:
    from pydantic import ValidationError

    from genfab.api.gaussians import GaussiansConfig

    for bad, field in (({"sparseGrad": True}, "sparseGrad"), ({"strategy": "mcmc", "capMax": 1000,
                                                              "initNumPoints": 5000}, "capMax"),
                       ({"background": [1, 1]}, "background"), ({"background": [1, 2, 0]}, "background"),
                       ({"plyPath": "../x.ply"}, "plyPath"), ({"packing": "threads"}, "packing"),
                       ({"steps": 0}, "steps")):
        with pytest.raises(ValidationError) as info:
            GaussiansConfig.model_validate(bad)
        assert field in str(info.value)
    assert GaussiansConfig.model_validate({"sparseGrad": True, "packed": True}).sparse_grad


@pytest.mark.parametrize(("ply_name", "key"), [("gf.ply", "gf.ply"), ("scene.ply", "scene.ply"),
                                               ("coarse", "coarse/gf.ply"), ("export/final.ply", "export/final.ply")])
def test_vistadream_ply_name_follows_the_seed_rule(ply_name: str, key: str) -> None:
    from genfab.api.scenejob import VistaDreamConfig

    config = VistaDreamConfig.model_validate({"plyName": ply_name})
    assert ply_key(config.ply_name) == key


@pytest.mark.parametrize("bad", ["../x.ply", "a/../b", "/abs.ply", "a b.ply"])
def test_vistadream_ply_name_stays_in_the_sample_folder(bad: str) -> None:
    from pydantic import ValidationError

    from genfab.api.scenejob import VistaDreamConfig

    with pytest.raises(ValidationError, match="plyName"):
        VistaDreamConfig.model_validate({"plyName": bad})


def test_stage_finds_the_scene_folder_and_checks_images(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from PIL import Image

    from genfab.stages.gaussians.procedural import generate, write_scene
    from genfab.stages.gaussians.stage import find_scene_dir, read_images
    from genfab.stages.runtime import SampleError

    scene = generate(2, n_views=3, width=16, height=12, n_points=50)
    write_scene(scene, tmp_path / "photorealistic" / "index_0000" / "scenes" / "img2trajvid", "colmap")
    found = find_scene_dir(tmp_path / "photorealistic")
    assert found.name == "img2trajvid"
    loaded = load_scene(found)
    images = read_images(found, loaded.cameras)
    assert images["view_000"].shape == (12, 16, 3) and images["view_000"].dtype == np.uint8
    Image.new("RGB", (8, 8)).save(found / "images" / "view_001.png")
    with pytest.raises(SampleError, match="is 8x8, the camera says 16x12"):
        read_images(found, loaded.cameras)
    with pytest.raises(SampleError, match=r"no transforms\.json or COLMAP model"):
        find_scene_dir(tmp_path / "photorealistic" / "index_0000" / "scenes" / "img2trajvid" / "images")


def test_train_settings_read_the_resource_config() -> None:
    pytest.importorskip("torch")
    from genfab.api.gaussians import GaussiansConfig
    from genfab.stages.gaussians.core import TrainSettings

    cfg = GaussiansConfig.model_validate({"steps": 7000, "strategy": "mcmc", "capMax": 200000, "shDegree": 2,
                                          "packed": True, "sparseGrad": True, "background": [1, 1, 1],
                                          "scenesPerPod": 4, "plyPath": "export/"}).to_yaml_dict()
    s = TrainSettings.of(GaussiansConfig.model_validate(cfg))
    assert (s.steps, s.strategy, s.cap_max, s.sh_degree, s.packed, s.sparse_grad) == (7000, "mcmc", 200000, 2,
                                                                                       True, True)
    assert s.background == [1.0, 1.0, 1.0]
    assert s.means_lr == 1.6e-4  # what users cannot set comes from the trainer's declaration
    assert s.schedule() == {"refine_start_iter": 116, "refine_stop_iter": 5833, "refine_every": 23}
    default = TrainSettings(steps=30_000).schedule()
    assert default == {"refine_start_iter": 500, "refine_stop_iter": 15_000, "reset_every": 3000, "refine_every": 100}


@pytest.mark.parametrize(("steps", "interval", "expected"), [
    (30_000, 1000, 1000),  # gsplat's reference schedule
    (7000, 1000, 233),  # simple_trainer --steps_scaler 7000/30000: int(1000 * 0.2333)
    (3000, 1000, 100),
    (7000, 300, 70),
    (10, 1000, 1),  # never 0
])
def test_sh_interval_scales_with_steps_as_gsplats_steps_scaler(steps: int, interval: int, expected: int) -> None:
    pytest.importorskip("torch")
    from genfab.stages.gaussians.core import TrainSettings

    assert TrainSettings(steps=steps, sh_degree_interval=interval).sh_interval() == expected


def test_initial_scales_are_simple_trainers_root_mean_square_of_three_neighbours() -> None:
    torch = pytest.importorskip("torch")
    from genfab.stages.gaussians.core import knn_scale

    # neighbours of the origin at 1, 2 and 3 (and a far point): RMS sqrt(14/3), not the mean 2
    points = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [50, 50, 50]])
    assert float(knn_scale(points)[0]) == pytest.approx((14 / 3) ** 0.5)
    generator = torch.Generator().manual_seed(0)
    cloud = torch.rand(500, 3, generator=generator)
    d = torch.cdist(cloud, cloud).topk(4, largest=False).values[:, 1:]
    torch.testing.assert_close(knn_scale(cloud), d.square().mean(-1).sqrt())


@pytest.mark.parametrize(("config", "message"), [
    ({"steps": 100, "scenesPerPod": 2, "packing": "sequential", "plyPath": "export/"}, "needs a CUDA GPU"),
    ({"packing": "streams"}, r"config\.gaussians\.packing: Input should be 'batched' or 'sequential'"),
    ({"sparseGrad": True}, "sparseGrad needs packed: true"),
])
def test_stage_setup_validates_the_whole_config_before_asking_for_a_gpu(
        tmp_path: Path, config: dict, message: str) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only refusal")
    from genfab.stages.gaussians.stage import GAUSSIANS, Gaussians
    from genfab.stages.runtime import BadInput, load_context
    from genfab.stages.runtime.loop import declared_settings, validated_settings

    env = stage_contract(tmp_path, "gaussians", family="scene", shardSize=2, inputUris=[f"file://{tmp_path}/in"],
                         pipeline="worldexplorer", outputLayout="{sample}/scenes/gaussians/",
                         config={"gaussians": config})
    ctx = load_context(env)
    held = Gaussians.__new__(Gaussians)  # what `load` makes, kept to look into after it raised
    with pytest.raises(BadInput, match=message):  # the runtime validates the whole config, then `load` runs
        held.__init__(validated_settings(ctx, declared_settings(ctx, GAUSSIANS.stage())), ctx)  # type: ignore[misc]
    if "CUDA" in message:  # everything before the GPU check was read
        assert (held.batch, held.packing, held.ply, ctx.sample_prefix("s1")) == (
            2, "sequential", "export/gf.ply", "s1/scenes/gaussians/")


def test_random_init_box_fits_the_rig() -> None:
    from genfab.stages.gaussians.cameras import OBJECT_BOUNDS, random_init_box, scene_scale
    from genfab.stages.gaussians.procedural import ring_cameras

    # an object-centric ring looking at (0, 0, 0.4): a cube around the object, inside the rig
    ring = ring_cameras(16, 64, 64, radius=4.5)
    center, half = random_init_box(ring, 3.0)
    np.testing.assert_allclose(center, [0, 0, 0.4], atol=0.05)
    dist = float(np.median([np.linalg.norm(c.center - center) for c in ring]))
    assert half == pytest.approx(OBJECT_BOUNDS * dist) and half < dist / 2
    assert random_init_box(ring, 0.1)[1] == pytest.approx(0.1 * scene_scale(ring))  # a smaller extent wins
    # inside-out (cameras at the middle looking outwards) and forward-facing rigs: gsplat's cube on the cameras
    K = intrinsics(50, 50, 32, 32)
    outward = [Camera(f"o{i}", K, look_at(np.array([0.1 * np.cos(a), 0.1 * np.sin(a), 0.0]),
                                           np.array([np.cos(a), np.sin(a), 0.0]) * 5), 64, 64)
               for i, a in enumerate(np.linspace(0, 2 * np.pi, 12, endpoint=False))]
    forward = [Camera(f"f{i}", K, look_at(np.array([i * 0.2, 0.0, 0.0]), np.array([i * 0.2, 10.0, 0.0])), 64, 64)
               for i in range(6)]
    for rig in (outward, forward):
        center, half = random_init_box(rig, 3.0)
        np.testing.assert_allclose(center, np.mean([c.center for c in rig], 0), atol=1e-9)
        assert half == pytest.approx(3.0 * scene_scale(rig))


def _decoded(path: Path) -> list[np.ndarray]:
    import cv2

    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame[..., ::-1])


def test_a_video_takes_uint8_frames_as_they_are_and_float_ones_in_0_1(tmp_path: Path) -> None:
    """The render stage hands its uint8 renders over without a float copy of each; both forms make the
    same video."""
    yy, xx = np.mgrid[0:48, 0:64]
    frames = [np.stack([xx * 4, yy * 5, np.full_like(xx, 40 * k)], -1).astype(np.uint8) for k in range(4)]
    assert write_video(tmp_path / "u8.mp4", frames)
    assert write_video(tmp_path / "f.mp4", [f / 255.0 for f in frames])
    as_uint8, as_float = _decoded(tmp_path / "u8.mp4"), _decoded(tmp_path / "f.mp4")
    assert len(as_uint8) == len(as_float) == 4
    for a, b, original in zip(as_uint8, as_float, frames, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
        assert np.abs(a.astype(int) - original.astype(int)).mean() < 6.0  # mp4v is lossy; the frame is there
