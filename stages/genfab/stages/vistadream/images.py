"""Reading and writing the pipeline's images: uint8 RGB in, PNGs out (numpy, OpenCV, Pillow)."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from genfab.stages.common.imaging import unreadable
from genfab.stages.runtime import SampleError

MAX_PIXELS = 100_000_000
"""An input above this is dropped unread (`TooLarge`); anything below is fitted to `maxResolution`."""


def decode_rgb(data: bytes) -> np.ndarray:
    """An input image as (H, W, 3) uint8 RGB (grey and RGBA are converted)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise SampleError("TooLarge", f"image is {img.width}x{img.height}; at most {MAX_PIXELS} pixels")
                return np.asarray(img.convert("RGB"))
    except SampleError:
        raise
    except Exception as exc:
        raise unreadable(exc) from None


def decode_png(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """An upstream stage's PNG (RGB images come back as RGB)."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None:
        raise SampleError("Unreadable", "an upstream output cannot be decoded (was it overwritten?)")
    return pixels[..., ::-1].copy() if pixels.ndim == 3 else pixels


def encode_png(pixels: np.ndarray) -> bytes:
    """RGB (H, W, 3) or single-channel (H, W) uint8/uint16 as a PNG."""
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    ok, png = cv2.imencode(".png", pixels[..., ::-1] if pixels.ndim == 3 else pixels,
                           [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {pixels.shape}")
    return png.tobytes()


def depth_preview(depth: np.ndarray) -> np.ndarray:
    """A colour-mapped view of a depth map (near = warm), for people; the data is in frames.npz."""
    valid = depth > 0
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    inverse = np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0.0)
    lo, hi = np.percentile(inverse[valid], [2, 98])
    scaled = np.clip((inverse - lo) / max(hi - lo, 1e-9), 0, 1)
    coloured = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(valid[..., None], coloured, 0).astype(np.uint8)
