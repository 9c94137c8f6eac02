"""`vggt.models.vggt.VGGT` as VGGT's: `from_pretrained(folder)`, called on (S, 3, H, W) images in [0, 1],
returns `pose_enc` (1, S, 9: translation, quaternion xyzw, field of view h/w), `depth` (1, S, H, W, 1)
and `depth_conf` (1, S, H, W). The stand-in's "prediction" is read from `stand_in.npz` in the folder
(world-to-camera poses `cam_T_world` (S, 4, 4) and a depth per frame), so a test knows the truth. One
pose and one depth stand for any number of frames (a test that cannot know them: a trajectory scaled
by a model's depth): frame i is that camera moved 0.1 * i along its x axis, at that depth."""

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
        poses, depths = self.cam_T_world, self.depth
        if len(poses) == 1 and s > 1:  # one camera for any number of frames, moved along its x axis
            poses = poses.repeat(s, 1, 1)
            poses[:, 0, 3] += 0.1 * torch.arange(s, dtype=poses.dtype, device=poses.device)
            depths = depths.repeat(s)
        assert s == len(poses), f"stand-in knows {len(poses)} frames, got {s}"
        pose_enc = extri_to_pose_encoding(poses[None, :, :3, :], (h, w))
        depth = depths[None, :, None, None, None].expand(1, s, h, w, 1).clone()
        conf = torch.linspace(1.0, 2.0, s * h * w, device=images.device).reshape(1, s, h, w)
        return {"pose_enc": pose_enc, "depth": depth, "depth_conf": conf, "images": images}
