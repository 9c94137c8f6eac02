"""The lab's vistadream pure geometry: the canvas, cameras and masks, trajectories, pose selection and depth
alignment (table tests, numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genfab.stages.scene import align, geometry
from genfab.stages.vistadream import canvas, selection, trajectory


@pytest.mark.parametrize(("size", "max_res", "expected"), [
    ((1024, 768), 1024, (1024, 768)),
    ((4000, 3000), 1024, (1024, 768)),
    ((3000, 4000), 1024, (768, 1024)),
    ((1001, 667), 1024, (992, 672)),      # odd sizes snap to the nearest multiples of 32
    ((1023, 17), 1024, (1024, 32)),       # a side never drops below 32
    ((2000, 1010), 512, (512, 256)),
    ((100, 60), 1024, (96, 64)),          # small inputs are not upscaled beyond the next 32
])
def test_fit_size(size: tuple[int, int], max_res: int, expected: tuple[int, int]) -> None:
    w, h = canvas.fit_size(*size, max_res)
    assert (w, h) == expected and w % 32 == 0 and h % 32 == 0 and max(w, h) <= max_res


def test_process_image_resizes_to_the_fitted_size() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (667, 1001, 3), dtype=np.uint8)
    assert canvas.process_image(rgb, 1024).shape == (672, 992, 3)
    same = np.zeros((64, 96, 3), np.uint8)
    assert canvas.process_image(same, 1024) is same


@pytest.mark.parametrize(("size", "expansion"), [((1024, 768), 0.2), ((992, 672), 0.2), ((96, 64), 0.5),
                                                  ((544, 992), 0.05), ((1024, 1024), 1.0)])
def test_border_canvas_centres_the_input_on_a_32_aligned_canvas(size: tuple[int, int], expansion: float) -> None:
    w, h = size
    rgb = np.full((h, w, 3), 200, np.uint8)
    image, mask, c = canvas.add_border_and_mask(rgb, expansion)
    assert image.shape[:2] == mask.shape == (c.height, c.width)
    assert c.width % 32 == 0 and c.height % 32 == 0
    assert c.width >= w + 2 * int(w * expansion / 2) and c.height >= h + 2 * int(h * expansion / 2)
    assert abs(c.left - (c.width - w - c.left)) <= 1 and abs(c.top - (c.height - h - c.top)) <= 1
    assert (c.crop(image) == 200).all() and not c.crop(mask).any()  # the input is kept, never painted
    assert mask.sum() == c.width * c.height - w * h and (image[mask] == 0).all()


def test_intrinsics_and_principal_point_recentring() -> None:
    K = geometry.intrinsics_from_fov(1280, 960, 90.0)
    assert K[0, 0] == pytest.approx(640.0) and K[0, 0] == K[1, 1] and (K[0, 2], K[1, 2]) == (640.0, 480.0)
    c = canvas.border_canvas(1024, 768, 0.2)
    inner = geometry.crop_intrinsics(geometry.intrinsics_from_fov(c.width, c.height, 60.0), c.left, c.top)
    assert (inner[0, 2], inner[1, 2]) == pytest.approx((512.0, 384.0), abs=0.5)  # the input's centre
    depth = np.full((c.height, c.width), 3.0)
    outer = geometry.intrinsics_from_fov(c.width, c.height, 60.0)
    # The same pixel back-projects to the same point through either frame.
    full = geometry.backproject(depth, outer)[c.rows, c.cols]
    crop = geometry.backproject(c.crop(depth), inner)
    np.testing.assert_allclose(full, crop)
    with pytest.raises(ValueError, match="field of view"):
        geometry.intrinsics_from_fov(10, 10, 180.0)


def test_backproject_and_project_round_trip() -> None:
    K = geometry.intrinsics_from_focal(64, 48, 50.0)
    depth = np.random.default_rng(1).uniform(1.0, 5.0, (48, 64))
    pose = trajectory.look_at(np.array([0.3, -0.2, 0.5]), np.array([0.0, 0.0, 3.0]))
    points = geometry.world_points(depth, K, pose, np.ones_like(depth, bool))
    uv, z = geometry.project(points, K, pose)
    u, v = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], axis=1), atol=1e-9)
    np.testing.assert_allclose(z, depth.ravel())


def test_depth_sanitising_confidence_and_edges() -> None:
    raw = np.array([[1.0, np.nan, np.inf], [-2.0, 2.0, -np.inf]])
    np.testing.assert_array_equal(geometry.sanitize_depth(raw), [[1, 0, 0], [0, 2, 0]])
    depth = np.full((40, 40), 2.0, np.float32)
    depth[:, 20:] = 6.0  # a step: the silhouette of a near object
    depth[5, 5] = 0.0
    conf = np.full_like(depth, 0.9)
    conf[0, 0] = 0.1
    mask = geometry.confidence_mask(depth, conf)
    assert not mask[5, 5] and not mask[0, 0] and mask[10, 10]
    edges = geometry.depth_edges_mask(depth)
    assert edges[:, 19:21].all() and not edges[10:, :17].any() and not edges[:, 23:].any()
    assert edges[4, 5] and edges[5, 4]  # next to a pixel without depth
    ramp = np.tile(np.linspace(50.0, 60.0, 40), (40, 1))  # a slanted far wall: no edge anywhere
    assert not geometry.depth_edges_mask(ramp).any()


@pytest.mark.parametrize("kind", ["spiral", "wobble", "forward", "rotate"])
def test_trajectories(kind: trajectory.TrajType) -> None:
    poses = trajectory.trajectory(kind, 40, extent=2.0, forward_ratio=0.3, backward_ratio=0.4)
    assert poses.shape == (40, 4, 4) and np.isfinite(poses).all()
    np.testing.assert_allclose(poses[0], np.eye(4))
    rotations = poses[:, :3, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (40, 3, 3)),
                               atol=1e-9)
    centres = np.linalg.inv(poses)[:, :3, 3]
    assert np.abs(centres).max() <= 2.0 * max(trajectory.SWAY, 0.4) + 1e-9  # bounded by the extent
    forward_axes = np.linalg.inv(poses)[:, :3, 2]
    assert (forward_axes[:, 2] > 0.5).all()  # every camera still faces the scene
    if kind == "forward":
        assert np.abs(centres[:, :2]).max() < 1e-12 and centres[:, 2].max() > 0 > centres[:, 2].min()
    elif kind == "rotate":
        assert np.abs(centres).max() < 1e-12 and forward_axes[:, 0].max() > 0.3
    else:
        assert np.abs(centres[:, 0]).max() > 0.1 and np.abs(centres[:, 1]).max() < np.abs(centres[:, 0]).max()


def test_scene_extent_uses_the_percentile_range() -> None:
    depth = np.full((50, 50), 4.0)
    depth[0, 0] = 1000.0  # one far outlier (sky) must not change the scale
    K = geometry.intrinsics_from_focal(50, 50, 50.0)
    base = trajectory.scene_extent(np.full((50, 50), 4.0), K, 60.0)
    assert trajectory.scene_extent(depth, K, 60.0) == pytest.approx(base, rel=0.05)
    assert trajectory.scene_extent(np.zeros((5, 5)), K, 60.0) == 1.0


NAN = math.nan
POLICY = selection.Policy(min_ratio=0.05, max_ratio=0.25, adjacent_exclusion=1)


@pytest.mark.parametrize(("ratios", "selected", "policy", "index", "fallback", "says"), [
    ([0.1, 0.2, 0.3, 0.22], [], POLICY, 3, False, None),                              # largest in band
    ([0.01, 0.02, 0.03], [], POLICY, None, False, "holes too small (max 0.030 < min 0.050)"),
    ([0.4, 0.5, 0.6], [], POLICY, None, False, "holes too large (min 0.400 > max 0.250)"),
    ([0.01, 0.2, 0.01, 0.3], [0], POLICY, None, False, "blocked by adjacency exclusion (1 in range"),
    ([0.01, 0.2, 0.01, 0.3], [0], selection.Policy(adjacent_exclusion=0), 1, False, None),
    ([0.01, 0.03, 0.04], [], selection.Policy(fallback="closest"), 2, True, "holes too small"),
    ([0.0, 0.6, 0.27], [], selection.Policy(fallback="closest"), 2, True, "no candidate in"),  # nearest the band
    ([NAN, NAN], [], POLICY, None, False, "no candidate pose could be rendered"),
    ([0.01, 0.3], [], POLICY, None, False, "no candidate in [0.050, 0.250] (1 below, 1 above)"),
])
def test_selection_policy(ratios: list[float], selected: list[int], policy: selection.Policy, index: int | None,
                          fallback: bool, says: str | None) -> None:
    choice = selection.select_next(ratios, selected, policy)
    assert (choice.index, choice.fallback) == (index, fallback)
    if says is not None:
        assert choice.diagnosis is not None and says in selection.hint(choice.diagnosis, policy)


def test_diagnosis_counts_and_summary() -> None:
    choice = selection.select_next([0.01, 0.02, 0.2, 0.04, 0.5], [2], POLICY)
    d = choice.diagnosis
    assert d is not None and choice.index is None
    assert (d.valid, d.below_min, d.in_range, d.above_max, d.in_range_without_adj) == (5, 3, 0, 1, 1)
    assert d.top[:2] == ((4, 0.5), (2, 0.2))
    summary = selection.CoarseSummary(attempts=10, scene_frames=2, gaussian_frames=2, total_splats=1234,
                                      diagnosis=d, hint=selection.hint(d, POLICY))
    assert summary.status().startswith("selected 0/10 extra frames: blocked by adjacency exclusion")
    lines = summary.lines()
    assert lines[0] == "[COARSE] Summary: selected_extra_frames=0/10"
    assert any(line.startswith("[COARSE][DIAG] counts(valid): below_min=3 in_range=0 above_max=1 "
                               "(in_range_without_adj=1)") for line in lines)
    doc = summary.to_dict()
    assert doc["selected_extra_frames"] == 0 and doc["diagnosis"]["top_k"][0] == {"dense_pose_index": 4,
                                                                                   "inpaint_ratio": 0.5}
    added = selection.CoarseSummary(attempts=3, frames=[selection.AddedFrame(7, 0.2, 900, 800, 790)])
    assert added.status() == "selected 1/3 extra frames, 790 splats added"
    assert "dense_pose_index=7 inpaint_ratio=0.2000 inpaint_pixels=900" in added.lines()[1]


def plane(h: int = 64, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (2.0 + 0.02 * xx + 0.01 * yy).astype(np.float32)


def test_affine_fit_recovers_scale_and_shift_on_a_plane() -> None:
    truth = plane()
    known = np.ones_like(truth, bool)
    known[:, 60:] = False
    # An exact affine relation is recovered to float precision; with 1 % multiplicative noise the
    # estimate stays within 2 % (the noise averages over ~3800 pixels; 2 % leaves a wide margin).
    assert align.affine_fit((truth - 0.5) / 2.0, truth, known) == pytest.approx((2.0, 0.5), abs=1e-5)
    noisy = (truth - 0.5) / 2.0 * np.random.default_rng(3).normal(1.0, 0.01, truth.shape).astype(np.float32)
    scale, shift = align.affine_fit(noisy, truth, known)
    assert scale == pytest.approx(2.0, rel=0.02) and shift == pytest.approx(0.5, abs=0.1)
    assert align.affine_fit(truth, truth, np.zeros_like(known)) == (1.0, 0.0)  # too few samples


def test_alignment_keeps_known_depth_and_meets_it_without_a_seam() -> None:
    truth = plane()
    hole = np.zeros_like(truth, bool)
    hole[:, 60:] = True
    rendered = np.where(hole, 0.0, truth).astype(np.float32)
    yy = np.mgrid[0:64, 0:96][0]
    predicted = ((truth - 0.5) / 2.0 + 0.05 * np.sin(yy / 10.0)).astype(np.float32)  # not exactly affine
    aligned = align.align_depth(rendered, predicted, hole)
    np.testing.assert_array_equal(aligned[~hole], truth[~hole])
    # At the border the new depth continues the known surface: its step there differs from the
    # plane's own per-pixel slope (0.02) by less than that slope, and by 4x less than the step the
    # affine fit alone leaves (the predicted depth has a non-affine error of up to 0.1 there).
    step = np.abs(np.abs(aligned[:, 60] - aligned[:, 59]) - 0.02).max()
    scale, shift = align.affine_fit(predicted, rendered, ~hole)
    affine_step = np.abs(np.abs(predicted[:, 60] * scale + shift - truth[:, 59]) - 0.02).max()
    assert step < 0.02 and step < affine_step / 4
    assert np.abs(aligned[hole] - truth[hole]).mean() < 0.05


def test_frames_round_trip_and_refuse_foreign_files() -> None:
    from genfab.stages.scene import frames as fr

    rgb = np.random.default_rng(4).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    image, border, c = canvas.add_border_and_mask(rgb, 0.4)
    depth = np.full(border.shape, 3.0, np.float32)
    depth[:, : c.width // 2] = 1.0  # a depth step: edge pixels never become splats
    depth[0, 0] = np.nan
    K = geometry.intrinsics_from_fov(c.width, c.height, 70.0)
    inner, outer = canvas.outpaint_frames(image, border, c, depth, K)
    assert inner.rgb.shape == rgb.shape and (inner.rgb == rgb).all() and inner.inpaint.all()
    assert not (outer.inpaint_wo_edge & ~border).any() and not outer.dpt_conf_mask[0, 0]
    edges = geometry.depth_edges_mask(geometry.sanitize_depth(depth))
    assert not (outer.inpaint_wo_edge & edges).any() and not (inner.inpaint_wo_edge & c.crop(edges)).any()
    back = fr.frames_from_npz(fr.frames_to_npz([inner, outer]))
    for a, b in zip([inner, outer], back, strict=True):
        assert a.name == b.name
        for key in fr.FIELDS:  # the pose goes through an inverse each way: equal to rounding
            check = np.testing.assert_allclose if key == "cam_T_world" else np.testing.assert_array_equal
            check(getattr(a, key), getattr(b, key))
    with pytest.raises(ValueError, match=r"not a frames\.npz"):
        fr.frames_from_npz(b"PK\x03\x04 not really")
    bad = fr.Frame("x", rgb, np.zeros((2, 2), np.float32), inner.inpaint, inner.inpaint, inner.inpaint, K, np.eye(4))
    with pytest.raises(ValueError, match="dpt must be"):
        fr.frames_to_npz([bad])


def test_frames_npz_is_seed_001s_contract_read_with_numpy_alone() -> None:
    """Written by genfab, read the way the lab's vistadream code reads its frames: rgb float32 in [0, 1],
    bool masks, `K_33`, and `cam_T_world` camera-to-world, so a pixel at its depth goes through
    `K_33` and `cam_T_world` to the world point genfab's scene puts a Gaussian at."""
    import io

    from genfab.stages.scene import frames as fr

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 4.0, (48, 64)).astype(np.float32)
    K = geometry.intrinsics_from_fov(64, 48, 60.0)
    (frame,) = fr.input_only_frames(rgb, depth, K)
    angle = 0.4  # a camera turned about y and moved: world-to-camera in memory
    w2c = np.eye(4)
    w2c[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    w2c[:3, 3] = [0.3, -0.2, 1.5]
    frame.cam_T_world = w2c
    with np.load(io.BytesIO(fr.frames_to_npz([frame])), allow_pickle=False) as npz:
        file = {key: npz[f"0/{key}"] for key in fr.FIELDS}
        assert [str(n) for n in npz["names"]] == ["input"]
    assert file["rgb"].dtype == np.float32 and file["rgb"].min() >= 0.0 and file["rgb"].max() <= 1.0
    np.testing.assert_allclose(file["rgb"] * 255.0, rgb, atol=1e-3)
    assert all(file[k].dtype == bool for k in ("inpaint", "inpaint_wo_edge", "dpt_conf_mask"))
    assert file["dpt"].dtype == np.float32 and file["intrinsic"].shape == (3, 3)
    c2w = file["cam_T_world"]
    np.testing.assert_allclose(c2w[:3, 3], -w2c[:3, :3].T @ w2c[:3, 3])  # the camera's centre in the world
    v, u = 17, 40  # a pixel; its centre at its depth, through K_33 and cam_T_world
    ray = np.linalg.inv(file["intrinsic"]) @ np.array([u + 0.5, v + 0.5, 1.0])
    world = c2w @ np.append(ray * file["dpt"][v, u], 1.0)
    mask = np.zeros(depth.shape, bool)
    mask[v, u] = True
    np.testing.assert_allclose(world[:3], geometry.world_points(depth, K, w2c, mask)[0], atol=1e-9)
    older = io.BytesIO()  # a frames.npz genfab wrote before (uint8, world-to-camera) still reads: reuse keeps working
    np.savez_compressed(older, names=np.array(["input"]), **{f"0/{k}": getattr(frame, k) for k in fr.FIELDS})
    (again,) = fr.frames_from_npz(older.getvalue())
    assert (again.rgb == rgb).all() and np.array_equal(again.cam_T_world, w2c)


def test_candidate_views_grow_by_the_margin_on_the_flux_grid_and_render_counts() -> None:
    from genfab.stages.scene.frames import input_only_frames
    from genfab.stages.vistadream.coarse_stage import view_geometry
    from genfab.stages.vistadream.render_stage import render_count

    K = geometry.intrinsics_from_fov(128, 96, 60.0)
    (frame,) = input_only_frames(np.zeros((96, 128, 3), np.uint8), np.full((96, 128), 2.0, np.float32), K)
    K2, width, height = view_geometry(frame, 20)
    assert (width, height) == (160, 128)  # 128 + 20 and 96 + 20 (the margin once), up to FluxFill's 32-pixel grid
    assert (K2[0, 2], K2[1, 2]) == (K[0, 2] + 16, K[1, 2] + 16) and K2[0, 0] == K[0, 0]
    assert view_geometry(frame, 0)[1:] == (128, 96)
    assert view_geometry(frame, 32)[1:] == (160, 128)  # the lab's default margin: base + 32, on the grid already
    # the lab's `min(len(frames) * 25 if len(frames) > 2 else 150, 150)`
    assert [render_count(150, n) for n in (1, 2, 3, 5, 6, 10)] == [150, 150, 75, 125, 150, 150]
    assert [render_count(40, n) for n in (1, 3)] == [40, 40]


def test_the_input_frames_splats_ignore_the_confidence_as_the_labs_initialise_does() -> None:
    """A depth model that trusts no pixel (MoGe's mask all False): the outpaint frame adds no splat, the input
    frame one on every pixel off a depth edge (the lab's input frame: `inpaint_wo_edge = ~edges`), its
    confidence kept as `dpt_conf_mask`; `stage: no-outpaint`'s one frame likewise."""
    from genfab.stages.scene import frames as fr

    rgb = np.random.default_rng(6).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    image, border, c = canvas.add_border_and_mask(rgb, 0.4)
    depth = np.full(border.shape, 2.0, np.float32)
    depth[:, : c.width // 2] = 1.0
    untrusted = np.zeros(border.shape, np.float32)
    K = geometry.intrinsics_from_fov(c.width, c.height, 60.0)
    inner, outer = canvas.outpaint_frames(image, border, c, depth, K, untrusted)
    edges = c.crop(geometry.depth_edges_mask(depth))
    assert not outer.inpaint_wo_edge.any() and not inner.dpt_conf_mask.any()
    assert (inner.inpaint_wo_edge == ~edges).all() and inner.inpaint_wo_edge.any()
    (only,) = fr.input_only_frames(rgb, np.full(rgb.shape[:2], 2.0, np.float32), K, np.zeros(rgb.shape[:2]))
    assert only.inpaint_wo_edge.all() and not only.dpt_conf_mask.any()
