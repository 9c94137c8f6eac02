"""Cameras, depth and the masks the lab's vistadream frames carry (numpy only).

Conventions: pixels are OpenCV's (x right, y down, z forward); `cam_T_world` maps world points into
a camera's frame (world-to-camera, what gsplat calls a viewmat), so the first frame's is the
identity and a camera's position is `inv(cam_T_world)[:3, 3]`.
"""

from __future__ import annotations

import math

import numpy as np

EDGE_RELATIVE_GRADIENT = 0.05
"""A pixel is a depth edge when its depth changes by more than 5 % of itself per pixel. Relative, not
absolute: metric depth from Depth Pro spans 0.5-100 m, and an absolute gradient threshold would mark
every far pixel of a slanted floor and no near silhouette."""


def intrinsics_from_fov(width: int, height: int, fov_x_degrees: float) -> np.ndarray:
    """Square-pixel pinhole K for a horizontal field of view, principal point at the image centre."""
    if not 0.0 < fov_x_degrees < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {fov_x_degrees}")
    focal = 0.5 * width / math.tan(math.radians(fov_x_degrees) / 2)
    return intrinsics_from_focal(width, height, focal)


def intrinsics_from_focal(width: int, height: int, focal: float) -> np.ndarray:
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def crop_intrinsics(K: np.ndarray, left: int, top: int) -> np.ndarray:
    """K of the crop whose top-left corner is (left, top): the same focal, the principal point moved
    into the crop (seed: the input frame reuses the outpaint K with its principal point re-centred)."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[0, 2] -= left
    out[1, 2] -= top
    return out


def sanitize_depth(depth: np.ndarray) -> np.ndarray:
    """NaN, infinite and negative depths become 0 (= no depth), as float32."""
    out = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    out[out < 0] = 0.0
    return out


def confidence_mask(depth: np.ndarray, confidence: np.ndarray | None = None, threshold: float = 0.5) -> np.ndarray:
    """`dpt_conf_mask`: pixels with a usable depth (> 0) and, when the model gives a confidence map,
    confidence above `threshold`."""
    mask = depth > 0
    if confidence is not None:
        mask &= np.nan_to_num(confidence, nan=0.0) > threshold
    return np.asarray(mask)


def depth_edges_mask(depth: np.ndarray, threshold: float = EDGE_RELATIVE_GRADIENT) -> np.ndarray:
    """Pixels on depth discontinuities (flying pixels between foreground and background): the
    gradient magnitude relative to the depth. Pixels without depth are not edges."""
    dy, dx = np.gradient(depth.astype(np.float64))
    magnitude = np.sqrt(dx * dx + dy * dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(depth > 0, magnitude / np.maximum(depth, 1e-12), 0.0)
    return np.asarray(relative > threshold)


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (H, W, 3) of every pixel centre at its depth."""
    height, width = depth.shape
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (v - K[1, 2]) / K[1, 1] * depth
    return np.stack([x, y, depth], axis=-1)


def transform_points(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (..., 3) points."""
    return np.asarray(points @ T[:3, :3].T + T[:3, 3])


def world_points(depth: np.ndarray, K: np.ndarray, cam_T_world: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """World-frame points (N, 3) of the pixels in `mask` (those that become Gaussians)."""
    return transform_points(backproject(depth, K)[mask], np.linalg.inv(cam_T_world))


def project(points: np.ndarray, K: np.ndarray, cam_T_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixel coordinates (N, 2), camera depth (N,)) of world points."""
    cam = transform_points(points, cam_T_world)
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam[:, :2] / z[:, None]) * np.diag(K)[:2] + K[:2, 2]
    return uv, z
