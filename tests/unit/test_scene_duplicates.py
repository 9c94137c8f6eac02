"""Near-duplicate scenes: the perceptual hash on images with known answers (the same picture, a
brightened and a re-encoded copy, a different picture) and the nearest-earlier distance that keeps one
of each group (`duplicateDistance`), exact within `DUPLICATE_RADIUS` bits: the multi-index search
against every pair on random and clustered hashes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genfab.api.quality import DUPLICATE_RADIUS
from genfab.stages.reference_object.duplicates import every_pair_within, multi_index_within, nearest_earlier, phash
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


FAR = DUPLICATE_RADIUS + 1
"""The figure of a scene with no earlier one within the radius."""


@pytest.mark.parametrize(("hashes", "expected"), [
    ({}, {}),
    ({"a": 5}, {"a": (FAR, None)}),
    ({"b": 0b1011, "a": 0b1011}, {"a": (FAR, None), "b": (0, "a")}),  # sorted: "a" is the original
    ({"a": 0, "b": 0xFF, "c": 0b1}, {"a": (FAR, None), "b": (8, "a"), "c": (1, "a")}),
    ({"a": 0, "b": 0x1FF, "c": 0b1}, {"a": (FAR, None), "b": (FAR, None), "c": (1, "a")}),  # 9 bits: farther
    ({"a": 0, "b": 0b11, "c": 0b111}, {"a": (FAR, None), "b": (2, "a"), "c": (1, "b")}),
    ({"a": 2**64 - 1, "b": 2**64 - 1 - 2**63 - 2**21 - 2**42}, {"a": (FAR, None), "b": (3, "a")}),  # every block
    ({"a": 0, "d": 0b11 | 0b11 << 21 | 0b11 << 42 | 0b11 << 62}, {"a": (FAR, None), "d": (8, "a")}),  # the radius
    ({"a": 0, "b": 0b111, "c": 0b111 << 21, "d": 0b11 | 0b11 << 21 | 0b11 << 42 | 0b11 << 62},
     {"a": (FAR, None), "b": (3, "a"), "c": (3, "a"), "d": (7, "b")}),  # 7 from b and from c: the first
    ({"a": 0, "b": 0b11 | 0b11 << 21 | 0b11 << 42 | 1 << 63},
     {"a": (FAR, None), "b": (7, "a")}),  # 2, 2 and 3 bits: the first two blocks find it
])
def test_each_scene_is_measured_against_the_nearest_before_it(hashes: dict[str, int],
                                                               expected: dict[str, tuple[int, str | None]]) -> None:
    assert nearest_earlier(hashes) == expected
    values = np.array([hashes[i] for i in sorted(hashes)], dtype=np.uint64)  # both searches, whatever the size
    assert np.array_equal(multi_index_within(values, DUPLICATE_RADIUS), every_pair_within(values, DUPLICATE_RADIUS))


def every_pair(hashes: dict[str, int]) -> dict[str, tuple[int, str | None]]:
    """The figure by comparing every scene with every earlier one (the search this replaced)."""
    ids = sorted(hashes)
    out: dict[str, tuple[int, str | None]] = {}
    for n, i in enumerate(ids):
        near = [((hashes[i] ^ hashes[j]).bit_count(), j) for j in ids[:n]]
        best = min(near, default=(FAR, None))
        out[i] = best if best[0] <= DUPLICATE_RADIUS else (FAR, None)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_the_search_agrees_with_every_pair_on_random_and_clustered_hashes(seed: int) -> None:
    """Random hashes (almost all far apart) and clusters: copies of a few centres with 0 to 12 bits
    flipped, so distances on both sides of the radius, ties and exact repeats all occur."""
    rng = np.random.default_rng(seed)
    centres = [int(v) for v in rng.integers(0, 2**64, 8, dtype=np.uint64)]
    hashes: dict[str, int] = {}
    for n in range(600):
        if n % 3 == 0:
            value = int(rng.integers(0, 2**64, dtype=np.uint64))
        else:
            value = centres[n % len(centres)]
            for bit in rng.choice(64, size=int(rng.integers(0, 13)), replace=False):
                value ^= 1 << int(bit)
        hashes[f"s{rng.integers(0, 10**9):09d}-{n}"] = value
    assert nearest_earlier(hashes) == every_pair(hashes)
    values = np.array([hashes[i] for i in sorted(hashes)], dtype=np.uint64)
    assert np.array_equal(multi_index_within(values, DUPLICATE_RADIUS), every_pair_within(values, DUPLICATE_RADIUS))


def test_the_metadata_names_each_scenes_nearest_and_leaves_unhashed_ones_alone() -> None:
    images = {"s1.png": {"phash": "00000000000000ff"}, "s2.png": {"phash": "00000000000000fe"},
              "old.png": {"seed": 3}}
    out = with_duplicates(images)
    assert out["s1.png"] == {"phash": "00000000000000ff", "duplicateDistance": FAR, "duplicateOf": None}
    assert (out["s2.png"]["duplicateDistance"], out["s2.png"]["duplicateOf"]) == (1, "s1.png")
    assert out["old.png"] == {"seed": 3}  # made before the figure: not measured
