"""The relighting pair's quality figures (declared in `genfab.api.quality.RELIGHTING_PAIR`: names,
formulas, ranges and what a bad value looks like), computed in the recombine stage's worker for every
sample, inside the person mask, on the input and the composite as written."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000

from genfab.api.quality import BLOCK_PX, COLOUR_SAMPLES, DARK_PERCENTILE, LIT_LIGHTNESS, RELIGHTING_PAIR


def lab(image_bgr: np.ndarray) -> np.ndarray:
    """CIELAB (L* 0-100, a*, b*) of an 8-bit sRGB image, D65 (OpenCV's float conversion)."""
    return cv2.cvtColor(image_bgr.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_BGR2Lab)


STEP_FLOOR = 0.5
"""Grey levels added to both mean steps: a flat region is 1 (no blocks), not 0/0."""


def blockiness(gray: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute step across the `BLOCK_PX` grid's lines (rows and columns 8k+7 to 8k+8) / the mean
    absolute step across the blocks' middles (8k+3 to 8k+4), between neighbours both in `region`: about
    1 for a picture without blocks, above 1 where 8×8 blocks show (a JPEG's, or one the relighting
    amplified). Only those rows and columns are read: a quarter of the picture."""
    g = gray.astype(np.int16)
    half = BLOCK_PX // 2
    sums = {"on": [0.0, 0], "off": [0.0, 0]}
    for view, inside in ((g, region), (g.T, region.T)):
        for key, first in (("on", BLOCK_PX - 1), ("off", half - 1)):
            a, b = view[first:-1:BLOCK_PX], view[first + 1::BLOCK_PX]
            n = min(len(a), len(b))
            both = inside[first:-1:BLOCK_PX][:n] & inside[first + 1::BLOCK_PX][:n]
            steps = np.abs(a[:n] - b[:n])[both]
            sums[key][0] += float(steps.sum())
            sums[key][1] += int(steps.size)
    on, off = (total / count if count else 0.0 for total, count in sums.values())
    return (on + STEP_FLOOR) / (off + STEP_FLOOR)


def sampled(image_bgr: np.ndarray, region: np.ndarray) -> np.ndarray:
    """CIELAB of the region's pixels on a regular grid of at most about `COLOUR_SAMPLES` of them (every
    pixel of a small mask): means and percentiles of a person's colours need no more, and converting
    only those keeps the figures a small part of the stage."""
    step = max(1, int(np.ceil(np.sqrt(np.count_nonzero(region) / COLOUR_SAMPLES))))
    picked = image_bgr[::step, ::step][region[::step, ::step]]
    return lab(picked[:, None, :])[:, 0, :]


def saturation_ratio(before: np.ndarray, after: np.ndarray) -> float:
    """The output's saturation (ΣC*ab / ΣL*) over the input's, on the pixels whose input L* is at least
    `LIT_LIGHTNESS` (CIELAB rows of the same pixels). Dimmer lighting lowers C* and L* together, so it
    stays about 1 however dark the drawn shading; a greyed or washed-out colour lowers C* alone."""
    lit = before[:, 0] >= LIT_LIGHTNESS
    if not lit.any():
        return 1.0
    chroma_in = np.hypot(before[lit, 1], before[lit, 2]).sum()
    chroma_out = np.hypot(after[lit, 1], after[lit, 2]).sum()
    if chroma_in <= 1e-3:
        return 1.0
    return float((chroma_out / max(float(after[lit, 0].sum()), 1e-3)) / (chroma_in / float(before[lit, 0].sum())))


def pair_figures(input_bgr: np.ndarray, output_bgr: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Every figure of `RELIGHTING_PAIR` for one sample (rounded for its metadata); an empty mask
    measures nothing."""
    if not region.any():
        return {}
    before, after = sampled(input_bgr, region), sampled(output_bgr, region)
    gray_in, gray_out = (cv2.cvtColor(i, cv2.COLOR_BGR2GRAY) for i in (input_bgr, output_bgr))
    block_in = blockiness(gray_in, region)  # at least STEP_FLOOR / (255 + STEP_FLOOR): never 0
    figures = {
        "lightingChange": float(np.abs(after[:, 0] - before[:, 0]).mean()),
        "saturationRatio": saturation_ratio(before, after),
        "deltaE00": float(deltaE_ciede2000(before, after, channel_axis=-1).mean()),  # type: ignore[no-untyped-call]
        "darkLift": float(np.percentile(after[:, 0], DARK_PERCENTILE) - np.percentile(before[:, 0], DARK_PERCENTILE)),
        "blockiness": blockiness(gray_out, region) / block_in,
    }
    assert list(figures) == [f.name for f in RELIGHTING_PAIR]  # one declaration: the same names, in order
    return {name: round(value, 4) for name, value in figures.items()}
