"""The storage interface. Keys are relative to the storage's root prefix and validated first."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from genfab.contract.paths import check_relative_path


class StorageError(RuntimeError):
    """A storage operation failed; the message never contains credentials."""


class StorageTooLarge(StorageError):
    """An object is larger than its reader's bound (`Storage.read_at_most`)."""


class StorageLimit(StorageError):
    """A bound on the reader's own work was reached (the operator's per-reconcile budget of time,
    requests and bytes): not the object's fault alone, so it is read again later, not refused."""

    reason = "StorageLimit"

    def __init__(self, message: str, bound: str = "") -> None:
        super().__init__(message)
        self.bound = bound
        """Which bound: `listed` or `requests` (much to list), `seconds`, `bytes` or `pool`; "" if unsaid."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    """Relative to the storage root."""
    size: int
    etag: str | None = None
    """The store's checksum of the content where it has one (S3's ETag: the MD5 of a single-part
    upload, a digest of the parts' MD5s for a multipart one); None for `file://`."""
    modified: float | None = None
    """When the object was last written (seconds since the epoch: S3's LastModified, a file's mtime)."""


MAX_KEY_BYTES = 1024
"""S3's limit on an object key (UTF-8 bytes); file:// storage keeps the same so both behave alike."""


def shorten(text: str, limit: int = 160) -> str:
    """`text` cut in the middle to at most `limit` characters (keys and URIs in messages)."""
    return text if len(text) <= limit else f"{text[: limit // 2 - 2]}...{text[-(limit // 2 - 1):]}"


def human_bytes(n: int) -> str:
    """`16 MiB`, `256 KiB`, `900 bytes`: a bound as people read it."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def check_key_length(key: str) -> str:
    size = len(key.encode("utf-8", "surrogateescape"))  # a local name that is not UTF-8: its own bytes
    if size > MAX_KEY_BYTES:
        raise StorageError(f"storage key {shorten(key)!r} is {size} bytes, longer than {MAX_KEY_BYTES} bytes "
                           "(the S3 limit)")
    return key


def safe_key(key: str) -> str:
    """Validate a relative key: no `..`/`.` segments, not absolute, no backslashes or NUL, at most
    1024 bytes."""
    try:
        check_relative_path(key)
    except ValueError as exc:
        raise StorageError(f"unsafe storage key {shorten(key)!r}: {exc}") from None
    return check_key_length(key)


class Storage(abc.ABC):
    """One root (`s3://bucket/prefix` or `file://dir`); every key is relative to it."""

    uri: str

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write atomically: readers see the old object or the whole new one, never a part."""

    @abc.abstractmethod
    def upload_file(self, key: str, path: Path) -> None:
        """Upload a local file (multipart above the threshold on S3)."""

    @abc.abstractmethod
    def download_file(self, key: str, path: Path) -> None: ...

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A stream for large objects; close it when done."""

    def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
        """The whole object, if it is at most `limit` bytes; else StorageTooLarge naming it and the
        bound, having read no more than `limit` + 1 bytes (what a reader of untrusted objects uses)."""
        with self.open_read(key) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise StorageTooLarge(f"{what or self.child(key)}: larger than {human_bytes(limit)}, the most genfab "
                                  "reads of it")
        return bytes(data)

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix` (paginated; any number of keys), in key order."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abc.abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """(content, version) of a small object, or None when there is none. The version is what
        `write_if` compares (S3: the ETag)."""

    @abc.abstractmethod
    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        """Write only while the object is still at `version` (None: only while there is no object);
        returns the new version, or None when another writer got there first. S3 does this with
        conditional writes (If-Match / If-None-Match), which AWS, MinIO and Ceph RGW support."""

    @abc.abstractmethod
    def copy(self, src: str, dst: str) -> None: ...

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many."""

    @abc.abstractmethod
    def delete_keys(self, keys: Iterable[str]) -> None:
        """Delete exactly these objects (a missing one is no error)."""

    def write_many(self, items: Iterable[tuple[str, bytes]], workers: int = 16) -> int:
        """Write many small objects concurrently (per-object latency dominates on S3); returns how many."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(1 for _ in pool.map(lambda kv: self.write_bytes(*kv), items))

    def read_many(self, keys: Iterable[str], workers: int = 16) -> dict[str, bytes]:
        """Read many small objects concurrently."""
        keys = list(keys)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip(keys, pool.map(self.read_bytes, keys), strict=True))

    def download_prefix(self, prefix: str, target: Path) -> int:
        """Copy every object under `prefix` into the local folder `target` (keys relative to
        `prefix`); returns how many."""
        count = 0
        for obj in self.list(prefix):
            self.download_file(obj.key, target / obj.key[len(prefix):])
            count += 1
        return count

    def child(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{safe_key(key)}"
