"""`moge.model.v1.MoGeModel` as MoGe's: `from_pretrained(<model.pt>)` on a checkpoint
`{"model_config": ..., "model": state_dict}`, and `infer(image (3, H, W) in [0, 1], apply_mask=...,
use_fp16=...)` returning `points` (H, W, 3), `depth` (H, W), `intrinsics` (3, 3, normalised by the
image's width and height, principal point at 0.5) and `mask` (H, W) bool. The stand-in's "prediction"
is simple and known to a test: depth grows from 1 (black) to 3 (white) with luminance, the field of
view is `fov_x` degrees from the checkpoint's config (60 unset), and the mask drops pixels brighter
than `mask_threshold` (luminance, 0.9 unset), the way MoGe's mask drops the sky."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch


class MoGeModel(torch.nn.Module):
    def __init__(self, fov_x: float = 60.0, mask_threshold: float = 0.9, **_: Any) -> None:
        super().__init__()
        self.fov_x, self.mask_threshold = fov_x, mask_threshold
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **_: Any) -> MoGeModel:
        checkpoint = torch.load(pretrained_model_name_or_path, map_location="cpu", weights_only=True)
        model = cls(**checkpoint["model_config"])
        model.load_state_dict(checkpoint["model"], strict=False)
        return model

    @torch.inference_mode()
    def infer(self, image: torch.Tensor, fov_x: float | None = None, apply_mask: bool = True,
              use_fp16: bool = True, **_: Any) -> dict[str, torch.Tensor]:
        assert image.dim() == 3 and image.shape[0] == 3, image.shape
        height, width = image.shape[-2:]
        luminance = torch.einsum("chw,c->hw", image.float(), self.luma)
        depth = 1.0 + 2.0 * luminance
        mask = luminance <= self.mask_threshold
        fx = 0.5 / math.tan(math.radians(fov_x or self.fov_x) / 2)
        intrinsics = torch.tensor([[fx, 0.0, 0.5], [0.0, fx * width / height, 0.5], [0.0, 0.0, 1.0]])
        v, u = torch.meshgrid((torch.arange(height) + 0.5) / height, (torch.arange(width) + 0.5) / width,
                              indexing="ij")
        points = torch.stack([(u - 0.5) / intrinsics[0, 0] * depth, (v - 0.5) / intrinsics[1, 1] * depth, depth], -1)
        if apply_mask:
            points = torch.where(mask[..., None], points, torch.inf)
            depth = torch.where(mask, depth, torch.inf)
        return {"points": points, "intrinsics": intrinsics, "depth": depth, "mask": mask}
