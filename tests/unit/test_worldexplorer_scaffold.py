"""worldexplorer's scaffold geometry: the eight cameras, and the in-between views' hole masks from
reprojecting the cardinal views' point clouds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genfab.stages.scene.geometry import intrinsics_from_fov
from genfab.stages.worldexplorer import scaffold_geometry as sg

SIZE = 192
FOV = 60.0
RADIUS = 5.0


def forward(view: int) -> np.ndarray:
    """The view's optical axis in world coordinates."""
    return np.linalg.inv(sg.cam_T_world(view))[:3, 2]


def test_the_eight_views_turn_right_by_45_degrees_from_view_000() -> None:
    assert [sg.view_name(v) for v in range(8)] == ["000", "001", "002", "003", "004", "005", "006", "007"]
    np.testing.assert_allclose(forward(0), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(forward(2), [1, 0, 0], atol=1e-12)  # +x is the image's right
    np.testing.assert_allclose(forward(1), [np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(forward(6), [-1, 0, 0], atol=1e-12)
    for view in range(8):
        pose = sg.cam_T_world(view)
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(pose[:3, 3], 0)  # one point: the panorama's centre
        np.testing.assert_allclose(pose[:3, :3][1], [0, 1, 0], atol=1e-12)  # no tilt, no roll


@pytest.mark.parametrize(("gap", "expected"), [(1, (0, 2)), (3, (2, 4)), (5, (4, 6)), (7, (6, 0))])
def test_each_gap_lies_between_its_two_cardinal_neighbours(gap: int, expected: tuple[int, int]) -> None:
    assert sg.neighbours(gap) == expected
    left, right = expected
    middle = forward(left) + forward(right)
    np.testing.assert_allclose(forward(gap), middle / np.linalg.norm(middle), atol=1e-12)


def test_cardinal_views_are_not_gaps_and_gap_prompts_join_the_neighbours() -> None:
    with pytest.raises(ValueError, match="in-between views are 001, 003, 005, 007, got 002"):
        sg.neighbours(2)
    with pytest.raises(ValueError, match="scaffold views are 0-7, got 8"):
        sg.view_name(8)
    prompts = {0: "kitchen of a farmhouse", 2: "office of a farmhouse", 4: "bedroom", 6: "living room"}
    assert sg.gap_prompt(prompts, 7) == "living room and kitchen of a farmhouse"


def rays(K: np.ndarray) -> np.ndarray:
    """Unit camera-frame ray of every pixel centre, (H, W, 3)."""
    u, v = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5)
    d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def colour(world_dirs: np.ndarray) -> np.ndarray:
    """A smooth colour per world direction: the same surface point looks the same from every view."""
    return np.clip(127.5 * (1.0 + world_dirs), 0, 255)


def sphere_view(view: int, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, depth, cam_T_world) of a sphere of radius RADIUS around the cameras seen from `view`."""
    d = rays(K)
    pose = sg.cam_T_world(view)
    world = d @ pose[:3, :3]  # camera ray -> world direction (rotation only)
    return colour(world).astype(np.uint8), (RADIUS * d[..., 2]).astype(np.float32), pose


def seen_by(view: int, world_dirs: np.ndarray, K: np.ndarray) -> np.ndarray:
    cam = world_dirs @ sg.cam_T_world(view)[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * cam[..., 0] / cam[..., 2] + K[0, 2]
        v = K[1, 1] * cam[..., 1] / cam[..., 2] + K[1, 2]
    return np.asarray((cam[..., 2] > 0) & (u >= 0) & (u < SIZE) & (v >= 0) & (v < SIZE))


@pytest.mark.parametrize("gap", [1, 7])
def test_reprojecting_the_neighbours_of_a_gap_gives_the_analytic_hole_mask(gap: int) -> None:
    K = intrinsics_from_fov(SIZE, SIZE, FOV)
    left, right = sg.neighbours(gap)
    out = sg.reproject([sphere_view(left, K), sphere_view(right, K)], K, sg.cam_T_world(gap), (SIZE, SIZE))

    world = rays(K) @ sg.cam_T_world(gap)[:3, :3]
    uncovered = ~(seen_by(left, world, K) | seen_by(right, world, K))
    expected = cv2.dilate(uncovered.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    # 60° views 45° apart leave a vertical band in the middle of the in-between view: the hole.
    assert 0.2 < expected.mean() < 0.6 and expected[:, SIZE // 2].all()
    # Within one pixel of the analytic boundary (a target pixel partly seen is covered by the source
    # pixel's sub-points though its centre's ray misses the source image).
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(expected.astype(np.uint8), kernel).astype(bool)
    outer = cv2.dilate(expected.astype(np.uint8), kernel).astype(bool)
    assert (out.hole | ~inner).all() and (~out.hole | outer).all()
    assert (out.hole != expected).mean() < 0.015
    seen = ~out.hole
    error = np.abs(out.rgb[seen].astype(float) - colour(world)[seen]).mean()
    assert error < 2.0, error  # the right surface point lands on each pixel
    np.testing.assert_allclose(out.depth[seen], RADIUS * rays(K)[..., 2][seen], rtol=0.02)
    assert (out.rgb[out.hole] == 0).all() and (out.depth[out.hole] == 0).all()


def test_the_nearest_point_wins_and_pixels_without_depth_are_not_points() -> None:
    K = intrinsics_from_fov(32, 32, FOV)
    near = np.full((32, 32), 2.0, np.float32)
    near[:, :8] = 0.0  # no depth: no point
    far = np.full((32, 32), 4.0, np.float32)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 255
    pose = sg.cam_T_world(0)
    out = sg.reproject([(blue, far, pose), (red, near, pose)], K, pose, (32, 32))
    assert not out.hole.any()
    assert (out.rgb[:, 10:, 0] == 255).all() and (out.rgb[:, 10:, 2] == 0).all()
    assert (out.rgb[:, :7, 2] == 255).all()  # only the far surface there
    np.testing.assert_allclose(out.depth[:, 10:], 2.0, rtol=1e-5)
