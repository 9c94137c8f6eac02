"""Camera trajectories around the first frame (the lab's vistadream `trajType`, `trajForwardRatio`,
`trajBackwardRatio`, `trajMaxPercentage`): `nFrames` (x `coarseDenseMultiplier` for selection)
world-to-camera poses.

Every trajectory is scaled by the scene's extent seen from the first camera: the mean over x, y, z of
the spread between the 5th and the `trajMaxPercentage`-th percentile of its back-projected points
(the far tail of a sky or a window would otherwise fling the camera out of the scene). The camera
starts at the first frame's pose and looks at a point half that extent ahead; +y is down.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from genfab.stages.scene.geometry import backproject

TrajType = Literal["spiral", "forward", "rotate", "wobble"]
MIN_PERCENTAGE = 5.0
SWAY = 0.3
"""Lateral motion as a fraction of the extent (spiral, wobble)."""
VERTICAL = 0.3
"""Vertical motion relative to lateral: floors and skies are where a single image knows least."""
LOOK_AT = 0.5
"""The look-at point's distance ahead, as a fraction of the extent."""
TURNS = 2
"""Revolutions of the spiral and the wobble over the trajectory."""
ROTATE_DEGREES = 30.0
"""Largest yaw of `rotate` (the camera turns in place, left then right)."""


def scene_extent(depth: np.ndarray, K: np.ndarray, max_percentage: float) -> float:
    """The scale every trajectory moves in: see the module docstring. 1.0 without valid depth."""
    points = backproject(depth, K)[depth > 0]
    if len(points) == 0:
        return 1.0
    spread = np.percentile(points, max_percentage, axis=0) - np.percentile(points, MIN_PERCENTAGE, axis=0)
    extent = float(np.mean(np.abs(spread)))
    return extent if extent > 0 else 1.0


DOWN = np.array([0.0, 1.0, 0.0])
"""World +y is down, as in the first camera's (OpenCV) frame."""


def look_at(position: np.ndarray, target: np.ndarray, down: np.ndarray = DOWN) -> np.ndarray:
    """World-to-camera pose of a camera at `position` looking at `target` with +y towards `down`."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(down, forward)
    right = right / np.linalg.norm(right)
    down_axis = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.column_stack([right, down_axis, forward])
    c2w[:3, 3] = position
    return np.linalg.inv(c2w)


def _positions(kind: TrajType, t: np.ndarray, extent: float, forward: float, backward: float) -> np.ndarray:
    if kind == "forward":  # dolly: forward to `forward`, back through the start to `backward`, home
        z = np.sin(2 * np.pi * t) * extent
        z = np.where(z > 0, z * forward, z * backward)
        return np.stack([np.zeros_like(t), np.zeros_like(t), z], axis=-1)
    radius = np.sin(2 * np.pi * t) * extent * SWAY  # signed, 0 at both ends: starts and ends at frame 0
    theta = 2 * np.pi * TURNS * t
    x = radius * np.cos(theta)
    y = radius * np.sin(theta) * VERTICAL * (1 if kind == "spiral" else -1)
    z = -radius if kind == "spiral" else radius  # back out then in (spiral), in then out (wobble)
    z = np.where(z > 0, z * forward, z * backward)
    return np.stack([x, y, z], axis=-1)


def trajectory(kind: TrajType, frames: int, extent: float, forward_ratio: float, backward_ratio: float
               ) -> np.ndarray:
    """`frames` world-to-camera poses (frames, 4, 4); the first is the identity (the input camera)."""
    t = np.linspace(0.0, 1.0, frames)
    ahead = np.array([0.0, 0.0, extent * LOOK_AT])
    if kind == "rotate":
        yaw = np.radians(ROTATE_DEGREES) * np.sin(2 * np.pi * t)
        targets = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], axis=-1) * ahead[2]
        poses = [look_at(np.zeros(3), target) for target in targets]
    else:
        positions = _positions(kind, t, extent, forward_ratio, backward_ratio)
        poses = [look_at(p, p + ahead) if kind == "forward" else look_at(p, ahead) for p in positions]
    out = np.stack(poses)
    out[0] = np.eye(4)
    return out
