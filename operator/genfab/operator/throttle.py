"""What the operator read from the API server or storage, trusted for a while: a namespace's
prerequisite objects, another shard's resources, a training stage's state document. One reconcile
per resource every few seconds must not become one request each."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Read(Generic[V]):
    value: V
    at: float
    """When it was read (the clock's seconds)."""


class Throttled(Generic[K, V]):
    """Values by key, each read again only once older than `max_age` seconds. Past `keep` entries, the
    ones older than `max_age` are dropped (read again when needed)."""

    def __init__(self, max_age: float, keep: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.keep = keep
        self._clock = clock
        self._reads: dict[K, Read[V]] = {}

    def recent(self, key: K) -> Read[V] | None:
        """The read of `key` if it is younger than `max_age`."""
        found = self._reads.get(key)
        return found if found is not None and self._clock() - found.at < self.max_age else None

    def put(self, key: K, value: V) -> V:
        now = self._clock()
        if len(self._reads) >= self.keep:
            # a snapshot (reconciles on other threads put meanwhile): an entry put during the copy may be lost
            self._reads = {k: r for k, r in list(self._reads.items()) if now - r.at < self.max_age}
        self._reads[key] = Read(value, now)
        return value

    def get(self, key: K, read: Callable[[], V], fresh: bool = False) -> V:
        """The recent value of `key`, else (or with `fresh`) `read()`, remembered."""
        found = None if fresh else self.recent(key)
        return found.value if found is not None else self.put(key, read())

    def forget(self, key: K) -> None:
        self._reads.pop(key, None)
