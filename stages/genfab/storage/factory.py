"""`open_storage(uri)`: the right backend for a URI."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from genfab.contract.names import ENV_FILE_ROOTS
from genfab.contract.paths import check_storage_uri
from genfab.storage.base import Storage, StorageError
from genfab.storage.local import FileStorage
from genfab.storage.s3 import S3Settings, S3Storage

__all__ = ["S3Settings", "file_roots_from_env", "open_storage"]


def file_roots_from_env() -> tuple[str, ...] | None:
    """The folders `file://` storage is confined to in this process (`GENFAB_FILE_ROOTS`), or None."""
    raw = os.environ.get(ENV_FILE_ROOTS)
    if not raw:
        return None
    try:
        roots = json.loads(raw)
    except ValueError:
        roots = None
    if not isinstance(roots, list) or not all(isinstance(r, str) and r.startswith("/") for r in roots):
        raise StorageError(f"{ENV_FILE_ROOTS} must be a JSON list of absolute folders")
    return tuple(roots)


def open_storage(uri: str, settings: S3Settings | None = None, confine: Sequence[str] | None = None,
                 max_listed: int | None = None) -> Storage:
    """A storage rooted at `uri` (`s3://bucket/prefix` or `file://path`). `confine`: the folders a
    `file://` storage must stay in (default: `GENFAB_FILE_ROOTS`, else none); `max_listed`: the files a
    `file://` listing may walk."""
    try:
        check_storage_uri(uri)
    except ValueError as exc:
        raise StorageError(f"bad storage URI: {exc}") from None
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        return FileStorage(uri, Path(rest), confine if confine is not None else file_roots_from_env(), max_listed)
    bucket, _, prefix = rest.partition("/")
    return S3Storage(uri, bucket, prefix, settings or S3Settings.from_env())


def open_confined(uri: str, settings: S3Settings | None = None) -> Storage:
    """A storage kept inside its own folder: on `file://` every read, listing and write is resolved and
    must stay in the folder's real path (no link followed out of it: a shared volume that stage Pods
    write and a person mounts cannot make a command read or write elsewhere); `s3://` as `open_storage`."""
    if uri.startswith("file://"):
        return open_storage(uri, settings, confine=[os.path.realpath(uri.removeprefix("file://"))])
    return open_storage(uri, settings)
