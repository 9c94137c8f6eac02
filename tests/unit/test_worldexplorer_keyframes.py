"""Key frames of a 360° sweep into the scaffold's eight views."""

from __future__ import annotations

import numpy as np
import pytest

from genfab.stages.worldexplorer.keyframes import KeyFrameError, key_frames


def sweep(frames: int, turn_degrees: float = 360.0, start: np.ndarray | None = None, pitch: float = 0.0
          ) -> list[np.ndarray]:
    """World-to-camera poses turning about the vertical axis by `turn_degrees` in `frames` steps
    (negative: to the left), after an arbitrary first pose `start`."""
    base = np.eye(4) if start is None else start
    poses = []
    for i in range(frames):
        theta = np.radians(turn_degrees * i / frames)
        c, s = np.cos(theta), np.sin(theta)
        tilt = np.radians(pitch)
        rx = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
        c2w = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ rx
        pose = np.eye(4)
        pose[:3, :3] = c2w.T
        poses.append(pose @ base)
    return poses


def test_a_right_turning_sweep_gives_evenly_spaced_key_frames() -> None:
    chosen = key_frames(sweep(80))
    assert [k.frame for k in chosen] == [0, 10, 20, 30, 40, 50, 60, 70]
    assert all(k.angle_degrees < 1e-6 for k in chosen)


def test_a_left_turning_sweep_from_any_first_pose_finds_the_same_directions() -> None:
    start = np.eye(4)
    start[:3, :3] = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # the first camera looks along -x
    start[:3, 3] = [1.0, 2.0, 3.0]
    chosen = key_frames(sweep(64, -360.0, start))
    # turning left, view 002 (90° right) is reached after 270°: frame 48 of 64
    assert [k.frame for k in chosen] == [0, 56, 48, 40, 32, 24, 16, 8]


def test_nearest_frame_within_the_tolerance_and_a_small_pitch_is_tolerated() -> None:
    chosen = key_frames(sweep(50))  # 7.2° steps: 45° lies between frames; equal distances keep the first
    assert [k.frame for k in chosen] == [0, 6, 12, 19, 25, 31, 37, 44]
    tilted = key_frames(sweep(50, pitch=3.0))  # a camera tilted 3°: the same frames, a little farther
    assert [k.frame for k in tilted] == [k.frame for k in chosen]
    assert max(k.angle_degrees for k in tilted) < 6.5


def test_a_sweep_that_does_not_turn_far_enough_names_the_view_and_what_to_do() -> None:
    with pytest.raises(KeyFrameError, match=r"^scaffold view 005 \(225° from the input image\): the nearest of the "
                                            r"40 generated frames is frame 39, .*turns a full circle"):
        key_frames(sweep(40, 180.0))
    with pytest.raises(KeyFrameError, match="no frames"):
        key_frames([])
