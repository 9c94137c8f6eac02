"""What one reconcile may spend on a tenant's storage: time, requests, objects listed and bytes read.

Everything the operator reads from a resource's storage (sample listings, manifests, shard reports,
markers, gate folders, model folders, execution folders) is the tenant's to fill: a folder of a
million objects, a 600 MiB manifest, eight 15 MiB reports, a store that answers slowly. A reconcile
runs inside `budget(...)`, and `StorageAccess` hands out storages wrapped in `BudgetedStorage`, which
charges every call to the reconcile's budget and stops it with `StorageLimit` (one line: which object,
which bound) once one is spent. The resource then says so in a Stalled condition and is reconciled again
after the work queue's backoff; the operator has spent no more than the bound, and other resources were
not waiting for it (the work queue also caps how many workers one namespace holds).

Bytes are also drawn from one pool shared by all reconciles, so eight workers decoding eight large
reports at once cannot together hold more than the pool: memory stays bounded however many tenants
try at the same time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from genfab.sequencing.gate_reader import NoRoom
from genfab.storage import ObjectInfo, Storage, StorageLimit, StorageTooLarge
from genfab.storage.base import human_bytes

MiB = 1 << 20
RESERVE_REQUESTS = 50
"""Storage requests a reconcile keeps for what it does after a bounded reader's part (summaries, status)."""
RESERVE_BYTES = 4 * MiB
"""Bytes it keeps likewise."""
PAGE = 1000
"""Objects an S3 listing returns per request (ListObjectsV2's maximum): a listing costs one request per page."""


@dataclass(frozen=True)
class ReadBounds:
    seconds: float = 30.0
    """Wall time a reconcile may spend in storage calls (checked before each call; each S3 call is bounded
    by the operator's connect and read timeouts)."""
    requests: int = 1000
    """Storage requests per reconcile (a listing page of 1,000 objects is one)."""
    listed: int = 200_000
    """Objects a reconcile may list."""
    bytes: int = 32 * MiB
    """Bytes a reconcile may read (its largest single object is bounded lower by its reader)."""
    pool_bytes: int = 64 * MiB
    """Bytes all reconciles together may hold at once."""
    pool_wait: float = 5.0
    """How long a reconcile waits for the pool before it stops and is retried."""
    reports: int = 500
    """Finished shards' reports a reconcile reads: a stage of more shards is read over several reconciles,
    each going on where the last stopped (`genfab.operator.progress`), never from the start."""


class BytePool:
    """A counting semaphore of bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._cv = threading.Condition()

    def take(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._free < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            self._free -= n
            return True

    def give(self, n: int) -> None:
        if n:
            with self._cv:
                self._free += n
                self._cv.notify_all()

    @property
    def free(self) -> int:
        with self._cv:
            return self._free


class Budget:
    """One reconcile's spending (see the module's docs)."""

    def __init__(self, bounds: ReadBounds, pool: BytePool, clock: Callable[[], float] = time.monotonic) -> None:
        self.bounds, self.pool, self.clock = bounds, pool, clock
        self.started = clock()
        self.requests = self.listed = self.read = self.held = 0

    def stop(self, what: str, bound: str, which: str = "") -> StorageLimit:
        return StorageLimit(f"{what}: {bound} (the operator's bound per reconcile; it tries again later)", which)

    def request(self, what: str) -> None:
        spent = self.clock() - self.started
        if spent > self.bounds.seconds:
            raise self.stop(what, f"storage calls took more than {self.bounds.seconds:g} s", "seconds")
        self.requests += 1
        if self.requests > self.bounds.requests:
            raise self.stop(what, f"more than {self.bounds.requests} storage requests", "requests")

    def list_one(self, what: str) -> None:
        if self.listed % PAGE == 0:
            self.request(what)
        self.listed += 1
        if self.listed > self.bounds.listed:
            raise self.stop(what, f"lists more than {self.bounds.listed} objects", "listed")

    def has_room(self, requests: int, nbytes: int) -> bool:
        """Whether `requests` more requests and `nbytes` more bytes fit, time left included: a reader that
        can stop anywhere (shard reports) stops here and leaves the rest of the budget to the reconcile."""
        return (self.requests + requests <= self.bounds.requests and self.read + nbytes <= self.bounds.bytes
                and self.clock() - self.started < self.bounds.seconds / 2)

    def left(self) -> int:
        return max(0, self.bounds.bytes - self.read)

    def take(self, n: int, what: str) -> None:
        self.read += n
        if self.read > self.bounds.bytes:
            raise self.stop(what, f"reading more than {human_bytes(self.bounds.bytes)}", "bytes")
        if not self.pool.take(n, self.bounds.pool_wait):
            raise self.stop(what, f"the operator holds {human_bytes(self.pool.size)} of tenants' storage reads "
                             "at once, all in use", "pool")
        self.held += n

    def close(self) -> None:
        self.pool.give(self.held)
        self.held = 0


_current = threading.local()


@contextlib.contextmanager
def budget(bounds: ReadBounds, pool: BytePool) -> Iterator[Budget]:
    """Charge this thread's storage calls to a fresh budget until the block ends."""
    spent = Budget(bounds, pool)
    before = getattr(_current, "budget", None)
    _current.budget = spent
    try:
        yield spent
    finally:
        _current.budget = before
        spent.close()


