"""Gaussian blur for Retinex's large sigmas (15, 80, 250 px): exact below a cut-off, and above it a
downsample -> small blur -> upsample pyramid whose total variance matches sigma².

A full-resolution 250 px Gaussian needs a ~2000-tap kernel per pass; the pyramid does the same
low-pass in a few small passes. The error against `cv2.GaussianBlur` at full sigma is bounded by
tests/unit/test_relighting_ops.py and measured in benchmarks/relighting.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

EXACT_MAX_SIGMA = 8.0
"""At or below this, the exact separable blur is already cheap."""
SMALL_SIGMA = 6.0
"""Blur left to do at the reduced size (in reduced pixels): enough taps to stay smooth."""


def exact_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """The reference: OpenCV's separable Gaussian at full sigma (kernel ±4σ for float images)."""
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


def fast_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Approximately `exact_blur(img, sigma)` for float32 images, in O(pixels) for any sigma."""
    if sigma <= EXACT_MAX_SIGMA:
        return exact_blur(img, sigma)
    h, w = img.shape[:2]
    factor = max(1, int(sigma / SMALL_SIGMA))
    # Pad to a multiple of the factor so area downsampling averages whole f×f blocks and the linear
    # upsampling lands back on the same pixel centres.
    pad_h, pad_w = (-h) % factor, (-w) % factor
    if pad_h or pad_w:
        img = cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101)
    ph, pw = img.shape[:2]
    # Area downsampling adds a box of width f (variance f²/12); linear upsampling a tent of half-width
    # f (f²/6): blur the reduced image only by what is left so the total stays sigma².
    rest = math.sqrt(max(sigma**2 - factor**2 / 4.0, 0.25)) / factor
    small = cv2.resize(img, (pw // factor, ph // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), rest, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(small, (pw, ph), interpolation=cv2.INTER_LINEAR)[:h, :w]


def masked_blur(img: np.ndarray, mask: np.ndarray, sigma: float,
                blur: Callable[[np.ndarray, float], np.ndarray] = fast_blur) -> np.ndarray:
    """Normalised convolution: the blur of `img` over the pixels inside `mask` only, so a black
    background does not darken the person's illumination estimate near the silhouette."""
    m = mask.astype(np.float32)
    weight = blur(m, sigma)
    weighted = blur(img * (m[..., None] if img.ndim == 3 else m), sigma)
    w = np.maximum(weight, 1e-4)
    return weighted / (w[..., None] if img.ndim == 3 else w)
