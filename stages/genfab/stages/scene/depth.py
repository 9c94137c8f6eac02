"""The depth models of the scene pipelines, loaded from the model location through the model-stage base.

- `DepthPro` (default): transformers' Depth Pro, metric depth and its own horizontal field of view,
  from which the intrinsics follow.
- `DepthAnythingV2`: transformers' Depth Anything V2 with a focal prior (`focalPriorFov`): metric
  checkpoints give metres, relative ones inverse depth (turned into a depth of median 1).

Images are uint8 RGB (H, W, 3) in and out, as the seed's `rgb_hw3`. Pre- and post-processing run in
torch on the model's device (transformers' Depth Pro processor needs torchvision, which the stage
images do not carry; what it does is a rescale, a normalisation and a resize, done here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from genfab.stages.models.placement import Placement
from genfab.stages.models.preprocess import IMAGENET_DEFAULT, IMAGENET_STANDARD, Preprocess, upsample
from genfab.stages.scene.geometry import intrinsics_from_fov, sanitize_depth

log = logging.getLogger("genfab.stages")
DEPTH_ANYTHING_SIDE = 518


@dataclass(frozen=True)
class DepthResult:
    depth: np.ndarray
    """(H, W) float32 depth in metres (0 = none); NaN and Inf already removed."""
    K: np.ndarray
    """3x3 intrinsics for this image size."""
    confidence: np.ndarray | None = None
    """(H, W) in [0, 1] when the model gives one."""
    fov_degrees: float | None = None
    """The horizontal field of view the intrinsics come from."""
    fov_source: str = "prior"
    """`model` (predicted) or `prior` (`focalPriorFov`)."""


class DepthPredictor(Protocol):
    def __call__(self, rgb: np.ndarray) -> DepthResult: ...


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


class DepthPro:
    """Depth Pro: canonical inverse depth and a field of view; metric depth = focal / (inverse
    depth * width) at the image's own width (as transformers' post-processing does)."""

    def __init__(self, path: Path, placement: Placement, fallback_fov: float) -> None:
        from transformers import DepthProForDepthEstimation

        self.placement = placement
        self.fallback_fov = fallback_fov
        self.model: Any = placement.place(DepthProForDepthEstimation.from_pretrained(path, dtype=placement.dtype))
        config = self.model.config
        side = round(config.patch_size / min(config.scaled_images_ratios))  # 1536 for the released model
        self.pre = Preprocess.from_model_dir(path, side, IMAGENET_STANDARD)

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> DepthResult:
        height, width = rgb.shape[:2]
        pixels = self.pre([_bgr(rgb)], self.placement.device, self.model.dtype)
        out = self.model(pixel_values=pixels)
        fov = float(out.field_of_view[0].float()) if out.field_of_view is not None else None
        source = "model"
        if fov is None or not 1.0 < fov < 179.0:  # a checkpoint without its FOV head, or a degenerate view
            log.warning("Depth Pro gave no usable field of view (%s); using focalPriorFov %.1f", fov, self.fallback_fov)
            fov, source = self.fallback_fov, "prior"
        focal = 0.5 * width / np.tan(np.radians(fov) / 2)
        inverse = upsample(out.predicted_depth[0].float() * (width / focal), (height, width))
        depth = 1.0 / torch.clamp(inverse, min=1e-4, max=1e4)
        return DepthResult(sanitize_depth(depth.cpu().numpy()), intrinsics_from_fov(width, height, fov),
                           fov_degrees=fov, fov_source=source)


class DepthAnythingV2:
    """Depth Anything V2 with a focal prior: metric checkpoints (`depth_estimation_type: metric`)
    predict metres; relative ones predict inverse depth, inverted and scaled to a median of 1 (the
    scene's scale is then arbitrary but consistent within the sample)."""

    def __init__(self, path: Path, placement: Placement, fov_degrees: float) -> None:
        from transformers import AutoModelForDepthEstimation

        self.placement = placement
        self.fov = fov_degrees
        self.model: Any = placement.place(AutoModelForDepthEstimation.from_pretrained(path, dtype=placement.dtype))
        self.metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"
        self.pre = Preprocess.from_model_dir(path, DEPTH_ANYTHING_SIDE, IMAGENET_DEFAULT)

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> DepthResult:
        height, width = rgb.shape[:2]
        pixels = self.pre([_bgr(rgb)], self.placement.device, self.model.dtype)
        out = upsample(self.model(pixel_values=pixels).predicted_depth[0].float(), (height, width))
        if self.metric:
            depth = F.relu(out)
        else:
            disparity = torch.clamp(out, min=float(out.max()) * 1e-3 + 1e-8)
            depth = 1.0 / disparity
            depth = depth / torch.median(depth)
        return DepthResult(sanitize_depth(depth.cpu().numpy()), intrinsics_from_fov(width, height, self.fov),
                           fov_degrees=self.fov)
