"""The expansion's camera trajectories through the scaffold (the lab's worldexplorer stage 2), numpy only.

The scaffold's eight cameras sit at the world origin, 45° apart in yaw (`scaffold_geometry`). A
trajectory moves the camera up to `distance` (a length in the scene's units: the expansion passes a
fraction of the median depth seen from view 000) away from that centre:

- `outward`: WorldExplorer's walk into the scene: for each scaffold view in turn, steps out from the
  centre along the view's direction, looking along it (frames shared evenly, the first views get one
  more when they do not divide). No pose sits at the centre: those are the scaffold views themselves.
- `orbit`: a circle of radius `distance` around the centre, looking outwards, starting ahead of view
  000 and turning the same way as the scaffold's views.

Poses are world-to-camera (OpenCV axes, +y down), like every vistadream/worldexplorer frame.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from genfab.stages.worldexplorer.scaffold_geometry import VIEWS, YAW_STEP_DEGREES, yaw_pose

Kind = Literal["outward", "orbit"]


def direction(yaw: float) -> np.ndarray:
    """The unit vector a camera turned `yaw` degrees looks along (horizontal)."""
    theta = np.radians(yaw)
    return np.array([np.sin(theta), 0.0, np.cos(theta)])


def frames_per_view(frames: int) -> list[int]:
    """`frames` shared among the eight scaffold views, the first ones taking the remainder."""
    base, extra = divmod(frames, VIEWS)
    return [base + (1 if view < extra else 0) for view in range(VIEWS)]


def scaffold_trajectory(kind: Kind, frames: int, distance: float) -> np.ndarray:
    """(frames, 4, 4) world-to-camera poses; see the module docstring."""
    if frames < 1:
        raise ValueError(f"a trajectory needs at least one frame, got {frames}")
    if not distance > 0:
        raise ValueError(f"distance must be > 0, got {distance}")
    poses: list[np.ndarray] = []
    if kind == "outward":
        for view, count in enumerate(frames_per_view(frames)):
            yaw = YAW_STEP_DEGREES * view
            for step in range(1, count + 1):
                poses.append(yaw_pose(yaw, direction(yaw) * distance * step / count))
    elif kind == "orbit":
        for i in range(frames):
            yaw = 360.0 * i / frames
            poses.append(yaw_pose(yaw, direction(yaw) * distance))
    else:
        raise ValueError(f"trajectory must be outward or orbit, got {kind!r}")
    return np.stack(poses)


def camera_centres(poses: np.ndarray) -> np.ndarray:
    """(N, 3) positions of world-to-camera poses."""
    return np.stack([np.linalg.inv(pose)[:3, 3] for pose in poses])
