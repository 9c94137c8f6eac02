"""MoGe v1 (microsoft/MoGe, the lab's vistadream depth model) behind the scene pipelines' depth interface.

MoGe is research code installed from its repository at a pinned commit by `images/moge/Dockerfile`
(with the utils3d commit its pyproject pins); this module imports `moge.model.v1` at run time and is
the only genfab code that knows its interface. `MoGeModel.infer` gives, for the whole image, a point
map, a scale-invariant depth (`points[..., 2]` plus the shift it recovers), intrinsics normalised by
the image size (focal from the point map, principal point at the centre) and a validity mask. genfab
keeps the depth everywhere (`apply_mask=False`, as the seed's `dpt` is dense), scales K to pixels,
and passes the mask on as the confidence that becomes `dpt_conf_mask`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.stages.models.placement import Placement
from genfab.stages.models.research import import_research
from genfab.stages.runtime import BadInput
from genfab.stages.scene.depth import DepthResult
from genfab.stages.scene.geometry import intrinsics_from_fov, sanitize_depth

log = logging.getLogger("genfab.stages")

WEIGHTS = "model.pt"
"""MoGe's checkpoint file (`{"model_config": ..., "model": state_dict}`), as its hub repositories hold it."""
MARKERS = (WEIGHTS,)
"""What makes a folder under the model location a MoGe model (it has no config.json)."""


def pixel_intrinsics(normalised: np.ndarray, width: int, height: int) -> np.ndarray:
    """MoGe's K (x in image widths, y in image heights) in pixels: row 0 times W, row 1 times H."""
    scaled: np.ndarray = np.asarray(normalised, np.float64) * np.array([[width], [height], [1.0]])
    return scaled


class MoGe:
    """MoGe v1 loaded once per shard; `__call__` per image (uint8 RGB (H, W, 3))."""

    def __init__(self, path: Path, placement: Placement, fallback_fov: float) -> None:
        v1 = import_research("moge", "model.v1")
        weights = path / WEIGHTS
        if not weights.is_file():
            raise BadInput(f"MoGe weights: {path} holds no {WEIGHTS} (vistadream.mogeModel names a copy of "
                           "Ruicheng/moge-vitl under the model location)")
        self.placement = placement
        self.fallback_fov = fallback_fov
        # MoGe runs its network in fp32 weights under fp16 autocast on CUDA (its own default).
        self.model: Any = placement.place(v1.MoGeModel.from_pretrained(str(weights)).float())
        self.fp16 = placement.device.type == "cuda"

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> DepthResult:
        height, width = rgb.shape[:2]
        image = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.placement.device)
        image = image.permute(2, 0, 1).float() / 255.0
        out = self.model.infer(image, apply_mask=False, use_fp16=self.fp16)
        K = pixel_intrinsics(out["intrinsics"].float().cpu().numpy(), width, height)
        fov = math.degrees(2.0 * math.atan(0.5 * width / K[0, 0])) if K[0, 0] > 0 else math.nan
        source = "model"
        if not 1.0 < fov < 179.0:  # a point map MoGe recovers no focal from (a degenerate view)
            log.warning("MoGe gave no usable field of view (%s); using focalPriorFov %.1f", fov, self.fallback_fov)
            fov, source = self.fallback_fov, "prior"
            K = intrinsics_from_fov(width, height, fov)
        return DepthResult(sanitize_depth(out["depth"].float().cpu().numpy()), K,
                           confidence=out["mask"].float().cpu().numpy(), fov_degrees=fov, fov_source=source)
