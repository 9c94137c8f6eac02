"""Stand-in of sam2.sam2_image_predictor (see ../README.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
from segment_anything._fill import flood


class SAM2ImagePredictor:
    def __init__(self, sam_model: Any, mask_threshold: float = 0.0, **kwargs: Any) -> None:
        self.model = sam_model
        self._features: dict[str, Any] | None = None
        self._orig_hw: list[tuple[int, int]] | None = None

    def set_image(self, image: np.ndarray) -> None:
        self.image = image
        self._orig_hw = [image.shape[:2]]
        self._features = {"image_embed": None}

    def predict(self, point_coords: np.ndarray | None = None, point_labels: np.ndarray | None = None,
                box: np.ndarray | None = None, mask_input: np.ndarray | None = None, multimask_output: bool = True,
                return_logits: bool = False, normalize_coords: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._features is None:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        positive = point_coords[list(point_labels).index(1)]
        mask = flood(self.image, positive, 30, box).astype(np.float32)
        masks = np.stack([mask] * (3 if multimask_output else 1))
        return masks, np.full(len(masks), 0.95, np.float32), np.zeros((len(masks), 256, 256), np.float32)