def current() -> Budget | None:
    budget_now: Budget | None = getattr(_current, "budget", None)
    return budget_now


class _CountedStream:
    """A read stream that charges what it returns."""

    def __init__(self, stream: BinaryIO, spend: Budget, what: str) -> None:
        self._stream, self._spend, self._what = stream, spend, what

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._spend.left() + 1  # never more than the budget could take
        data = self._stream.read(n)
        self._spend.take(len(data), self._what)
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _CountedStream:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class BudgetedStorage(Storage):
    """A storage whose every call is charged to `spend` (see the module's docs)."""

    def __init__(self, inner: Storage, spend: Budget) -> None:
        self.inner, self.spend = inner, spend
        self.uri = inner.uri

    def _call(self, key: str) -> str:
        what = self.inner.child(key) if key else self.uri
        self.spend.request(what)
        return what

    def read_bytes(self, key: str) -> bytes:
        return self.read_at_most(key, self.spend.left())

    def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
        where = self._call(key)
        left = self.spend.left()
        try:
            data = self.inner.read_at_most(key, min(limit, left), what)
        except StorageTooLarge:
            if left <= limit:  # the budget bound it, not the reader
                raise self.spend.stop(where, f"reading more than {human_bytes(self.spend.bounds.bytes)}",
                                      "bytes") from None
            raise
        self.spend.take(len(data), where)
        return data

    def open_read(self, key: str) -> BinaryIO:
        where = self._call(key)
        return cast(BinaryIO, _CountedStream(self.inner.open_read(key), self.spend, where))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        what = self.inner.child(prefix) if prefix else self.uri
        for obj in self.inner.list(prefix):
            self.spend.list_one(what)
            yield obj

    def size(self, key: str) -> int | None:
        self._call(key)
        return self.inner.size(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(key)
        self.inner.write_bytes(key, data)

    def upload_file(self, key: str, path: Path) -> None:
        self._call(key)
        self.inner.upload_file(key, path)

    def download_file(self, key: str, path: Path) -> None:
        self._call(key)
        self.inner.download_file(key, path)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        self._call(key)
        found = self.inner.read_versioned(key)
        if found is not None:
            self.spend.take(len(found[0]), self.inner.child(key))
        return found

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        self._call(key)
        return self.inner.write_if(key, data, version)

    def copy(self, src: str, dst: str) -> None:
        self._call(dst)
        self.inner.copy(src, dst)

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix)]
        self.delete_keys(keys)
        return len(keys)

    def delete_keys(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        for start in range(0, len(wanted), PAGE):  # S3 deletes 1,000 keys per request
            self._call(wanted[start])
        self.inner.delete_keys(wanted)


T = TypeVar("T")


class Stop(NoRoom):
    """The reconcile has no room left for a bounded reader's next read: the rest waits for the next one."""


class Share:
    """A reader that goes on across reconciles (finished shards' reports, a manual gate's samples) reads
    while the reconcile keeps room for the rest of its work, and stops (`Stop`) rather than stalling it."""

    def __init__(self) -> None:
        self.reads = 0

    def spend(self, read: Callable[[], T]) -> T:
        """`read()`; `Stop` when the reconcile has no room left for it, or its budget ran out on it after
        other reads. A bound reached on the first read is the reconcile's (StorageLimit: stuck or hostile)."""
        spend = current()
        if spend is not None and not spend.has_room(RESERVE_REQUESTS + 1, RESERVE_BYTES):
            raise Stop
        try:
            found = read()
        except StorageLimit:
            if not self.reads:
                raise
            raise Stop from None
        self.reads += 1
        return found
