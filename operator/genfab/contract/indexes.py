"""Sets of shard indexes as sorted ranges, in the format of an Indexed Job's `completedIndexes` (`"0-2,5"`).

A stage of 10,000 shards that finish roughly in order is a few ranges, whatever its size: counting,
uniting and subtracting work on the ranges, never on one element per shard, so what a reconcile does
with a Job's indexes does not grow with the Job's completions (Kubernetes keeps them the same way).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

Ranges = tuple[tuple[int, int], ...]
"""Inclusive (first, last) pairs, sorted, disjoint and not touching."""
MAX_INDEX = 2**31 - 1
"""Above any index a Job has (Kubernetes' completions are int32)."""


def parse(text: str | None) -> Ranges:
    """`"0-2,5"` -> ((0, 2), (5, 5)); the Job's own text is trusted to be well formed, but any order or
    overlap is normalised."""
    pairs = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        pairs.append((int(lo), int(hi or lo)))
    return normalise(pairs)


def normalise(pairs: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(p for p in pairs if p[0] <= p[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def of(indexes: Iterable[int]) -> Ranges:
    return normalise((i, i) for i in indexes)


def text(ranges: Ranges) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def count(ranges: Ranges) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


def union(a: Ranges, b: Ranges) -> Ranges:
    return normalise((*a, *b))


def difference(a: Ranges, b: Ranges) -> Ranges:
    """The indexes of `a` not in `b` (one pass over both)."""
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] < lo:
            j += 1
        k, start = j, lo
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > start:
                out.append((start, b[k][0] - 1))
            start = max(start, b[k][1] + 1)
            k += 1
        if start <= hi:
            out.append((start, hi))
    return tuple(out)


def contains(ranges: Ranges, index: int) -> bool:
    at = bisect.bisect_right(ranges, (index, float("inf"))) - 1
    return at >= 0 and ranges[at][0] <= index <= ranges[at][1]


def members(ranges: Ranges) -> Iterator[int]:
    for lo, hi in ranges:
        yield from range(lo, hi + 1)


def first(ranges: Ranges, n: int) -> list[int]:
    """The `n` smallest indexes (fewer if there are fewer)."""
    out: list[int] = []
    for index in members(ranges):
        if len(out) >= n:
            break
        out.append(index)
    return out
