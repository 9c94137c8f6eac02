"""The scaffold's cameras and the reprojection that makes its in-between views' holes (numpy, OpenCV).

The lab's worldexplorer scaffold is eight views 000-007 from one point, 45° apart in yaw: the cardinal views
000/002/004/006 are generated (or 000 is the input image), the in-between views 001/003/005/007 are
their neighbours' point clouds reprojected into the in-between camera, with the rest inpainted (as
WorldExplorer's `scaffold_generation.py` does with a 60° field of view at 576²).

Conventions are the scene library's (`genfab.stages.scene.geometry`): OpenCV pixels (x right, y down,
z forward) and world-to-camera `cam_T_world`. View k looks 45·k degrees to the right of view 000
(clockwise seen from above), so 001 lies between 000 and 002 and 007 between 006 and 000.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from genfab.stages.scene.geometry import project, world_points

VIEWS = 8
CARDINAL = (0, 2, 4, 6)
"""Generated views (000 is the input image when there is one)."""
GAPS = (1, 3, 5, 7)
"""In-between views, inpainted from their neighbours' reprojection."""
YAW_STEP_DEGREES = 360.0 / VIEWS
MASK_DILATION = 2
"""Hole masks grow by 2 pixels (WorldExplorer's `generate_mask`: the reprojection's ragged border
is repainted, not kept)."""
SUBPIXELS = ((-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25))
"""Each source pixel is splatted as four points at its quarter positions (same colour and depth): a
view turned 45° sees its neighbour's border stretched by up to 1.3x at 60° (more at wider fields of
view), and one point per pixel would leave every third or fourth target column empty."""
GAP_FILL_MIN_NEIGHBOURS = 5
"""An empty pixel with at least 5 of its 8 neighbours covered is a sampling gap of the splatting
(the neighbours' pixels land a little apart), not a hole: it takes its neighbours' mean colour."""


def view_name(view: int) -> str:
    """'000' … '007': the scaffold's file stems."""
    if not 0 <= view < VIEWS:
        raise ValueError(f"scaffold views are 0-{VIEWS - 1}, got {view}")
    return f"{view:03d}"


def yaw_degrees(view: int) -> float:
    view_name(view)
    return YAW_STEP_DEGREES * view


def yaw_pose(yaw: float, position: np.ndarray | None = None) -> np.ndarray:
    """World-to-camera transform of a camera at `position` (default the origin) turned `yaw` degrees
    to the right of view 000 about the vertical axis (the world frame is view 000's camera frame)."""
    theta = np.radians(yaw)
    c, s = np.cos(theta), np.sin(theta)
    c2w = np.eye(4)
    c2w[:3, :3] = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # forward (0, 0, 1) -> (sin, 0, cos)
    if position is not None:
        c2w[:3, 3] = position
    return np.linalg.inv(c2w)


def cam_T_world(view: int) -> np.ndarray:
    """World-to-camera transform of scaffold view `view`: a pure rotation at the origin."""
    return yaw_pose(yaw_degrees(view))


def neighbours(gap: int) -> tuple[int, int]:
    """The cardinal views on either side of an in-between view: (left, right) in yaw order."""
    if gap not in GAPS:
        raise ValueError(f"in-between views are {', '.join(map(view_name, GAPS))}, got {view_name(gap)}")
    return gap - 1, (gap + 1) % VIEWS


def gap_prompt(prompts: dict[int, str], gap: int) -> str:
    """The text an in-between view is scored against (automatic selection): its two neighbours'
    prompts joined by "and", as WorldExplorer's CLIP selection does."""
    left, right = neighbours(gap)
    return f"{prompts[left]} and {prompts[right]}"


@dataclass(frozen=True)
class Reprojection:
    rgb: np.ndarray
    """(H, W, 3) uint8: the neighbours' colours where they are seen, 0 elsewhere."""
    hole: np.ndarray
    """(H, W) bool, True = to inpaint: pixels no neighbour covers, grown by `MASK_DILATION`."""
    depth: np.ndarray
    """(H, W) float32 camera depth of the nearest reprojected point (0 in holes)."""


def reproject(sources: list[tuple[np.ndarray, np.ndarray, np.ndarray]], K: np.ndarray, target: np.ndarray,
              size: tuple[int, int]) -> Reprojection:
    """Splat the point clouds of `sources` — (rgb uint8 (h, w, 3), depth (h, w), cam_T_world) each,
    with intrinsics `K` — into the camera `target` (cam_T_world) at `size` (width, height), nearest
    point first (a z-buffer). Pixels without depth (0) are not points."""
    width, height = size
    colours, points = [], []
    for rgb, depth, pose in sources:
        valid = depth > 0
        for dx, dy in SUBPIXELS:  # a pixel's K with its principal point moved = the pixel's sub-point
            shifted = np.array(K, dtype=np.float64, copy=True)
            shifted[0, 2] -= dx
            shifted[1, 2] -= dy
            points.append(world_points(depth, shifted, pose, valid))
            colours.append(rgb[valid])
    xyz = np.concatenate(points) if points else np.zeros((0, 3))
    rgb_all = np.concatenate(colours) if colours else np.zeros((0, 3), np.uint8)
    uv, z = project(xyz, K, target)
    with np.errstate(invalid="ignore"):
        px = np.floor(uv).astype(np.int64, copy=False) if len(uv) else np.zeros((0, 2), np.int64)
    inside = (z > 0) & (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & (px[:, 1] < height)
    px, z, rgb_all = px[inside], z[inside], rgb_all[inside]
    order = np.argsort(-z)  # far first: the nearest point is written last and wins
    flat = px[order, 1] * width + px[order, 0]
    depth_out = np.zeros(height * width, np.float32)
    colour_out = np.zeros((height * width, 3), np.uint8)
    depth_out[flat] = z[order]
    colour_out[flat] = rgb_all[order]
    depth_map, colour_map = depth_out.reshape(height, width), colour_out.reshape(height, width, 3)
    covered = depth_map > 0
    colour_map, depth_map, covered = fill_sampling_gaps(colour_map, depth_map, covered)
    kernel = np.ones((3, 3), np.uint8)
    hole = cv2.dilate((~covered).astype(np.uint8), kernel, iterations=MASK_DILATION).astype(bool)
    colour_map[hole] = 0
    depth_map[hole] = 0.0
    return Reprojection(colour_map, hole, depth_map)


def fill_sampling_gaps(rgb: np.ndarray, depth: np.ndarray, covered: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty pixels surrounded by covered ones take their covered neighbours' mean colour and depth."""
    weight = covered.astype(np.float32)
    kernel = np.ones((3, 3), np.float32)
    count = cv2.filter2D(weight, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    gaps = ~covered & (count >= GAP_FILL_MIN_NEIGHBOURS)
    if not gaps.any():
        return rgb, depth, covered
    total = np.maximum(count, 1.0)
    out_rgb, out_depth = rgb.copy(), depth.copy()
    for channel in range(3):
        mean = cv2.filter2D(rgb[..., channel].astype(np.float32) * weight, -1, kernel,
                            borderType=cv2.BORDER_CONSTANT) / total
        out_rgb[..., channel][gaps] = np.clip(mean[gaps] + 0.5, 0, 255).astype(np.uint8)
    mean_depth = cv2.filter2D(depth.astype(np.float32) * weight, -1, kernel, borderType=cv2.BORDER_CONSTANT) / total
    out_depth[gaps] = mean_depth[gaps]
    return out_rgb, out_depth, covered | gaps
