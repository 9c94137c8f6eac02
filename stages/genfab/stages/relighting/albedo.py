"""Stage 2's albedo methods (seed 003): Multi-Scale Retinex, the LAB method, plug-in backends, the
blend with the original, all on the foreground only and at the original size.

Images here are float32 BGR in 0..1 with a boolean person mask (H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from genfab.stages.relighting.blur import fast_blur, masked_blur

Blur = Callable[[np.ndarray, float], np.ndarray]
EPS = 1.0 / 255.0
RETINEX_VARIANT = "msrcp"
"""Which Multi-Scale Retinex `retinex` runs (recorded in each sample's albedo params): MSR on the
intensity with each pixel's chromaticity kept (`multiscale_retinex`)."""


def multiscale_retinex(image: np.ndarray, mask: np.ndarray, scales: Sequence[float],
                       blur: Blur = fast_blur) -> np.ndarray:
    """MSR with chromaticity preservation (Petro, Sbert and Morel's MSRCP): the mean over scales of
    log(I) − log(G_σ * I) on the intensity I (the channel mean), the illumination estimate G_σ * I
    taken over the person's pixels only, stretched to 0..1 between its 1st and 99th percentiles
    inside the mask; each pixel's colour is then scaled by new/old intensity (capped so no channel
    clips). Lighting goes, the colour stays: hue and saturation are the input's (Retinex per
    channel would grey every colour towards the image's mean). Zero outside the mask."""
    if not mask.any():
        raise ValueError("the foreground mask is empty")
    intensity = image.mean(axis=2)
    log_i = np.log(intensity + EPS)
    r = np.zeros_like(intensity)
    for sigma in scales:
        r += log_i - np.log(masked_blur(intensity, mask, float(sigma), blur) + EPS)
    r /= len(scales)
    lo, hi = np.percentile(r[mask], (1.0, 99.0))
    target = np.clip((r - np.float32(lo)) / np.float32(max(float(hi - lo), 1e-6)), 0.0, 1.0)
    gain = np.minimum(target / (intensity + EPS), 1.0 / (image.max(axis=2) + EPS))
    out = np.clip(image * gain[..., None], 0.0, 1.0)
    return (out * mask[..., None]).astype(np.float32)


def lab_albedo(image: np.ndarray, mask: np.ndarray, sigma: float | None = None,
               blur: Blur = fast_blur) -> np.ndarray:
    """The LAB method: divide lightness by its smooth (large-scale) component over the person and
    rescale to the person's mean lightness; chroma (a, b) is kept. Zero outside the mask."""
    if not mask.any():
        raise ValueError("the foreground mask is empty")
    lab = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_BGR2Lab)
    lightness = lab[..., 0]
    s = sigma if sigma is not None else max(4.0, 0.08 * max(mask.shape))
    shading = masked_blur(lightness, mask, s, blur)
    flat = lightness / np.maximum(shading, 1.0) * float(lightness[mask].mean())
    lab[..., 0] = np.clip(flat, 0.0, 100.0)
    out = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR), 0.0, 1.0)
    return (out * mask[..., None]).astype(np.float32)


def blend_original(albedo: np.ndarray, image: np.ndarray, mask: np.ndarray, fraction: float) -> np.ndarray:
    """Mix `fraction` (seed: 15-25%) of the original back in, against over-brightening."""
    out = (1.0 - fraction) * albedo + fraction * image
    return (np.clip(out, 0.0, 1.0) * mask[..., None]).astype(np.float32)


def choose_method(names: Sequence[str], probabilities: Sequence[float], rng: np.random.Generator) -> str:
    """The seed's fallback chain: each method is used with its probability, else the next one is tried
    (the last has probability 1, so every sample gets one). Always draws one number per method tried."""
    for name, p in zip(names, probabilities, strict=True):
        if rng.random() < p:
            return name
    return names[-1]
