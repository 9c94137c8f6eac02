"""`file://` storage: a directory tree with atomic writes (temp file + rename)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from genfab.storage.base import ObjectInfo, Storage, StorageError, safe_key

LOCK_SUFFIX = ".genfab-lock"


class FileStorage(Storage):
    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / safe_key(key)

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        """OS errors (a file where a folder should be, no permission, disk full) as StorageError."""
        try:
            yield
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot {action} {self.child(key)}: {exc.strerror or exc}") from None

    def read_bytes(self, key: str) -> bytes:
        with self._os_errors("read", key):
            try:
                return self._path(key).read_bytes()
            except FileNotFoundError:
                raise StorageError(f"not found: {self.child(key)}") from None

    def _atomic(self, key: str, fill: object) -> None:
        with self._os_errors("write", key):
            self._write_atomic(key, fill)

    def _write_atomic(self, key: str, fill: object) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            # mkstemp makes owner-only files; a committed output gets the mode any new file gets (the
            # umask's), so the dataset's readers and the other Pods on a shared volume can read it.
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as out:
                if isinstance(fill, bytes):
                    out.write(fill)
                else:
                    with open(fill, "rb") as src:  # type: ignore[call-overload]
                        shutil.copyfileobj(src, out, 8 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self._atomic(key, data)

    def upload_file(self, key: str, path: Path) -> None:
        self._atomic(key, path)

    def download_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise StorageError(f"not found: {self.child(key)}")
        with self._os_errors("read", key):
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, path)

    def open_read(self, key: str) -> BinaryIO:
        with self._os_errors("read", key):
            try:
                return self._path(key).open("rb")
            except FileNotFoundError:
                raise StorageError(f"not found: {self.child(key)}") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"{self.uri} is a file, not a folder")
        base = self._path(prefix) if prefix else self.root
        # A prefix may name a folder or the start of file names (never above the root).
        start = base if base.is_dir() or not prefix else base.parent
        if not start.is_dir():
            return
        found = []
        for dirpath, _, files in os.walk(start):
            for name in files:
                if name.startswith(".") and name.endswith((".part", LOCK_SUFFIX)):
                    continue  # an unfinished atomic write, a compare-and-swap lock
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                if not rel.startswith(prefix):
                    continue
                with self._os_errors("list", rel):
                    try:
                        stat = full.stat()
                    except FileNotFoundError:  # a link to nothing: no object (as in a bucket's listing)
                        continue
                found.append(ObjectInfo(rel, stat.st_size, modified=stat.st_mtime))
        yield from sorted(found, key=lambda o: o.key)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with self._os_errors("stat", key):
            try:
                info = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    @contextlib.contextmanager
    def _exclusive(self, key: str) -> Iterator[Path]:
        """Hold an advisory lock beside `key` (compare-and-swap on one machine's file system)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{target.name}{LOCK_SUFFIX}", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield target
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        with self._os_errors("read", key):
            try:
                data = self._path(key).read_bytes()
            except FileNotFoundError:
                return None
        return data, hashlib.sha256(data).hexdigest()

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        with self._os_errors("write", key), self._exclusive(key) as target:
            current = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None
            if current != version:
                return None
            self._write_atomic(key, data)
        return hashlib.sha256(data).hexdigest()

    def copy(self, src: str, dst: str) -> None:
        self.upload_file(dst, self._path(src))

    def delete_prefix(self, prefix: str) -> int:
        objects = list(self.list(prefix))
        self.delete_keys(o.key for o in objects)
        return len(objects)

    def delete_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            with self._os_errors("delete", key):
                self._path(key).unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it: a race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
