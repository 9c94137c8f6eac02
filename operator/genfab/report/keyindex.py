"""The keys of an output with their sizes, held compactly: a run of 1,000,000 samples has 6,000,000 keys,
which as a dict of strings take about 1.7 GB; here they take about a tenth of that.

Keys arrive sorted (a bucket's listing and `FileStorage.list` both are) and are front-coded in blocks of
`BLOCK`: each block keeps its first key whole and, for every next key, how many leading characters it
shares with the one before and the rest. Sorted sample keys share most of their length
(`data/outputs/000123_albedo.png`, `data/outputs/000123_input.png`). A lookup bisects the blocks' first
keys and decodes one block; the last few decoded blocks are kept, since the report's builders look keys
up in order, a sample after the other."""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

BLOCK = 64
"""Keys per front-coded block."""
DECODED = 32
"""Decoded blocks kept (the builders walk a few folders side by side: inputs, masks, outputs)."""
SEPARATOR = "\0"
"""Between a block's entries (a key never holds NUL: S3 and file systems refuse it)."""


class UnsortedKeys(ValueError):
    """A listing gave its keys out of order or twice."""


def _shared(a: str, b: str) -> int:
    """The length of the longest common prefix (a bisection of slice comparisons, done in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


class KeyIndex(Mapping[str, int]):
    """A read-only mapping of key to size, built by `add` in sorted order, then `freeze`."""

    def __init__(self) -> None:
        self._heads: list[str] = []
        self._blocks: list[str] = []
        self._sizes = array("q")
        self._pending: list[str] = []
        self._last: str | None = None
        self._decoded: OrderedDict[int, list[str]] = OrderedDict()

    @classmethod
    def of(cls, items: Iterable[tuple[str, int]]) -> KeyIndex:
        """An index of (key, size) pairs in any order (sorted here: for small mappings)."""
        index = cls()
        for key, size in sorted(items):
            index.add(key, size)
        return index.freeze()

    def add(self, key: str, size: int) -> None:
        if SEPARATOR in key:
            raise UnsortedKeys(f"a key holds a NUL character: {key!r}")
        if self._last is not None and key <= self._last:
            raise UnsortedKeys(f"keys out of order: {key!r} after {self._last!r}")
        self._pending.append(key)
        self._sizes.append(size)
        self._last = key
        if len(self._pending) == BLOCK:
            self._seal()

    def _seal(self) -> None:
        keys = self._pending
        parts = []
        for before, key in itertools.pairwise(keys):
            shared = _shared(before, key)
            parts.append(f"{shared:x}:{key[shared:]}")
        self._heads.append(keys[0])
        self._blocks.append(SEPARATOR.join(parts))
        self._pending = []

    def freeze(self) -> KeyIndex:
        if self._pending:
            self._seal()
        return self

    def _block(self, n: int) -> list[str]:
        found = self._decoded.get(n)
        if found is not None:
            self._decoded.move_to_end(n)
            return found
        keys = [self._heads[n]]
        if self._blocks[n]:
            for part in self._blocks[n].split(SEPARATOR):
                shared, _, rest = part.partition(":")
                keys.append(keys[-1][: int(shared, 16)] + rest)
        self._decoded[n] = keys
        if len(self._decoded) > DECODED:
            self._decoded.popitem(last=False)
        return keys

    def _find(self, key: str) -> int | None:
        """The key's position, None when absent."""
        n = bisect.bisect_right(self._heads, key) - 1
        if n < 0:
            return None
        keys = self._block(n)
        i = bisect.bisect_left(keys, key)
        return n * BLOCK + i if i < len(keys) and keys[i] == key else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) is not None

    def __getitem__(self, key: str) -> int:
        at = self._find(key)
        if at is None:
            raise KeyError(key)
        return self._sizes[at]

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[str]:
        for n in range(len(self._heads)):
            yield from self._block(n)

    def under(self, prefix: str) -> list[str]:
        """The keys that start with `prefix`, in order."""
        return list(self.each(prefix))

    def each(self, prefix: str) -> Iterator[str]:
        """The keys that start with `prefix`, in order, one at a time (a folder of millions not held)."""
        n = max(0, bisect.bisect_right(self._heads, prefix) - 1)
        while n < len(self._heads):
            keys = self._block(n)
            for key in keys[bisect.bisect_left(keys, prefix):]:
                if not key.startswith(prefix):
                    return
                yield key
            n += 1
