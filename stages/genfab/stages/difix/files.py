"""The export's image handling: a file is checked by decoding it and copied byte for byte when it is
already in the wanted format and 8-bit RGB as PIL opens it (a JPEG target stays the camera's JPEG: no
second compression), else encoded once as 8-bit RGB, deterministically (the same pixels give the same
bytes). Difix3D's `PairedDataset` stacks the render with the reference as `to_tensor(Image.open(...))`:
an RGBA render or a grayscale ground truth would give 4 or 1 channels against 3 and stop training."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from genfab.stages.common.imaging import encode_png
from genfab.stages.runtime.pictures import PictureRefused, probe

JPEG_QUALITY = 95
"""Only for targets and references whose source is not already a JPEG."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8"


class Unreadable(ValueError):
    """A source file that is not decoded: `reason` is the drop's (`unreadable`; `empty` for 0 bytes,
    `too_large` above the decoding policy's pixel bound)."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


POLICY_REASONS = {"Empty": "empty", "TooLarge": "too_large", "Unreadable": "unreadable"}
"""The decoding policy's reasons as `dropped_samples.csv` spells its own."""


def kind(data: bytes) -> str:
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpg"
    return "other"


def decode(data: bytes, what: str) -> np.ndarray:
    """Every pixel decoded (a check, not just the header), as stored: the export copies files byte for
    byte and Difix3D's dataset opens them without EXIF orientation. The header is held to the decoding
    policy first (`genfab.stages.runtime.pictures`: empty, unreadable, above the pixel bound); a JPEG
    must also end with its EOI marker, since decoders fill a truncated JPEG's missing rows in grey
    without failing."""
    try:
        probe(data, what)
    except PictureRefused as exc:
        raise Unreadable(exc.message, POLICY_REASONS.get(exc.reason, "unreadable")) from None
    if kind(data) == "jpg" and b"\xff\xd9" not in data[-64:]:
        raise Unreadable(f"{what} is a truncated JPEG (no end-of-image marker)")
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV asserts where its decoder gives up: the same as a None
        pixels = None
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


def pil_mode(data: bytes) -> str:
    """The mode PIL (and so Difix3D's dataset) opens the file in: `RGB`, `RGBA`, `L`, `P`, `I;16`…"""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.mode)
    except Exception:  # decoded by OpenCV already: a file PIL cannot read is converted
        return "unknown"


def conversion(data: bytes, pixels: np.ndarray) -> str | None:
    """What making the file 8-bit RGB changes (`RGBA -> RGB (alpha dropped)`), or None when it is."""
    mode = pil_mode(data)
    if mode == "RGB" and pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:
        return None
    what = {"RGBA": "alpha dropped", "LA": "alpha dropped, grey to 3 channels", "L": "grey to 3 channels",
            "P": "palette expanded", "I;16": "16-bit grey to 8-bit, 3 channels",
            "I": "32-bit grey to 8-bit, 3 channels"}.get(mode, "8-bit, 3 channels")
    if pixels.dtype != np.uint8 and "8-bit" not in what:
        what += f", {pixels.dtype} to 8-bit"
    return f"{mode} -> RGB ({what})"


def as_format(data: bytes, pixels: np.ndarray, fmt: str) -> tuple[bytes, str | None]:
    """The file in `fmt` (`png`/`jpg`) as 8-bit RGB, and what that converted (None: nothing). Its own
    bytes when it already is both, else encoded once."""
    converted = conversion(data, pixels)
    if kind(data) == fmt and converted is None:
        return data, None
    rgb = to_8bit_bgr(pixels)
    if fmt == "png":
        return encode_png(rgb, bgr=True, compression=1), converted
    ok, out = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for an array of shape {pixels.shape}")
    return bytes(out.tobytes()), converted


def mask_fraction(pixels: np.ndarray) -> float:
    """Fraction of the image the subject covers (mask values above half)."""
    gray = pixels if pixels.ndim == 2 else pixels[..., 0]
    limit = 32767 if gray.dtype == np.uint16 else 127
    return round(float((gray > limit).mean()), 6)
