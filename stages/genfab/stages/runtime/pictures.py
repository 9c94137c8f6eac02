"""One decoding policy for every picture genfab opens: the stages' inputs and upstream images, the
DiFix export's frames, the report's and the review server's thumbnails.

- The header is read first (Pillow reads only it): an empty file is `Empty`, a file no decoder
  recognises `Unreadable`, one above the pixel bound `TooLarge`, all before a pixel is decoded. The
  bound is `GENFAB_MAX_IMAGE_PIXELS` (default 100 megapixels: 300 MB as 8-bit RGB), so a 1 MB PNG of
  20,000² cannot take 1.2 GB of a shard's or a laptop's memory.
- EXIF orientation (tag 0x0112) is applied by every decoder the same way, as a camera's viewer shows
  the photo: Pillow's `exif_transpose` on Pillow's paths, `orient` on OpenCV's (which decode with
  `IMREAD_IGNORE_ORIENTATION`, so the one rule here decides). The DiFix export is the exception:
  it copies files byte for byte and Difix3D's dataset opens them without orientation, so it checks
  and compares them as stored.

Pillow and numpy are imported inside the functions: the runtime itself stays free of them.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genfab.stages.runtime.errors import SampleError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

MAX_PIXELS_ENV = "GENFAB_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000
"""Pixels (width x height) of the largest picture genfab decodes, unless the environment sets another."""
ORIENTATION_TAG = 0x0112


def max_pixels(environ: dict[str, str] | None = None) -> int:
    """The pixel bound: `GENFAB_MAX_IMAGE_PIXELS` when it is a positive whole number, else the default."""
    raw = (environ if environ is not None else os.environ).get(MAX_PIXELS_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_PIXELS


class PictureRefused(SampleError):
    """A picture genfab does not decode: `Empty`, `Unreadable` or `TooLarge`, with a one-line message
    naming the file. A SampleError: a stage that lets it go drops just that sample."""

    def __reduce__(self) -> tuple[type[PictureRefused], tuple[str, str]]:
        return PictureRefused, (self.reason, self.message)


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    format: str
    orientation: int
    """EXIF orientation, 1 (as stored) to 8."""

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _orientation(img: Image.Image, data: bytes) -> int:
    """EXIF orientation, read without decoding a pixel: Pillow's `getexif` on a PNG decodes the whole
    picture to look for an eXIf chunk after the pixels, so a PNG's chunks are walked here instead."""
    from PIL import Image

    try:
        if img.format == "PNG":
            raw = img.info.get("exif") or _png_exif(data)
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        value = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block: the picture is shown as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_exif(data: bytes) -> bytes | None:
    """A PNG's eXIf chunk, found by walking its chunks' lengths (nothing is decompressed)."""
    at = 8  # the signature
    while at + 8 <= len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind = data[at + 4:at + 8]
        if kind == b"eXIf":
            return data[at + 8:at + 8 + length]
        if kind == b"IEND":
            return None
        at += 12 + length
    return None


def _open(data: bytes, what: str, limit: int | None) -> tuple[Image.Image, Header]:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise PictureRefused("Empty", f"{what}: the file is empty (0 bytes)")
    bound = limit if limit is not None else max_pixels()
    try:
        with warnings.catch_warnings():  # the bound below decides, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PictureRefused("TooLarge", f"{what}: {' '.join(str(exc).split())[:160]}") from None
    except UnidentifiedImageError:
        raise PictureRefused("Unreadable", f"{what}: not an image format genfab reads (PNG, JPEG, WebP, TIFF, "
                                           f"...; {len(data)} bytes)") from None
    except Exception as exc:
        raise PictureRefused("Unreadable", f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
                             ) from None
    width, height = img.width, img.height
    if width <= 0 or height <= 0:
        raise PictureRefused("Empty", f"{what}: the picture is {width}x{height}")
    if width * height > bound:  # decided from the header alone, before anything else is read
        raise PictureRefused("TooLarge", f"{what}: {width}x{height} = {width * height:,} pixels; at "
                                         f"most {bound:,} are decoded ({MAX_PIXELS_ENV})")
    return img, Header(width, height, str(img.format or "").lower(), _orientation(img, data))


def probe(data: bytes, what: str, limit: int | None = None) -> Header:
    """The picture's header, checked against the policy (PictureRefused when it fails it)."""
    img, header = _open(data, what, limit)
    img.close()
    return header


def open_image(data: bytes, what: str, limit: int | None = None, *, mode: str = "RGB",
               draft: tuple[int, int] | None = None) -> Image.Image:
    """The picture decoded by Pillow in `mode`, upright (EXIF orientation applied); `draft`: a JPEG may
    be decoded at a reduced scale that still covers this size (the report's thumbnails)."""
    from PIL import ImageOps

    img, header = _open(data, what, limit)
    try:
        if draft is not None:
            img.draft(mode, draft)
        decoded = img.convert(mode)
        return ImageOps.exif_transpose(decoded) if header.orientation != 1 else decoded
    except PictureRefused:
        raise
    except Exception as exc:  # a header that parses over pixels that do not (truncated, corrupt)
        raise PictureRefused("Unreadable", f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
                             ) from None
    finally:
        img.close()


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """An array decoded as stored (rows top to bottom, H x W [x C]) turned upright for an EXIF
    orientation, as Pillow's `exif_transpose` turns an image."""
    import numpy as np

    if orientation in (5, 6, 7, 8):  # the stored rows are columns of the upright picture
        pixels = np.swapaxes(pixels, 0, 1)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation == 2:
        return np.ascontiguousarray(pixels[:, ::-1])
    if orientation == 3:
        return np.ascontiguousarray(pixels[::-1, ::-1])
    if orientation == 4:
        return np.ascontiguousarray(pixels[::-1])
    return np.ascontiguousarray(pixels)
