"""Decoding and checking relighting's input portraits (8-bit BGR arrays, as OpenCV reads them); an
input is decoded at most at the working size (`maxSide`) where the format allows it. PNGs out and
intermediates in are `common.imaging`'s, in OpenCV's channel order (`encode`, `decode`)."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from genfab.stages.common.imaging import decode_png, encode_png
from genfab.stages.runtime import SampleError
from genfab.stages.runtime.pictures import orient, probe

MIN_SIDE = 16
encode = partial(encode_png, bgr=True, compression=1)
"""Relighting's PNGs: OpenCV's BGR(A) arrays, fast compression (intermediates and training data,
not archives)."""
decode = partial(decode_png, bgr=True)
"""An upstream stage's PNG as OpenCV's BGR(A)."""
REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the picture upright (EXIF orientation applied), from the file header; the
    decoding policy's refusals (`Empty`, `Unreadable`, `TooLarge`) before any pixel is decoded."""
    header = probe(data, "the input image")
    return (header.height, header.width) if header.orientation >= 5 else (header.width, header.height)


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after downscaling so the longer side is at most `max_side` (aspect kept)."""
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode_reduced(data: bytes, width: int, height: int, target: tuple[int, int]) -> np.ndarray | None:
    """Decode at 1/2, 1/4 or 1/8 size when that still covers `target` (JPEG decodes natively at those
    scales: far less time and memory than full size), then area-downscale to `target` exactly (sizes
    as stored: orientation is applied after)."""
    flag = next((fl for f, fl in REDUCED_FLAGS if width // f >= target[0] and height // f >= target[1]),
                cv2.IMREAD_COLOR)
    pixels = _imdecode(data, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        return None
    return cv2.resize(pixels, target, interpolation=cv2.INTER_AREA) if pixels.shape[1::-1] != target else pixels


def _imdecode(data: bytes, flag: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:  # OpenCV asserts on what its header check let through: unreadable, as a None is
        return None


def decode_color(data: bytes, max_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """An input portrait as uint8 BGR (H, W, 3), upright (EXIF orientation applied), its longer side at
    most `max_side`. Refuses, with a reason the run records per sample: what the decoding policy
    refuses (empty, unreadable, above the pixel bound: checked before decoding), tiny and grayscale
    images (relighting needs colour: shading and albedo are per channel)."""
    header = probe(data, "the input image", max_pixels)
    width, height = header.width, header.height
    if min(width, height) < MIN_SIDE:
        raise SampleError("TooSmall", f"image is {width}x{height}; both sides must be at least {MIN_SIDE}")
    upright = working_size(*((height, width) if header.orientation >= 5 else (width, height)), max_side)
    target = (upright[1], upright[0]) if header.orientation >= 5 else upright  # as stored
    if target != (width, height):
        pixels = _decode_reduced(data, width, height, target)
    else:
        pixels = _imdecode(data, cv2.IMREAD_UNCHANGED)  # ignores EXIF orientation: applied below
    if pixels is None:
        raise SampleError("Unreadable", "the image header is valid but its pixels cannot be decoded")
    if pixels.dtype != np.uint8:  # 16-bit PNG/TIFF: keep the top 8 bits
        top = float(np.iinfo(pixels.dtype).max)
        pixels = (pixels.astype(np.float32) / top * 255).round().astype(np.uint8)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        raise SampleError("Grayscale", "image has one channel; relighting needs a colour (RGB) image")
    if pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    if is_gray(pixels):
        raise SampleError("Grayscale", "image is grayscale stored as RGB (all channels equal); "
                                       "relighting needs a colour image")
    return orient(pixels, header.orientation)


def orientation(data: bytes) -> int:
    """The input's EXIF orientation (1: as stored), for its sample's record."""
    return probe(data, "the input image").orientation


def is_gray(bgr: np.ndarray) -> bool:
    return bool(np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2]))
