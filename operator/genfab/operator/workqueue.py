"""A work queue of resource keys, as in client-go: a key is queued at most once, never processed
by two workers at once, and re-queued if it changed while being processed. Failed keys come
back after an exponential backoff.

Fair between groups (namespaces): ready keys wait per group and workers take them round-robin, and
one group holds at most `per_group` workers at once. A tenant whose resources are slow to reconcile
(hostile storage that answers at the last moment, a million objects to list) holds at most that
many workers: another namespace's new resource still finds one free."""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


def per_group_share(workers: int) -> int:
    """Workers one namespace may hold: all but a quarter (at least one kept for the others)."""
    return max(1, workers - max(1, workers // 4))


class WorkQueue(Generic[K]):
    def __init__(self, base_delay: float = 0.5, max_delay: float = 60.0,
                 group: Callable[[K], Hashable] = lambda key: None, per_group: int | None = None) -> None:
        self._cv = threading.Condition()
        self._groups: OrderedDict[Hashable, tuple[deque[K], deque[K]]] = OrderedDict()
        """Group -> (keys added with `first=True`: resources never reconciled, served first; the rest)."""
        self._group = group
        self._per_group = per_group
        self._busy: dict[Hashable, int] = {}
        """Group -> keys of it being processed."""
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        """Key -> when it is next due in `_delayed` (entries for a key at other times are stale)."""
        self._seq = 0
        self._failures: dict[K, int] = {}
        self.base_delay, self.max_delay = base_delay, max_delay
        self.closed = False

    def _push(self, key: K, first: bool = False) -> None:
        queues = self._groups.setdefault(self._group(key), (deque(), deque()))
        queues[0 if first else 1].append(key)
        self._cv.notify()

    def add(self, key: K, first: bool = False) -> None:
        """Queue `key` (once). `first`: ahead of the keys queued without it (a new resource's first
        reconcile, which creates its first Job, goes before follow-ups of resources already started)."""
        with self._cv:
            if key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._push(key, first)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` in `delay` seconds; a key already due sooner keeps that time (as client-go's
        delaying queue): many events about one resource within the delay become one reconcile."""
        with self._cv:
            due = time.monotonic() + delay
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._delayed, (due, self._seq, key))
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

    def _pop(self) -> K | None:
        """The next key: a first-time key of any group under its share before other keys, groups in
        turn (the group served goes to the back)."""
        chosen: tuple[Hashable, deque[K]] | None = None
        for group, (first, rest) in self._groups.items():
            if self._per_group is not None and self._busy.get(group, 0) >= self._per_group:
                continue
            if first:
                chosen = (group, first)
                break
            if rest and chosen is None:
                chosen = (group, rest)
        if chosen is None:
            return None
        group, queue = chosen
        key = queue.popleft()
        first, rest = self._groups[group]
        if first or rest:
            self._groups.move_to_end(group)
        else:
            del self._groups[group]
        self._busy[group] = self._busy.get(group, 0) + 1
        return key

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process (None when closed or on timeout); call `done(key)` afterwards."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                self._promote_delayed()
                if self.closed:
                    return None
                key = self._pop()
                if key is not None:
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
            group = self._group(key)
            self._busy[group] = self._busy.get(group, 1) - 1
            if not self._busy[group]:
                del self._busy[group]
            if key in self._dirty:
                self._push(key)
            self._cv.notify_all()  # a group under its share again: a waiting worker may take its keys

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def ready(self) -> int:
        """Keys waiting for a worker now (not the delayed ones)."""
        with self._cv:
            return sum(len(first) + len(rest) for first, rest in self._groups.values())

    def busy(self) -> bool:
        """Whether any key waits for a worker now or is being processed."""
        with self._cv:
            return bool(self._processing) or any(first or rest for first, rest in self._groups.values())

    def __len__(self) -> int:
        """Distinct keys waiting for a worker or scheduled for later (a key re-scheduled many times,
        as progress polling does, counts once)."""
        with self._cv:
            return len(self._dirty | set(self._due))

    def _promote_delayed(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) != due:
                continue  # superseded by an earlier time, already promoted
            del self._due[key]
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._push(key)
