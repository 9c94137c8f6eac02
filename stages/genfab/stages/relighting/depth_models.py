"""Relative depth for soft-shading normals: a transformers depth model (Depth Anything, DPT) from
the model location, batched on the GPU. Normals are derived from its output in `shading`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genfab.stages.relighting.torch_util import Preprocess, device, dtype_for, upsample
from genfab.stages.runtime import StageContext
from genfab.stages.runtime.models import resolve_model

DEFAULT_SIDE = 518  # Depth Anything's training resolution (a multiple of its 14 px patches)


class DepthModel:
    def __init__(self, path: Any, model_id: str) -> None:
        from transformers import AutoModelForDepthEstimation

        self.model_id = model_id
        self.device = device()
        self.model = AutoModelForDepthEstimation.from_pretrained(path, dtype=dtype_for(self.device))
        self.model = self.model.to(self.device).eval()
        self.pre = Preprocess.from_model_dir(path, DEFAULT_SIDE, ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))

    @torch.inference_mode()
    def disparity(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Relative inverse depth (larger = closer), float32 at each image's size."""
        out = self.model(pixel_values=self.pre(images, self.device, self.model.dtype)).predicted_depth  # (B, h, w)
        return [upsample(out[i], img.shape[:2]) for i, img in enumerate(images)]


def load_normals_model(depth_model: str, ctx: StageContext) -> DepthModel:
    """The depth model behind `auto`, `depth-anything` and `dpt` (AutoModelForDepthEstimation loads either)."""
    return DepthModel(resolve_model(depth_model, ctx.workdir / "models", ctx.env), depth_model)
