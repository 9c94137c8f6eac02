"""Shared by the model-backed relighting paths: device choice and torchvision-free preprocessing.

SAM2/SAM3's Hugging Face image processors need torchvision; the preprocessing they do is a resize,
a rescale and a normalisation, read here from the model folder's `preprocessor_config.json` so the
numbers stay the checkpoint's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

IMAGENET_STANDARD = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dtype_for(dev: torch.device) -> torch.dtype:
    """Half precision on the GPU (throughput), float32 on the CPU."""
    return torch.bfloat16 if dev.type == "cuda" else torch.float32


@dataclass(frozen=True)
class Preprocess:
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_model_dir(cls, path: Path, default_side: int, default_stats: tuple[list[float], list[float]]
                       = IMAGENET_STANDARD) -> Preprocess:
        cfg: dict[str, Any] = {}
        file = Path(path) / "preprocessor_config.json"
        if file.is_file():
            cfg = json.loads(file.read_text())
        size = cfg.get("size") or {}
        side = size.get("longest_edge") or size.get("shortest_edge") or default_side
        return cls(int(size.get("height", side)), int(size.get("width", side)),
                   tuple(cfg.get("image_mean") or default_stats[0]), tuple(cfg.get("image_std") or default_stats[1]))

    def __call__(self, images_bgr: list[np.ndarray], dev: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB for a list of uint8 BGR images of any sizes."""
        rgb = np.stack([cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (self.width, self.height),
                                   interpolation=cv2.INTER_LINEAR) for img in images_bgr]).astype(np.float32)
        norm = ((rgb / 255.0 - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)
        return torch.from_numpy(norm).permute(0, 3, 1, 2).to(dev, dtype)


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w) logits -> (H, W) float32 numpy at the image's size."""
    up = torch.nn.functional.interpolate(logits[None, None].float(), size=size, mode="bilinear", align_corners=False)
    return up[0, 0].cpu().numpy()
