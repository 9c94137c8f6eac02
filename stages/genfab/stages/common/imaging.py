"""What every stage says about an input file that is not an image it can read."""

from __future__ import annotations

from PIL import Image, UnidentifiedImageError

from genfab.stages.runtime import SampleError


def unreadable(exc: Exception, what: str = "not a readable image") -> SampleError:
    """`Unreadable` (or `TooLarge` for a decompression bomb) with a message about the file, never
    about the in-memory buffer Pillow names in its own (`<_io.BytesIO object at 0x…>`)."""
    if isinstance(exc, Image.DecompressionBombError):
        return SampleError("TooLarge", " ".join(str(exc).split()))
    if isinstance(exc, UnidentifiedImageError):
        return SampleError("Unreadable", f"{what}: not a format Pillow recognises (PNG, JPEG, WebP, ...)")
    return SampleError("Unreadable", f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
