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


class Decoded(BaseException):
    """Raised by a test's stand-in of Pillow's decoding: a pixel was decoded where none may be."""


def png_with_pixels(width: int, height: int, exif_after: bytes | None = None) -> bytes:
    """A whole 8-bit RGB PNG of zeros, compressed row by row (a 144 MP one is about 400 KB), optionally
    with an eXIf chunk after its pixels (where Pillow's `getexif` looks by decoding them all)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    packer, row, parts = zlib.compressobj(9), bytes(1 + 3 * width), []
    for _ in range(height):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + (chunk(b"eXIf", exif_after) if exif_after else b"")
            + chunk(b"IEND", b""))


def test_a_png_bomb_is_refused_from_its_header_without_decoding_a_pixel(monkeypatch: pytest.MonkeyPatch) -> None:
    """12,000 x 12,000 zeros in a 400 KB PNG: reading its EXIF used to decode it whole (608 MiB) before the
    bound refused it."""
    from PIL import ImageFile

    bomb = png_with_pixels(12_000, 12_000)
    assert len(bomb) < 1_000_000

    def decoded(self: object) -> None:
        raise Decoded  # past any `except Exception` on the way
    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    with pytest.raises(PictureRefused, match=r"12000x12000 = 144,000,000 pixels; at most 100,000,000"):
        probe(bomb, "bomb.png")


def test_a_pngs_orientation_after_its_pixels_is_read_without_decoding_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    exif = Image.Exif()
    exif[0x0112] = 6
    data = png_with_pixels(40, 20, exif_after=exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else
                           exif.tobytes())
    assert np.asarray(open_image(data, "o.png")).shape == (40, 20, 3)  # decoded (once) and turned upright

    def decoded(self: object) -> None:
        raise Decoded  # past any `except Exception` on the way
    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    assert probe(data, "o.png").orientation == 6
