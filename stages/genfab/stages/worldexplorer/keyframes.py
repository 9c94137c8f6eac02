"""Key frames of a generated 360° sweep (the `single_image` scaffold: SEVA turns the camera around
the input image): for each scaffold view 000-007, the generated frame that looks where that view
looks. Frame 0 is the input image's camera, i.e. view 000; directions are compared in its frame, so
a sweep to the left or to the right both work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genfab.stages.worldexplorer.scaffold_geometry import VIEWS, cam_T_world, view_name

DEFAULT_TOLERANCE_DEGREES = 10.0
"""A key frame may look at most this far from its view's direction (views are 45° apart)."""


class KeyFrameError(ValueError):
    """The sweep does not cover a scaffold view: which view, the nearest frame, what to change."""


@dataclass(frozen=True)
class KeyFrame:
    view: int
    frame: int
    angle_degrees: float
    """Between the frame's optical axis and the view's."""


def optical_axes(poses: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 3) unit optical axes of world-to-camera poses, in the first pose's camera frame."""
    first = np.asarray(poses[0])[:3, :3]
    axes = np.stack([first @ np.asarray(pose)[:3, :3].T[:, 2] for pose in poses])
    return np.asarray(axes / np.linalg.norm(axes, axis=1, keepdims=True))


def key_frames(poses: Sequence[np.ndarray], tolerance_degrees: float = DEFAULT_TOLERANCE_DEGREES) -> list[KeyFrame]:
    """The frame for each scaffold view: the one whose optical axis is nearest the view's (the first
    of equals, so the earliest in the sweep)."""
    if len(poses) == 0:
        raise KeyFrameError("the sweep has no frames")
    axes = optical_axes(poses)
    chosen = []
    for view in range(VIEWS):
        target = np.linalg.inv(cam_T_world(view))[:3, 2]
        angles = np.degrees(np.arccos(np.clip(axes @ target, -1.0, 1.0)))
        frame = int(np.argmin(np.round(angles, 6)))  # rounded: equal distances must not tie-break on float noise
        if angles[frame] > tolerance_degrees:
            raise KeyFrameError(
                f"scaffold view {view_name(view)} ({45 * view}° from the input image): the nearest of the "
                f"{len(poses)} generated frames is frame {frame}, {angles[frame]:.1f}° away (tolerance "
                f"{tolerance_degrees:g}°); generate a sweep that turns a full circle with more frames")
        chosen.append(KeyFrame(view, frame, round(float(angles[frame]), 3)))
    return chosen
