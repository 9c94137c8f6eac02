"""The export's image handling: a file is checked by decoding it and copied byte for byte when it is
already in the wanted format (a JPEG target stays the camera's JPEG: no second compression), else
encoded once, deterministically (the same pixels give the same bytes)."""

from __future__ import annotations

import cv2
import numpy as np

from genfab.stages.common.imaging import encode_png

JPEG_QUALITY = 95
"""Only for targets and references whose source is not already a JPEG."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8"


class Unreadable(ValueError):
    """A source file that cannot be decoded (empty, truncated, not an image)."""


def kind(data: bytes) -> str:
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpg"
    return "other"


def decode(data: bytes, what: str) -> np.ndarray:
    """Every pixel decoded (a check, not just the header); a JPEG must also end with its EOI marker,
    since decoders fill a truncated JPEG's missing rows in grey without failing."""
    if kind(data) == "jpg" and b"\xff\xd9" not in data[-64:]:
        raise Unreadable(f"{what} is a truncated JPEG (no end-of-image marker)")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise Unreadable(f"{what} cannot be decoded as an image ({len(data)} bytes)")
    return pixels


def to_8bit_bgr(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.float32) / (65535.0 if pixels.dtype == np.uint16 else 1.0) * 255.0 + 0.5
                  ).clip(0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    return pixels


def as_format(data: bytes, pixels: np.ndarray, fmt: str) -> bytes:
    """The file in `fmt` (`png`/`jpg`): its own bytes when it already is, else encoded once."""
    if kind(data) == fmt:
        return data
    if fmt == "png":
        return encode_png(pixels, bgr=True, compression=1)
    ok, out = cv2.imencode(".jpg", to_8bit_bgr(pixels), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for an array of shape {pixels.shape}")
    return bytes(out.tobytes())


def mask_fraction(pixels: np.ndarray) -> float:
    """Fraction of the image the subject covers (mask values above half)."""
    gray = pixels if pixels.ndim == 2 else pixels[..., 0]
    limit = 32767 if gray.dtype == np.uint16 else 127
    return round(float((gray > limit).mean()), 6)
