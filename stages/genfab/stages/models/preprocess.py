"""Image preprocessing and mask/depth post-processing for vision models, on the model's device.

SAM2/SAM3's Hugging Face image processors need torchvision; what they do is a resize, a rescale and
a normalisation, read here from the model folder's `preprocessor_config.json` so the numbers stay
the checkpoint's own. The images go to the device as uint8 and are resized and normalised there:
decoding stays on the CPU, everything per pixel after it runs on the GPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_STANDARD = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
IMAGENET_DEFAULT = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Preprocess:
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_model_dir(cls, path: Path, default_side: int, default_stats: tuple[list[float], list[float]]
                       = IMAGENET_STANDARD) -> Preprocess:
        preprocessor: dict[str, Any] = {}
        file = Path(path) / "preprocessor_config.json"
        if file.is_file():
            preprocessor = json.loads(file.read_text())
        size = preprocessor.get("size") or {}
        side = size.get("longest_edge") or size.get("shortest_edge") or default_side
        return cls(int(size.get("height", side)), int(size.get("width", side)),
                   tuple(preprocessor.get("image_mean") or default_stats[0]),
                   tuple(preprocessor.get("image_std") or default_stats[1]))

    def __call__(self, images_bgr: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB for a list of uint8 BGR images of any sizes (bilinear resize,
        as OpenCV's INTER_LINEAR)."""
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        batch = []
        for img in images_bgr:
            # BGR -> RGB on the device too: a flipped copy on the CPU costs ~3 ms per 1024² image
            t = torch.from_numpy(np.ascontiguousarray(img)).to(device, non_blocking=True).flip(-1)
            t = t.permute(2, 0, 1)[None].float()
            batch.append(F.interpolate(t, size=(self.height, self.width), mode="bilinear", align_corners=False))
        return ((torch.cat(batch) / 255.0 - mean) / std).to(dtype)


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., h, w) -> (..., H, W) float32 on the same device (bilinear)."""
    lead = logits.shape[:-2]
    flat = logits.reshape(-1, 1, *logits.shape[-2:]).float()
    up = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return up.reshape(*lead, *size)
