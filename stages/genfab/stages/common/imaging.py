"""Images as every stage reads and writes them: decoding inputs (with the reasons a run records per
sample), PNG in and out, float <-> uint8 and PSNR. Written once; pipelines import these."""

from __future__ import annotations

import math

import cv2
import numpy as np

from genfab.stages.runtime import SampleError
from genfab.stages.runtime.pictures import open_image, probe


def decode_rgb(data: bytes, what: str = "the input image") -> np.ndarray:
    """An input image as (H, W, 3) uint8 RGB, upright (grey and RGBA converted, EXIF orientation
    applied); what the decoding policy refuses (`Empty`, `Unreadable`, `TooLarge`) is a SampleError."""
    return np.asarray(open_image(data, what))


def decode_png(data: bytes, flags: int = cv2.IMREAD_UNCHANGED, *, bgr: bool = False,
               what: str = "an upstream output") -> np.ndarray:
    """An upstream stage's image (a trusted layout, any channel count): colour comes back as RGB,
    or as OpenCV's BGR(A) with `bgr=True`. Held to the decoding policy's bounds like any input: the
    folder may have been written over."""
    probe(data, what)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        pixels = None
    if pixels is None:
        raise SampleError("Unreadable", f"{what} cannot be decoded (was it overwritten?)")
    if bgr or pixels.ndim == 2:
        return pixels
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)


PNG_FILTER = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH] if hasattr(cv2, "IMWRITE_PNG_FILTER") else []
"""Paeth on every row instead of libpng's trial of all five filters per row: within 1 % of the size on
photographs at 35-40 % less time (benchmarks/results/relighting.md). An OpenCV without the flag keeps
the per-row choice; the pixels are the same either way."""


def encode_png(pixels: np.ndarray, *, bgr: bool = False, compression: int = 3) -> bytes:
    """(H, W, 3|4) RGB(A) (OpenCV's BGR(A) with `bgr=True`) or (H, W) uint8/uint16 as a lossless PNG;
    a bool mask becomes 0/255. `compression` is zlib's level (1: fast, for intermediates)."""
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 3 and not bgr:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, compression, *PNG_FILTER])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {pixels.shape}")
    return png.tobytes()


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return pixels.astype(np.float32) * (1.0 / 255.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float in [0, 1] (clipped) -> uint8, rounded."""
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of images in [0, 1]; identical images give 120 dB (the MSE floor is 1e-12), not
    infinity, so metrics stay valid JSON."""
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two float images in [0, 1]."""
    return psnr_from_mse(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def inverse_depth_bounds(depths: list[np.ndarray], pixels: int = 1 << 18) -> tuple[float, float] | None:
    """The 2nd and 98th percentiles of inverse depth over a sequence's valid pixels (a strided sample of
    about `pixels` of them), for `depth_preview`: one scale for a video's frames (no flicker from frame
    to frame, and one percentile for the sequence instead of one per frame); None when no pixel has depth."""
    total = sum(d.size for d in depths)
    step = max(1, total // pixels)
    sampled = np.concatenate([d.reshape(-1)[::step] for d in depths]) if depths else np.empty(0)
    sampled = sampled[sampled > 0]
    if sampled.size == 0:
        return None
    lo, hi = np.percentile(1.0 / np.maximum(sampled, 1e-6), [2, 98])
    return float(lo), float(hi)


def depth_preview(depth: np.ndarray, bounds: tuple[float, float] | None = None) -> np.ndarray:
    """A colour-mapped RGB view of a depth map (near = warm), for people; the data lives elsewhere.
    Inverse depth maps onto the colours between `bounds` (a sequence's `inverse_depth_bounds`, so that
    its frames share one scale), by default this map's own 2nd and 98th percentiles."""
    valid = depth > 0
    bounds = bounds if bounds is not None else inverse_depth_bounds([depth])
    if bounds is None:  # no pixel has depth
        return np.zeros((*depth.shape, 3), np.uint8)
    inverse = np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0.0)
    lo, hi = bounds
    scaled = np.clip((inverse - lo) / max(hi - lo, 1e-9), 0, 1)
    coloured = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(valid[..., None], coloured, 0).astype(np.uint8)
