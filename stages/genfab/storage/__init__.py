"""Object storage for stages and executors: one small interface over `s3://` (boto3) and `file://`."""

from genfab.storage.base import ObjectInfo, Storage, StorageError, StorageLimit, StorageTooLarge
from genfab.storage.factory import S3Settings, open_confined, open_storage
from genfab.storage.markers import MARKER, Check, Marker, Reuse, check_reuse, is_committed, read_marker, write_marker

__all__ = [
    "MARKER",
    "Check",
    "Marker",
    "ObjectInfo",
    "Reuse",
    "S3Settings",
    "Storage",
    "StorageError",
    "StorageLimit",
    "StorageTooLarge",
    "check_reuse",
    "is_committed",
    "open_confined",
    "open_storage",
    "read_marker",
    "write_marker",
]
