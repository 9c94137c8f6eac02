"""Stage 2's albedo methods (the lab's relighting document): Multi-Scale Retinex, the LAB method, plug-in backends, the
blend with the original, all on the foreground only and at the original size.

Images here are float32 BGR in 0..1 with a boolean person mask (H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from genfab.stages.relighting.blur import fast_blur, masked_blur

Blur = Callable[[np.ndarray, float], np.ndarray]
RETINEX_VARIANT = "msr-lightness"
"""Which Multi-Scale Retinex `retinex` runs (recorded in each sample's albedo params): MSR on the
CIELAB lightness with the input's a*, b* kept and the lift bounded (`multiscale_retinex`)."""

LIFT = (1.0, 2.0, 8.0)
"""Bounds on an albedo's lightness L* against the input's L0: at least L0, at most 2·L0 + 8·r, where
r = min(1, L0 / CHROMA_DARK) fades the 8 out towards black.
- Never below L0: a picture is its albedo times its shading, and shading is at most 1, so no albedo is
  darker than what the camera saw. (The LAB method rescales lightness to the person's mean: a face
  above a navy suit was darkened to the suit's level, its colour with it; with 0.5·L0 as the floor the
  method lost colour on 5 of every 6 samples that drew it.)
- At most 2·L0 + 8·r: Retinex and the LAB method flatten lighting by equalising lightness over the
  person, which reads a black suit as a shadow and lifts it to grey, amplifying its JPEG blocks and
  sensor noise with it; dark materials are dark albedo, so their lift is bounded (a shadowed face at
  L* 25 may still reach 58), and a black stays near black (L* 2.4 at most 5.8: the pair's `darkLift` was
  about 5 L* with a flat 8)."""


CHROMA_DARK, CHROMA_LIT = 20.0, 50.0
"""Input L* below which a pixel's a*, b* are kept as they are, and above which they scale with its
lift (smoothly in between)."""


def bounded_lift(lightness: np.ndarray, original: np.ndarray) -> np.ndarray:
    """`lightness` (L*, 0..100) within `LIFT` of the input's `original` L*."""
    low, gain, floor = LIFT
    ramp = np.clip(original / CHROMA_DARK, 0.0, 1.0)  # near black the floor fades: blacks stay black
    return np.clip(lightness, low * original, gain * original + floor * ramp).astype(np.float32)


def with_lightness(image: np.ndarray, lab: np.ndarray, lightness: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`image` (its CIELAB `lab`) with L* replaced by `lightness` (bounded by `bounded_lift`): every
    pixel keeps its hue; a dark pixel (L* < 20) its chroma too, so a lifted navy suit stays navy
    (scaling RGB by the lift multiplies the near-black chroma with it: royal blue); a lit one's
    chroma follows its lift. Zero outside the mask."""
    out_lab = lab.copy()
    original = lab[..., 0]
    out_lab[..., 0] = bounded_lift(lightness, original)
    # Where the input is well lit, a* and b* follow the lift as shading's would (an orange suit in
    # shadow is less chromatic, lifting it restores both); near black they are noise and JPEG chroma,
    # kept as they are.
    ratio = out_lab[..., 0] / np.maximum(original, 1e-3)
    lit = np.clip((original - CHROMA_DARK) / (CHROMA_LIT - CHROMA_DARK), 0.0, 1.0)
    out_lab[..., 1:] *= (1.0 + (ratio - 1.0) * lit * lit * (3.0 - 2.0 * lit))[..., None]
    out = np.clip(cv2.cvtColor(out_lab, cv2.COLOR_Lab2BGR), 0.0, 1.0)
    return (out * mask[..., None]).astype(np.float32)


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_BGR2Lab)


def multiscale_retinex(image: np.ndarray, mask: np.ndarray, scales: Sequence[float],
                       blur: Blur = fast_blur) -> np.ndarray:
    """Multi-Scale Retinex on the CIELAB lightness: the mean over scales of log(L) − log(G_σ * L), the
    illumination estimate G_σ * L taken over the person's pixels only, stretched between its 1st and
    99th percentiles inside the mask onto the person's own lightness range (1st to 99th percentile),
    then bounded against the input (`bounded_lift`) with a*, b* kept (`with_lightness`). Lighting
    goes, the colour stays (Retinex per channel would grey every colour towards the image's mean).
    Zero outside the mask."""
    if not mask.any():
        raise ValueError("the foreground mask is empty")
    lab = _lab(image)
    lightness = lab[..., 0]
    log_l = np.log(lightness + LOG_OFFSET)
    r = np.zeros_like(lightness)
    for sigma in scales:
        r += log_l - np.log(masked_blur(lightness, mask, float(sigma), blur) + LOG_OFFSET)
    r /= len(scales)
    lo, hi = np.percentile(r[mask], (1.0, 99.0))
    l_lo, l_hi = np.percentile(lightness[mask], (1.0, 99.0))
    unit = np.clip((r - np.float32(lo)) / np.float32(max(float(hi - lo), 1e-6)), 0.0, 1.0)
    return with_lightness(image, lab, np.float32(l_lo) + unit * np.float32(max(float(l_hi - l_lo), 1.0)), mask)


LOG_OFFSET = 1.0
"""Added to L* (0..100) before the logarithm: near-black pixels' tiny differences (JPEG steps of one
code value) are not blown up into contrast."""


def lab_albedo(image: np.ndarray, mask: np.ndarray, sigma: float | None = None,
               blur: Blur = fast_blur) -> np.ndarray:
    """The LAB method: divide lightness by its smooth (large-scale) component over the person and
    rescale to the person's mean lightness, bounded against the input (`bounded_lift`); chroma (a*,
    b*) is kept. Zero outside the mask."""
    if not mask.any():
        raise ValueError("the foreground mask is empty")
    lab = _lab(image)
    lightness = lab[..., 0]
    s = sigma if sigma is not None else max(4.0, 0.08 * max(mask.shape))
    shading = masked_blur(lightness, mask, s, blur)
    flat = lightness / np.maximum(shading, 1.0) * float(lightness[mask].mean())
    return with_lightness(image, lab, np.clip(flat, 0.0, 100.0), mask)


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
