"""Relative depth for soft-shading normals: a transformers depth model (Depth Anything, DPT) from
the model location, batched on the GPU (resize and normalisation on the device). Normals are
derived from its output in `shading`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genfab.stages.models.placement import Placement
from genfab.stages.models.preprocess import IMAGENET_DEFAULT, Preprocess, upsample

DEFAULT_SIDE = 518  # Depth Anything's training resolution (a multiple of its 14 px patches)


class DepthModel:
    def __init__(self, path: Path, model_id: str, placement: Placement) -> None:
        from transformers import AutoModelForDepthEstimation

        self.model_id = model_id
        self.placement = placement
        self.model = placement.place(AutoModelForDepthEstimation.from_pretrained(path, dtype=placement.dtype))
        self.pre = Preprocess.from_model_dir(path, DEFAULT_SIDE, IMAGENET_DEFAULT)

    @torch.inference_mode()
    def disparity(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Relative inverse depth (larger = closer), float32 at each image's size."""
        pixels = self.pre(images, self.placement.device, self.model.dtype)
        out = self.model(pixel_values=pixels).predicted_depth  # (B, h, w)
        return [upsample(out[i], img.shape[:2]).cpu().numpy() for i, img in enumerate(images)]
