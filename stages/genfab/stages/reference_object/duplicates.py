"""Near-duplicates among an execution's generated scenes: a 64-bit perceptual hash of each scene (the
scenes stage, per image) and, once every shard's hashes are merged, each scene's Hamming distance to
the nearest scene before it in id order (`duplicateDistance` of `genfab.api.quality.REFERENCE_IMAGE`).

"Before it" makes the figure keep one scene of each group of near-duplicates: the first has a large
distance (or none), the later ones a small one, so a `min` bound drops the repeats and not the original.
The hash is the classic DCT pHash (the one `imagehash.phash` computes): OpenCV's `dct` over the 32x32
luminance, the signs of the lowest 8x8 frequencies against their median. Written here on OpenCV,
which the stage has, rather than adding imagehash and its SciPy/PyWavelets to the cv image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import cv2
import numpy as np

from genfab.stages.reference_object.summary import MAX_PART_BYTES
from genfab.storage import Storage

HASH_BITS = 64
_SIDE = 32
_LOW = 8


def phash(rgb: np.ndarray) -> int:
    """The 64-bit perceptual hash of an RGB (or grey) image, as an int."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.resize(gray, (_SIDE, _SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:_LOW, :_LOW].flatten()
    bits = low > np.median(low)
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def phash_value(text: object) -> int | None:
    """A record's `phash` as the scenes step writes it (16 hex digits), or None: the merged records are
    read back from the run's storage, and a value that is not one is left out (its scene gets no
    figure) instead of failing the stage."""
    if isinstance(text, str) and len(text) == HASH_BITS // 4 and all(c in "0123456789abcdef" for c in text):
        return int(text, 16)
    return None


def nearest_earlier(hashes: Mapping[str, int]) -> dict[str, tuple[int, str | None]]:
    """For every id: the Hamming distance of its hash to the nearest earlier id's (in sorted order) and
    that id (the first of equals); the first id has none before it: (HASH_BITS, None)."""
    ids = sorted(hashes)
    values = np.array([hashes[i] for i in ids], dtype=np.uint64)
    out: dict[str, tuple[int, str | None]] = {ids[0]: (HASH_BITS, None)} if ids else {}
    for n in range(1, len(ids)):  # one vectorised row per scene: 10,000 scenes take about a second
        distances = np.bitwise_count(values[:n] ^ values[n])
        best = int(np.argmin(distances))
        out[ids[n]] = (int(distances[best]), ids[best])
    return out


def scene_duplicate_distances(scenes: Storage) -> dict[str, float]:
    """Each scene's `duplicateDistance` from the scenes step's `metadata.json` (by unit id); none where
    the file or a scene's entry predates the figure."""
    if not scenes.exists("metadata.json"):
        return {}
    raw = scenes.read_bytes("metadata.json")
    if len(raw) > MAX_PART_BYTES:
        return {}
    try:
        images = json.loads(raw).get("images", {})
    except (ValueError, AttributeError, RecursionError):  # not what genfab writes, nested past parsing
        return {}
    return {name.removesuffix(".png"): float(rec["duplicateDistance"]) for name, rec in images.items()
            if isinstance(rec, dict) and isinstance(rec.get("duplicateDistance"), int | float)}
