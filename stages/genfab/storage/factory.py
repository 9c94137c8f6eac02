"""`open_storage(uri)`: the right backend for a URI."""

from __future__ import annotations

from pathlib import Path

from genfab.contract.paths import check_storage_uri
from genfab.storage.base import Storage, StorageError
from genfab.storage.local import FileStorage
from genfab.storage.s3 import S3Settings, S3Storage

__all__ = ["S3Settings", "open_storage"]


def open_storage(uri: str, settings: S3Settings | None = None) -> Storage:
    """A storage rooted at `uri` (`s3://bucket/prefix` or `file://path`)."""
    try:
        check_storage_uri(uri)
    except ValueError as exc:
        raise StorageError(f"bad storage URI: {exc}") from None
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        return FileStorage(uri, Path(rest))
    bucket, _, prefix = rest.partition("/")
    return S3Storage(uri, bucket, prefix, settings or S3Settings.from_env())
