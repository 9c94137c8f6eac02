"""A work queue of resource keys, as in client-go: a key is queued at most once, never processed
by two workers at once, and re-queued if it changed while being processed. Failed keys come
back after an exponential backoff."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, base_delay: float = 0.5, max_delay: float = 60.0) -> None:
        self._cv = threading.Condition()
        self._queue: deque[K] = deque()
        self._first: deque[K] = deque()
        """Keys added with `first=True` (resources never reconciled), served before `_queue`."""
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = 0
        self._failures: dict[K, int] = {}
        self.base_delay, self.max_delay = base_delay, max_delay
        self.closed = False

    def add(self, key: K, first: bool = False) -> None:
        """Queue `key` (once). `first`: ahead of the keys queued without it (a new resource's first
        reconcile, which creates its first Job, goes before follow-ups of resources already started)."""
        with self._cv:
            if key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                (self._first if first else self._queue).append(key)
                self._cv.notify()

    def add_after(self, key: K, delay: float) -> None:
        with self._cv:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
            self._cv.notify()

    def retry(self, key: K) -> float:
        """Re-queue a failed key after its backoff; returns the delay."""
        with self._cv:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay: float = min(self.max_delay, self.base_delay * 2.0 ** n)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        with self._cv:
            self._failures.pop(key, None)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process (None when closed or on timeout); call `done(key)` afterwards."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                self._promote_delayed()
                if self.closed:
                    return None
                if self._first or self._queue:
                    key = (self._first or self._queue).popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                wait = self._delayed[0][0] - time.monotonic() if self._delayed else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cv.wait(wait)

    def done(self, key: K) -> None:
        with self._cv:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def ready(self) -> int:
        """Keys waiting for a worker now (not the delayed ones)."""
        with self._cv:
            return len(self._first) + len(self._queue)

    def __len__(self) -> int:
        """Distinct keys waiting for a worker or scheduled for later (a key re-scheduled many times,
        as progress polling does, counts once)."""
        with self._cv:
            return len(self._dirty | {key for _, _, key in self._delayed})

    def _promote_delayed(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)
