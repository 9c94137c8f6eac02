"""A difix triplet's quality figures (declared in `genfab.api.quality.DIFIX_TRIPLET`: names, formulas,
ranges and what a bad value looks like), computed by the export stage from the pixels it already
decoded, for every triplet it keeps."""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from genfab.api.quality import DARK_LEVEL, DIFIX_TRIPLET, PSNR_CAP_DB, TRIPLET_SIDE_PX
from genfab.stages.difix.files import to_8bit_bgr


def small(pixels: np.ndarray) -> np.ndarray:
    """8-bit BGR of every k-th pixel in each direction, k the least that leaves at most
    `TRIPLET_SIDE_PX` a side: picked, not averaged, so the frame is not read whole again (a resize of a
    1080p frame cost a fifth of the export's time per triplet)."""
    step = max(1, -(-max(pixels.shape[:2]) // TRIPLET_SIDE_PX))
    return to_8bit_bgr(np.ascontiguousarray(pixels[::step, ::step]))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def triplet_figures(render: np.ndarray, target: np.ndarray, angle_deg: float) -> dict[str, float]:
    """Every figure of `DIFIX_TRIPLET` for one triplet (rounded for its meta.json); the render and the
    target have the same size (the export checked)."""
    r, t = small(render), small(target)
    gray_r, gray_t = cv2.cvtColor(r, cv2.COLOR_BGR2GRAY), cv2.cvtColor(t, cv2.COLOR_BGR2GRAY)
    window = min(7, *gray_r.shape) // 2 * 2 + 1  # odd, at most the image
    figures = {
        "renderPsnr": psnr(r, t),
        "renderSsim": float(structural_similarity(gray_r, gray_t, win_size=window,  # type: ignore[no-untyped-call]
                                                  data_range=255)) if window >= 3 else 1.0,
        "renderDark": float(np.count_nonzero(gray_r <= DARK_LEVEL) / gray_r.size),
        "refAngleDeg": float(angle_deg),
    }
    assert list(figures) == [f.name for f in DIFIX_TRIPLET]  # one declaration: the same names, in order
    return {name: round(value, 4) for name, value in figures.items()}
