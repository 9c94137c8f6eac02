"""`file://` storage: a directory tree with atomic writes (temp file + rename).

Reads open regular files only (a FIFO, a device or a socket is refused with one line, never waited
on: `O_NONBLOCK` makes opening a FIFO return at once). A storage may be *confined* to folders (the
cluster's `storage.filePrefixes` for a namespace): every path it reads, lists, writes or deletes is
resolved (symbolic links followed, as the kernel would) and must stay inside them, and what was
opened is checked again through `/proc/self/fd`, so a link swapped in between the check and the
open is caught too. Entries of a listing that lead outside, and special files, are not objects.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from genfab.contract.files import open_regular
from genfab.storage.base import ObjectInfo, Storage, StorageError, StorageLimit, safe_key

LOCK_SUFFIX = ".genfab-lock"
OUTSIDE = "leads outside the folders this cluster allows (storage.filePrefixes; a symbolic link?)"
"""Said the same way whether or not the place outside exists: a listing or a refusal must not tell."""


def inside(path: str, folder: str) -> bool:
    """Whether the resolved `path` is `folder` or below it (both already resolved)."""
    base = folder.rstrip("/") or "/"
    return path == base or path.startswith(base if base.endswith("/") else base + "/")


class FileStorage(Storage):
    def __init__(self, uri: str, root: Path, confine: Sequence[str | Path] | None = None,
                 max_listed: int | None = None) -> None:
        self.uri = uri
        self.root = root
        self.confine = None if confine is None else tuple(os.path.realpath(p) for p in confine)
        """Resolved folders every path must stay in (None: not confined, as on a laptop)."""
        self.max_listed = max_listed
        """Files a listing may walk (each folder is read whole and sorted before its first key is yielded:
        a reader's own budget, counting what is yielded, would come too late); None: any."""

    def _where(self, key: str) -> str:
        return self.child(key) if key else self.uri

    def _check(self, real: str, key: str) -> None:
        if self.confine is not None and not any(inside(real, c) for c in self.confine):
            raise StorageError(f"{self._where(key)}: {OUTSIDE}")

    def _path(self, key: str) -> Path:
        path = self.root / safe_key(key) if key else self.root
        self._check(os.path.realpath(path), key)
        return path

    def _opened_inside(self, fd: int, key: str) -> None:
        """The file or folder actually opened is inside (a link swapped in after the check is caught)."""
        if self.confine is not None:
            self._check(os.readlink(f"/proc/self/fd/{fd}"), key)

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        """OS errors (a file where a folder should be, no permission, disk full) as StorageError."""
        try:
            yield
        except StorageError:
            raise
        except FileNotFoundError:
            raise StorageError(f"not found: {self._where(key)}") from None
        except OSError as exc:
            raise StorageError(f"cannot {action} {self._where(key)}: {exc.strerror or exc}") from None

    def _open_regular(self, key: str) -> int:
        """A read-only descriptor of the regular file at `key` (never blocks: see the module's docs)."""
        path, flags = self._path(key), 0
        if self.confine is not None:  # open what was checked; a link put there since is refused (ELOOP)
            path, flags = Path(os.path.realpath(path)), os.O_NOFOLLOW
        with self._os_errors("read", key):
            fd = open_regular(path, flags)
        try:
            with self._os_errors("read", key):
                self._opened_inside(fd, key)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_bytes(self, key: str) -> bytes:
        with self._os_errors("read", key), os.fdopen(self._open_regular(key), "rb") as fh:
            return fh.read()

    def _atomic(self, key: str, fill: bytes | Callable[[], BinaryIO]) -> None:
        with self._os_errors("write", key):
            self._write_atomic(key, fill)

    @contextlib.contextmanager
    def _parent(self, key: str) -> Iterator[tuple[int, str]]:
        """(descriptor of the checked parent folder, the file's name): writes and renames go through it."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        real = os.path.realpath(target.parent)
        self._check(real, key)
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            self._opened_inside(fd, key)
            yield fd, target.name
        finally:
            os.close(fd)

    def _write_atomic(self, key: str, fill: bytes | Callable[[], BinaryIO]) -> None:
        with self._parent(key) as (folder, name):
            tmp = f".{name}.{secrets.token_hex(6)}.part"
            # The mode any new file gets (0666 less the umask), so a dataset's readers and the other
            # Pods on a shared volume can read it; never through a link (O_NOFOLLOW | O_EXCL).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                         dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(fill, bytes):
                        out.write(fill)
                    else:
                        with fill() as src:
                            shutil.copyfileobj(src, out, 8 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)  # replaces a link, never its target
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=folder)
                raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self._atomic(key, data)

    def upload_file(self, key: str, path: Path) -> None:
        self._atomic(key, lambda: path.open("rb"))  # a local file of this process (not tenant storage)

    def download_file(self, key: str, path: Path) -> None:
        with self._os_errors("read", key), os.fdopen(self._open_regular(key), "rb") as src:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                shutil.copyfileobj(src, out, 8 << 20)

    def open_read(self, key: str) -> BinaryIO:
        return os.fdopen(self._open_regular(key), "rb")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        root = self._path("")
        if root.exists() and not root.is_dir():
            raise StorageError(f"{self.uri} is a file, not a folder")
        # A prefix is the start of keys, as in a bucket: `a` lists `a/x`, `a-b/y` and `ab` (the folder
        # up to its last `/` is walked, the folders that cannot match are not entered).
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else root
        if not start.is_dir():
            return
        # Depth first, each folder's names sorted with a folder's name as `name/`: the keys come out in
        # the order a sorted listing has (a bucket's), while only the folders on the way down are held
        # (a listing of 6,000,000 keys is never held whole). Linked folders are not entered.
        walked = [0]
        top = os.fspath(self.root)
        first = os.path.relpath(start, top).replace(os.sep, "/")
        stack = [(os.fspath(start), "" if first == "." else first + "/", self._names(os.fspath(start), prefix, walked))]
        while stack:
            dirpath, folder, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            rel, path = folder + name, os.path.join(dirpath, name.rstrip("/"))
            if name.endswith("/"):
                if rel.startswith(prefix) or prefix.startswith(rel):
                    stack.append((path, rel, self._names(path, prefix, walked)))
                continue
            if not rel.startswith(prefix):
                continue
            if self.confine is not None and not any(inside(os.path.realpath(path), c) for c in self.confine):
                continue  # a link leading outside is no object here (whether or not its target exists)
            try:
                info = os.stat(path)  # follows a link, as a listing of the link's target would
            except (FileNotFoundError, NotADirectoryError):  # a link to nothing, or gone since: no object
                continue
            if stat.S_ISREG(info.st_mode):  # a FIFO, device or socket is no object either
                yield ObjectInfo(rel, info.st_size, modified=info.st_mtime)

    def _names(self, dirpath: str, prefix: str, walked: builtins.list[int]) -> Iterator[str]:
        """A folder's entries, sorted, a folder's as `name/`; unfinished writes and locks left out.
        `walked` counts the files of the whole listing against `max_listed`."""
        names = []
        with self._os_errors("list", prefix), os.scandir(dirpath) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    names.append(entry.name + "/")
                    continue
                walked[0] += 1
                if self.max_listed is not None and walked[0] > self.max_listed:
                    raise StorageLimit(f"{self._where(prefix)}: lists more than {self.max_listed} objects (the "
                                       "operator's bound per reconcile; it tries again later)", "listed")
                if not (entry.name.startswith(".") and entry.name.endswith((".part", LOCK_SUFFIX))):
                    names.append(entry.name)  # (else an unfinished atomic write, a compare-and-swap lock)
        names.sort()
        return iter(names)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with self._os_errors("stat", key):
            try:
                info = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    @contextlib.contextmanager
    def _exclusive(self, key: str) -> Iterator[None]:
        """Hold an advisory lock beside `key` (compare-and-swap on one machine's file system)."""
        with self._parent(key) as (folder, name):
            fd = os.open(f".{name}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                         dir_fd=folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def _current(self, key: str) -> bytes | None:
        try:
            return self.read_bytes(key)
        except StorageError as exc:
            if str(exc).startswith("not found"):
                return None
            raise

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        data = self._current(key)
        return None if data is None else (data, hashlib.sha256(data).hexdigest())

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        with self._os_errors("write", key), self._exclusive(key):
            current = self._current(key)
            if (hashlib.sha256(current).hexdigest() if current is not None else None) != version:
                return None
            self._write_atomic(key, data)
        return hashlib.sha256(data).hexdigest()

    def copy(self, src: str, dst: str) -> None:
        self._atomic(dst, lambda: self.open_read(src))

    def delete_prefix(self, prefix: str) -> int:
        objects = list(self.list(prefix))
        self.delete_keys(o.key for o in objects)
        return len(objects)

    def delete_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            with self._os_errors("delete", key):
                self._path(key).unlink(missing_ok=True)
