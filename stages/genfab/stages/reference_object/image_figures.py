"""A reference-object image's quality figures (declared in `genfab.api.quality.REFERENCE_IMAGE`:
names, formulas, ranges and what a bad value looks like), computed by the annotation stage from the
mask it labels, PerSAM's mask before SAM2 refined it, and the label's polygon."""

from __future__ import annotations

import cv2
import numpy as np

from genfab.api.quality import REFERENCE_IMAGE
from genfab.stages.reference_object.yolo import iou, rasterize


def image_figures(rgb: np.ndarray, mask: np.ndarray, persam_mask: np.ndarray | None, polygon: np.ndarray
                  ) -> dict[str, float]:
    """Every figure of `REFERENCE_IMAGE` that was measured for one image (`maskAgreement` needs PerSAM's
    mask), rounded for its params."""
    h, w = mask.shape
    binary = mask.astype(bool)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    figures: dict[str, float] = {
        "objectArea": float(binary.mean()),
        "objects": float(cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)[0] - 1),
        "polygonCoverage": iou(rasterize(np.asarray(polygon, np.float64) / [w, h], w, h), binary)
        if len(polygon) >= 3 else 0.0,  # the polygon in pixels, as `mask_to_polygon` traces it
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F, ksize=1).var()),
    }
    if persam_mask is not None:
        figures["maskAgreement"] = iou(persam_mask.astype(bool), binary)
    names = [f.name for f in REFERENCE_IMAGE]
    assert set(figures) <= set(names)  # one declaration: only declared names
    return {name: round(figures[name], 4) for name in names if name in figures}
