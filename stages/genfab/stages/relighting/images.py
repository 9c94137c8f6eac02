"""Decoding and checking relighting's input portraits (8-bit BGR arrays, as OpenCV reads them); an
input is decoded at most at the working size (`maxSide`) where the format allows it. PNGs out and
intermediates in are `common.imaging`'s, in OpenCV's channel order (`encode`, `decode`)."""

from __future__ import annotations

import io
import warnings
from functools import partial

import cv2
import numpy as np
from PIL import Image

from genfab.stages.common.imaging import MAX_PIXELS, decode_png, encode_png, unreadable
from genfab.stages.runtime import SampleError

MIN_SIDE = 16
encode = partial(encode_png, bgr=True, compression=1)
"""Relighting's PNGs: OpenCV's BGR(A) arrays, fast compression (intermediates and training data,
not archives)."""
decode = partial(decode_png, bgr=True)
"""An upstream stage's PNG as OpenCV's BGR(A)."""
REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with warnings.catch_warnings():  # the size is judged by decode_color against MAX_PIXELS
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Exception as exc:
        raise unreadable(exc) from None


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after downscaling so the longer side is at most `max_side` (aspect kept)."""
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode_reduced(data: bytes, width: int, height: int, target: tuple[int, int]) -> np.ndarray | None:
    """Decode at 1/2, 1/4 or 1/8 size when that still covers `target` (JPEG decodes natively at those
    scales: far less time and memory than full size), then area-downscale to `target` exactly."""
    flag = next((fl for f, fl in REDUCED_FLAGS if width // f >= target[0] and height // f >= target[1]),
                cv2.IMREAD_COLOR)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if pixels is None:
        return None
    return cv2.resize(pixels, target, interpolation=cv2.INTER_AREA) if pixels.shape[1::-1] != target else pixels


def decode_color(data: bytes, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An input portrait as uint8 BGR (H, W, 3), its longer side at most `max_side`. Refuses, with a
    reason the run records per sample: unreadable files, images above `max_pixels` (checked before
    decoding), tiny and grayscale ones (relighting needs colour: shading and albedo are per channel)."""
    width, height = image_size(data)
    if width * height > max_pixels:
        raise SampleError("TooLarge", f"image is {width}x{height} = {width * height} pixels; "
                                      f"at most {max_pixels} are allowed")
    if min(width, height) < MIN_SIDE:
        raise SampleError("TooSmall", f"image is {width}x{height}; both sides must be at least {MIN_SIDE}")
    target = working_size(width, height, max_side)
    if target != (width, height):
        pixels = _decode_reduced(data, width, height, target)
    else:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
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
    return np.ascontiguousarray(pixels)


def is_gray(bgr: np.ndarray) -> bool:
    return bool(np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2]))
