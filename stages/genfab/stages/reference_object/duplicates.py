"""Near-duplicates among an execution's generated scenes: a 64-bit perceptual hash of each scene (the
scenes stage, per image) and, once every shard's hashes are merged, each scene's Hamming distance to
the nearest scene before it in id order (`duplicateDistance` of `genfab.api.quality.REFERENCE_IMAGE`),
exact up to `DUPLICATE_RADIUS` bits; a scene with none that near (the first scene too) gets
`DUPLICATE_RADIUS + 1`.

"Before it" makes the figure keep one scene of each group of near-duplicates: the first has a large
distance (or none), the later ones a small one, so a `min` bound drops the repeats and not the original.
The hash is the classic DCT pHash (the one `imagehash.phash` computes): OpenCV's `dct` over the 32x32
luminance, the signs of the lowest 8x8 frequencies against their median. Written here on OpenCV,
which the stage has, rather than adding imagehash and its SciPy/PyWavelets to the cv image.

The search is multi-index hashing (Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with
Multi-Index Hashing", CVPR 2012): two hashes within 8 bits agree to within 2 bits on at least one of
their three blocks of 21-22 bits, so each scene is compared only with the scenes one of whose blocks
is within 2 bits of its own (about 240 probes a block, each looked up in a table of the block's values,
all scenes at once). Every scene against every earlier one was O(n^2): 327 s at 1,000,000 scenes on two
cores' one, against 33 s (benchmarks/results/duplicates.md has both).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import combinations, pairwise

import cv2
import numpy as np

from genfab.api.quality import DUPLICATE_RADIUS
from genfab.stages.reference_object.summary import MAX_PART_BYTES
from genfab.storage import Storage

HASH_BITS = 64
BLOCKS = ((0, 21), (21, 21), (42, 22))
"""(shift, bits) of the hash's blocks for the multi-index search: three, so that 8 bits apart means 2
bits apart in some block (a block of 21 bits has about one value in 2,000,000 taken at a million scenes,
so a probe finds few scenes besides the near ones)."""
EVERY_PAIR_MAX = 20_000
"""Up to this many scenes every pair is compared (0.06 s at 10,000; the multi-index search's 718 passes
cost more there: 0.27 s)."""
PAIRS_AT_ONCE = 4_000_000
"""Candidate pairs compared at once (about 100 MB of arrays)."""
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
    that id (the first of equals), where one is within `DUPLICATE_RADIUS` bits; else
    (`DUPLICATE_RADIUS + 1`, None), the first id too."""
    ids = sorted(hashes)
    values = np.array([hashes[i] for i in ids], dtype=np.uint64)
    best = nearest_within(values, DUPLICATE_RADIUS)
    far = DUPLICATE_RADIUS + 1
    return {ids[n]: (far, None) if b < 0 else (int(b) // len(ids), ids[int(b) % len(ids)])
            for n, b in enumerate(best.tolist())}


def nearest_within(values: np.ndarray, radius: int) -> np.ndarray:
    """For each position n: `distance * len(values) + m` of the nearest earlier position m (the first of
    equals) whose value is within `radius` bits of values[n]; -1 where there is none. Every pair up to
    `EVERY_PAIR_MAX` values (faster there), multi-index hashing beyond: the same answer either way."""
    return (every_pair_within if len(values) <= EVERY_PAIR_MAX else multi_index_within)(values, radius)


def every_pair_within(values: np.ndarray, radius: int) -> np.ndarray:
    """`nearest_within` by a row of distances to every earlier value, per value: O(n^2)."""
    n = len(values)
    out = np.full(n, -1, dtype=np.int64)
    for i in range(1, n):
        distances = np.bitwise_count(values[:i] ^ values[i])
        best = int(np.argmin(distances))  # the first of equals
        if distances[best] <= radius:
            out[i] = int(distances[best]) * n + best
    return out


def multi_index_within(values: np.ndarray, radius: int) -> np.ndarray:
    """`nearest_within` by multi-index hashing over `BLOCKS`, each block searched to
    `radius // len(BLOCKS)` bits (pigeonhole): about n x (1 + the scenes that share a block) work."""
    n = len(values)
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if n < 2:
        return np.full(n, -1, dtype=np.int64)
    # The same value again: distance 0 to its first position, the one candidate a repeat needs.
    unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    repeat = first[inverse] < np.arange(n)
    best[repeat] = first[inverse][repeat]
    # The distinct values against each other, each by its first position (a later equal is a repeat).
    order = np.argsort(first, kind="stable")
    unique, first = unique[order], first[order]
    found = np.full(len(unique), np.iinfo(np.int64).max, dtype=np.int64)
    for shift, bits in BLOCKS:
        keys = ((unique >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        by_key = np.argsort(keys, kind="stable")  # the distinct values, grouped by this block
        starts = np.concatenate(([0], np.cumsum(np.bincount(keys, minlength=1 << bits))))  # key -> its group
        for flip in _flips(bits, radius // len(BLOCKS)):
            probe = keys ^ flip
            lo = starts[probe]
            counts = starts[probe + 1] - lo
            hit = np.flatnonzero(counts)  # most probes find no scene
            for start, stop in _slices(counts[hit], PAIRS_AT_ONCE):
                at, many = hit[start:stop], counts[hit[start:stop]]
                queries = np.repeat(at, many)
                offsets = np.arange(len(queries)) - np.repeat(np.cumsum(many) - many, many)
                candidates = by_key[np.repeat(lo[at], many) + offsets]
                earlier = candidates < queries  # positions in first-position order: earlier is smaller
                queries, candidates = queries[earlier], candidates[earlier]
                distance = np.bitwise_count(unique[queries] ^ unique[candidates]).astype(np.int64)
                near = distance <= radius
                np.minimum.at(found, queries[near], distance[near] * n + first[candidates[near]])
    best[first] = np.minimum(best[first], found)
    return np.where(best == np.iinfo(np.int64).max, -1, best)


def _flips(bits: int, within: int) -> list[int]:
    """Every mask of `bits` bits with at most `within` bits set (0 first)."""
    masks = [0]
    for k in range(1, within + 1):
        masks += [sum(1 << b for b in chosen) for chosen in combinations(range(bits), k)]
    return masks


def _slices(counts: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive ranges of `counts`' positions whose counts sum to about `limit` (at least one each):
    the candidate pairs made at once stay bounded however the hashes cluster."""
    if not len(counts):
        return []
    total = np.cumsum(counts)
    cuts = np.searchsorted(total, np.arange(limit, int(total[-1]), limit), "right")
    edges = [0, *sorted(set(int(c) for c in cuts if 0 < c < len(counts))), len(counts)]
    return list(pairwise(edges))


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
