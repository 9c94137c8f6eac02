"""VGGT's `absT_quaR_FoV` pose encoding (translation, quaternion xyzw, fov h/w) and its inverse,
`pose_encoding_to_extri_intri` -> extrinsics (B, S, 3, 4) camera-from-world (OpenCV) and pixel
intrinsics (B, S, 3, 3) with the principal point at the centre."""

from __future__ import annotations

import math

import torch

FOV = math.radians(60.0)


def _quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    x, y, z, w = q.unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1
                       ).reshape(*q.shape[:-1], 3, 3)


def _mat_to_quat(m: torch.Tensor) -> torch.Tensor:
    w = torch.sqrt(torch.clamp(1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2], min=1e-12)) / 2
    x = (m[..., 2, 1] - m[..., 1, 2]) / (4 * w)
    y = (m[..., 0, 2] - m[..., 2, 0]) / (4 * w)
    z = (m[..., 1, 0] - m[..., 0, 1]) / (4 * w)
    return torch.stack([x, y, z, w], -1)


def extri_to_pose_encoding(extrinsics: torch.Tensor, image_size_hw: tuple[int, int]) -> torch.Tensor:
    fov = torch.full((*extrinsics.shape[:-2], 2), FOV, dtype=extrinsics.dtype, device=extrinsics.device)
    return torch.cat([extrinsics[..., :3, 3], _mat_to_quat(extrinsics[..., :3, :3]), fov], -1)


def pose_encoding_to_extri_intri(pose_encoding: torch.Tensor, image_size_hw: tuple[int, int] | torch.Size,
                                 pose_encoding_type: str = "absT_quaR_FoV", build_intrinsics: bool = True
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = int(image_size_hw[0]), int(image_size_hw[1])
    rotation = _quat_to_mat(pose_encoding[..., 3:7])
    extrinsics = torch.cat([rotation, pose_encoding[..., :3, None]], -1)
    fy = (h / 2) / torch.tan(pose_encoding[..., 7] / 2)
    fx = (w / 2) / torch.tan(pose_encoding[..., 8] / 2)
    intrinsics = torch.zeros((*pose_encoding.shape[:-1], 3, 3), dtype=pose_encoding.dtype, device=pose_encoding.device)
    intrinsics[..., 0, 0], intrinsics[..., 1, 1] = fx, fy
    intrinsics[..., 0, 2], intrinsics[..., 1, 2], intrinsics[..., 2, 2] = w / 2, h / 2, 1.0
    return extrinsics, intrinsics
