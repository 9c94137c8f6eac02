"""The one decoding policy (genfab.stages.runtime.pictures) on files with known answers: empty, not an
image, truncated, a header that claims 50,000², a picture over a lowered bound, and every EXIF
orientation turned upright the same way on Pillow's path and on OpenCV's."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from genfab.stages.runtime.pictures import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    PictureRefused,
    max_pixels,
    open_image,
    orient,
    probe,
)
from tests.unit.shared import png_header


def encoded(rgb: np.ndarray, fmt: str = "PNG", orientation: int = 1) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    Image.fromarray(rgb).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


PICTURE = np.random.default_rng(0).integers(0, 255, (6, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize(("data", "reason", "says"), [
    (b"", "Empty", "the file is empty"),
    (b"not an image at all", "Unreadable", "not an image format"),
    (png_header(50_000, 50_000), "TooLarge", "a.png: "),  # Pillow's own bomb check, said as ours
    (png_header(12_000, 12_000), "TooLarge", "12000x12000 = 144,000,000 pixels; at most 100,000,000"),
])
def test_the_header_decides_before_any_pixel(data: bytes, reason: str, says: str) -> None:
    with pytest.raises(PictureRefused) as caught:
        probe(data, "a.png")
    assert caught.value.reason == reason and says in caught.value.message, caught.value.message
    assert "\n" not in caught.value.message and "BytesIO" not in caught.value.message


def test_a_truncated_picture_is_unreadable_when_decoded() -> None:
    data = encoded(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    half = data[:len(data) // 2]
    assert probe(half, "t.png").width == 64  # the header is whole
    with pytest.raises(PictureRefused) as caught:
        open_image(half, "t.png")
    assert caught.value.reason == "Unreadable" and caught.value.message.startswith("t.png: ")


def test_the_bound_comes_from_the_environment_or_the_call() -> None:
    assert max_pixels({}) == DEFAULT_MAX_PIXELS
    assert max_pixels({MAX_PIXELS_ENV: "400"}) == 400
    assert max_pixels({MAX_PIXELS_ENV: "-3"}) == max_pixels({MAX_PIXELS_ENV: "lots"}) == DEFAULT_MAX_PIXELS
    with pytest.raises(PictureRefused, match=r"10x6 = 60 pixels"):
        probe(encoded(PICTURE), "p.png", limit=59)
    assert probe(encoded(PICTURE), "p.png", limit=60).pixels == 60


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_turned_upright_the_same_way_on_both_paths(orientation: int) -> None:
    data = encoded(PICTURE, orientation=orientation)
    header = probe(data, "o.png")
    assert header.orientation == orientation
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(open_image(data, "o.png")), upright)
    stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(orient(stored[..., ::-1], header.orientation), upright)
