"""`unproject_depth_map_to_point_map` as VGGT's: depth (S, H, W, 1), extrinsics (S, 3, 4)
camera-from-world, intrinsics (S, 3, 3) -> world points (S, H, W, 3), numpy."""

from __future__ import annotations

import numpy as np


def unproject_depth_map_to_point_map(depth_map: np.ndarray, extrinsics_cam: np.ndarray,
                                     intrinsics_cam: np.ndarray) -> np.ndarray:
    out = []
    for depth, extrinsic, K in zip(depth_map, extrinsics_cam, intrinsics_cam, strict=True):
        h, w = depth.shape[:2]
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        z = depth[..., 0]
        cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)
        rotation, translation = extrinsic[:3, :3], extrinsic[:3, 3]
        out.append((cam - translation) @ rotation)  # R^T (x_cam - t), row vectors
    return np.stack(out).astype(np.float32)
