"""Thumbnails for the report (Pillow): an image made small, a mask drawn over it as a tint, or a YOLO
segmentation label's polygons drawn as outlines. Each becomes a small JPEG."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageDraw, ImageFilter

from genfab.stages.runtime.pictures import PictureRefused, open_image, probe

THUMB = 224
"""The longest side of a thumbnail, in pixels."""
QUALITY = 82
TINT = (255, 64, 160)
CLASS_COLOURS = ((255, 80, 80), (80, 200, 255), (255, 210, 60), (120, 255, 120), (200, 120, 255), (255, 150, 60),
                 (60, 255, 220), (255, 120, 200))


DECODING_PIXELS = 200_000_000
"""Pixels the report's threads decode at once, together: a few huge pictures wait for each other
instead of each taking its worker's share of memory (about 3 bytes a pixel, so 600 MB at most)."""


class PictureError(ValueError):
    """The bytes are not a picture the decoding policy lets the report open."""


class PixelBudget:
    """At most `total` pixels being decoded at once across threads; one picture over `total` (possible
    only with a raised GENFAB_MAX_IMAGE_PIXELS) waits until it is alone."""

    def __init__(self, total: int = DECODING_PIXELS) -> None:
        self.total, self.used = total, 0
        self._cond = threading.Condition()

    @contextmanager
    def held(self, pixels: int) -> Iterator[None]:
        need = min(pixels, self.total)
        with self._cond:
            self._cond.wait_for(lambda: self.used + need <= self.total)
            self.used += need
        try:
            yield
        finally:
            with self._cond:
                self.used -= need
                self._cond.notify_all()


BUDGET = PixelBudget()


def _open(data: bytes, what: str = "picture", mode: str = "RGB") -> Image.Image:
    try:
        pixels = probe(data, what).pixels
        with BUDGET.held(pixels):  # JPEG: decoded at a reduced scale (draft), much faster
            return open_image(data, what, mode=mode, draft=(THUMB * 2, THUMB * 2))
    except PictureRefused as exc:
        raise PictureError(exc.message) from None


def _jpeg(image: Image.Image) -> bytes:
    image.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS, reducing_gap=3.0)  # box-reduce first: faster
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def thumbnail(data: bytes, mask: bytes | None = None, polygons: bytes | None = None, what: str = "picture"
              ) -> tuple[bytes, int, int]:
    """The thumbnail's JPEG bytes and its size (width, height); PictureError for a picture (or mask)
    the decoding policy refuses."""
    image = _open(data, what)
    if mask is not None:
        image = _outline_mask(image, mask)
    if polygons is not None:
        image = _draw_polygons(image, polygons)
    out = _jpeg(image)
    return out, image.width, image.height


def _outline_mask(image: Image.Image, mask: bytes) -> Image.Image:
    """What the mask leaves out dimmed, its outline drawn: the kept part stays as it is, readable."""
    image.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS, reducing_gap=3.0)
    inside = _open(mask, "its mask", "L").resize(image.size, Image.Resampling.NEAREST)
    inside = inside.point(lambda v: 255 if v >= 128 else 0)
    dimmed = Image.blend(image, Image.new("RGB", image.size, (0, 0, 0)), 0.65)
    image = Image.composite(image, dimmed, inside)
    edge = inside.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))
    return Image.composite(Image.new("RGB", image.size, TINT), image, edge)


def _draw_polygons(image: Image.Image, labels: bytes) -> Image.Image:
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / THUMB * 2))
    for line in labels.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) < 7 or not parts[0].isdigit():
            continue
        try:
            xy = [float(v) for v in parts[1:]]
        except ValueError:
            continue
        points = [(xy[i] * image.width, xy[i + 1] * image.height) for i in range(0, len(xy) - 1, 2)]
        draw.polygon(points, outline=CLASS_COLOURS[int(parts[0]) % len(CLASS_COLOURS)], width=width)
    return image
