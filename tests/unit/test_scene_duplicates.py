"""Near-duplicate scenes: the perceptual hash on images with known answers (the same picture, a
brightened and a re-encoded copy, a different picture) and the nearest-earlier distance that keeps one
of each group (`duplicateDistance`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genfab.stages.reference_object.duplicates import HASH_BITS, nearest_earlier, phash
from genfab.stages.reference_object.edit_stages import with_duplicates


def scene(seed: int) -> np.ndarray:
    """A smooth picture (blobs of colour), like a generated scene rather than noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (256, 192), interpolation=cv2.INTER_CUBIC)


def distance(a: np.ndarray, b: np.ndarray) -> int:
    return (phash(a) ^ phash(b)).bit_count()


def test_the_hash_sees_copies_as_the_same_and_other_pictures_as_far() -> None:
    base = scene(1)
    brighter = np.clip(base.astype(np.int16) + 12, 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    assert distance(base, base.copy()) == 0
    assert distance(base, brighter) <= 4
    assert distance(base, cv2.imdecode(jpg, cv2.IMREAD_COLOR)) <= 4
    assert distance(base, cv2.resize(base, (128, 96))) <= 4  # the hash does not depend on the size
    assert min(distance(scene(1), scene(s)) for s in range(2, 12)) >= 12


@pytest.mark.parametrize(("hashes", "expected"), [
    ({}, {}),
    ({"a": 5}, {"a": (HASH_BITS, None)}),
    ({"b": 0b1011, "a": 0b1011}, {"a": (HASH_BITS, None), "b": (0, "a")}),  # sorted: "a" is the original
    ({"a": 0, "b": 0xFF, "c": 0b1}, {"a": (HASH_BITS, None), "b": (8, "a"), "c": (1, "a")}),
    ({"a": 0, "b": 0b11, "c": 0b111}, {"a": (HASH_BITS, None), "b": (2, "a"), "c": (1, "b")}),
    ({"a": 2**64 - 1, "b": 0}, {"a": (HASH_BITS, None), "b": (64, "a")}),  # the full 64 bits
])
def test_each_scene_is_measured_against_the_nearest_before_it(hashes: dict[str, int],
                                                               expected: dict[str, tuple[int, str | None]]) -> None:
    assert nearest_earlier(hashes) == expected


def test_the_metadata_names_each_scenes_nearest_and_leaves_unhashed_ones_alone() -> None:
    images = {"s1.png": {"phash": "00000000000000ff"}, "s2.png": {"phash": "00000000000000fe"},
              "old.png": {"seed": 3}}
    out = with_duplicates(images)
    assert out["s1.png"] == {"phash": "00000000000000ff", "duplicateDistance": HASH_BITS, "duplicateOf": None}
    assert (out["s2.png"]["duplicateDistance"], out["s2.png"]["duplicateOf"]) == (1, "s1.png")
    assert out["old.png"] == {"seed": 3}  # made before the figure: not measured
