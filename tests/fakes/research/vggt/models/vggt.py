"""`vggt.models.vggt.VGGT` as VGGT's: `from_pretrained(folder)`, called on (S, 3, H, W) images in [0, 1],
returns `pose_enc` (1, S, 9: translation, quaternion xyzw, field of view h/w), `depth` (1, S, H, W, 1)
and `depth_conf` (1, S, H, W). The stand-in's "prediction" is read from `stand_in.npz` in the folder
(world-to-camera poses `cam_T_world` (S, 4, 4) and a depth per frame), so a test knows the truth."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from vggt.utils.pose_enc import extri_to_pose_encoding


class VGGT(torch.nn.Module):
    def __init__(self, cam_T_world: np.ndarray, depth: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("cam_T_world", torch.as_tensor(cam_T_world, dtype=torch.float32))
        self.register_buffer("depth", torch.as_tensor(depth, dtype=torch.float32))

    @classmethod
    def from_pretrained(cls, path: str, **_: Any) -> VGGT:
        with np.load(os.path.join(path, "stand_in.npz")) as data:
            return cls(data["cam_T_world"], data["depth"])

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() == 4:
            images = images[None]
        _, s, _, h, w = images.shape
        assert s == len(self.cam_T_world), f"stand-in knows {len(self.cam_T_world)} frames, got {s}"
        pose_enc = extri_to_pose_encoding(self.cam_T_world[None, :, :3, :], (h, w))
        depth = self.depth[None, :, None, None, None].expand(1, s, h, w, 1).clone()
        conf = torch.linspace(1.0, 2.0, s * h * w).reshape(1, s, h, w)
        return {"pose_enc": pose_enc, "depth": depth, "depth_conf": conf, "images": images}
