"""Pinhole cameras and the two pose conventions genfab reads.

Internally every camera is OpenCV-style: camera-to-world `c2w` (4x4) whose camera looks down +Z
with +Y down and +X right (COLMAP, gsplat's `viewmats` are the inverse, world-to-camera). Nerfstudio
and Blender `transforms.json` files store OpenGL-style poses (+Y up, looking down -Z); converting
flips the camera's Y and Z axes. numpy only: loaders and tests run without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Convention = Literal["opencv", "opengl"]
FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class Camera:
    """One posed pinhole view. `c2w` is OpenCV camera-to-world; `K` the 3x3 intrinsics in pixels."""

    name: str
    K: np.ndarray
    c2w: np.ndarray
    width: int
    height: int
    image: str | None = None
    """Image path relative to the scene folder (None for render-only cameras)."""
    mask: str | None = None
    """Optional mask path: white pixels are supervised, black ones ignored."""

    @property
    def w2c(self) -> np.ndarray:
        return np.linalg.inv(self.c2w)

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.c2w[:3, 3])


@dataclass
class SceneData:
    """Posed views of one scene plus optional initial points (xyz, rgb in [0, 1])."""

    cameras: list[Camera]
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    root: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def split(self, test_every: int) -> tuple[list[Camera], list[Camera]]:
        """Every `test_every`-th view (sorted by name) is held out, as in gsplat's and Mip-NeRF 360's
        evaluation; with fewer than 2 views nothing is held out."""
        ordered = sorted(self.cameras, key=lambda c: c.name)
        if len(ordered) < 2:
            return ordered, []
        test = [c for i, c in enumerate(ordered) if i % test_every == 0]
        train = [c for i, c in enumerate(ordered) if i % test_every != 0]
        return train, test


def convert_c2w(c2w: np.ndarray, source: Convention, target: Convention) -> np.ndarray:
    """Change a camera-to-world pose between OpenGL and OpenCV axis conventions (an involution)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return c2w @ FLIP_YZ if source != target else c2w.copy()


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """COLMAP quaternion (w, x, y, z) -> rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * x * z + 2 * w * y],
        [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
        [2 * x * z - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
    ])


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> COLMAP quaternion (w, x, y, z) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    K = np.array([
        [R[0, 0] - R[1, 1] - R[2, 2], 0, 0, 0],
        [R[1, 0] + R[0, 1], R[1, 1] - R[0, 0] - R[2, 2], 0, 0],
        [R[2, 0] + R[0, 2], R[2, 1] + R[1, 2], R[2, 2] - R[0, 0] - R[1, 1], 0],
        [R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], R[0, 0] + R[1, 1] + R[2, 2]],
    ]) / 3.0
    vals, vecs = np.linalg.eigh(K)
    x, y, z, w = vecs[:, np.argmax(vals)]
    q = np.array([w, x, y, z])
    return q if q[0] >= 0 else -q


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """OpenCV camera-to-world pose at `eye` looking at `target` (image +Y points away from `up`, +Z)."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    forward = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight along `up`
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def scene_scale(cameras: list[Camera]) -> float:
    """Radius of the camera centres around their mean (x1.1), gsplat's `scene_scale` heuristic."""
    centers = np.stack([c.center for c in cameras])
    return float(np.linalg.norm(centers - centers.mean(0), axis=1).max() * 1.1) or 1.0


OBJECT_BOUNDS = 0.32
"""Half-size of the random-init cube around the object an inward-facing rig looks at, relative to the
cameras' distance to it: the 3DGS paper's synthetic scenes (a +-1.3 cube, cameras at radius 4)."""


def random_init_box(cameras: list[Camera], extent: float) -> tuple[np.ndarray, float]:
    """Centre and half-size of the cube random initialisation fills.

    Cameras that all look at one point (an object-centric rig) get a cube around that point sized to
    the object (`OBJECT_BOUNDS` of their distance to it): gsplat's +-extent x scene-scale cube would
    enclose the cameras themselves, and its fog in front of every lens does not train away (measured:
    ~10 dB after 3000 steps on a procedural object). Other rigs (inside-out captures, walks) get
    gsplat's cube, centred on the cameras as gsplat's world normalisation centres them."""
    centers = np.stack([c.center for c in cameras])
    dirs = np.stack([c.c2w[:3, 2] / np.linalg.norm(c.c2w[:3, 2]) for c in cameras])
    half = extent * scene_scale(cameras)
    if len(cameras) >= 3:
        # the point closest to every optical axis: sum_i (I - d d^T)(p - c_i) = 0
        proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
        a, b = proj.sum(0), np.einsum("nij,nj->i", proj, centers)
        if np.linalg.cond(a) < 1e6:
            focus = np.linalg.solve(a, b)
            to_focus = focus - centers
            dist = np.linalg.norm(to_focus, axis=1)
            facing = np.einsum("ni,ni->n", dirs, to_focus) / np.maximum(dist, 1e-12)
            if np.mean(facing > np.cos(np.radians(25))) >= 0.8:
                return focus, min(half, OBJECT_BOUNDS * float(np.median(dist)))
    return centers.mean(0), half
