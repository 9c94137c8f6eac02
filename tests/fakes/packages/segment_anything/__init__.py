"""Stand-in of segment-anything 1.0 (see ../README.md): `SamPredictor` and `sam_model_registry`."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from segment_anything._fill import features, flood
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam

TOLERANCES = (12, 30, 60)
"""The three 'multimask' outputs: flood fills of growing colour tolerance."""


def _build(checkpoint: str | None = None) -> Sam:
    model = Sam(ImageEncoderViT(img_size=1024), PromptEncoder(), MaskDecoder(), [0.0] * 3, [1.0] * 3)
    if checkpoint is not None:
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return model


sam_model_registry: dict[str, Any] = {"default": _build, "vit_h": _build, "vit_l": _build, "vit_b": _build}


class SamPredictor:
    def __init__(self, sam_model: Sam) -> None:
        self.model = sam_model
        self.reset_image()

    def reset_image(self) -> None:
        self.is_image_set = False
        self.features: torch.Tensor | None = None

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        h, w = image.shape[:2]
        side = self.model.image_encoder.img_size
        scale = side / max(h, w)
        self.original_size = (h, w)
        self.input_size = (int(h * scale + 0.5), int(w * scale + 0.5))
        self.image = image
        self.features = torch.from_numpy(features(image, side // 16))[None]
        self.is_image_set = True

    def predict(self, point_coords: np.ndarray | None = None, point_labels: np.ndarray | None = None,
                box: np.ndarray | None = None, mask_input: np.ndarray | None = None, multimask_output: bool = True,
                return_logits: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        positive = point_coords[list(point_labels).index(1)] if point_coords is not None else None
        if positive is None and box is not None:
            b = np.asarray(box).reshape(-1)
            positive = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        masks = np.stack([flood(self.image, positive, t, box) for t in TOLERANCES])
        if not multimask_output:
            masks = masks[1:2]
        scores = np.array([0.9 - 0.1 * abs(i - 1) for i in range(len(masks))], np.float32)
        logits = np.where(masks, 8.0, -8.0).astype(np.float32)
        low = np.stack([np.asarray(torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], (256, 256))[0, 0])
                        for m in logits])
        return (logits if return_logits else masks), scores, low


build_sam_vit_h = build_sam_vit_l = build_sam_vit_b = build_sam = partial(_build)
