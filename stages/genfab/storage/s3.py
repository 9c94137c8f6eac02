"""`s3://` storage through boto3: adaptive retries, multipart transfers, paginated listing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from genfab.contract.names import (
    CREDENTIAL_KEYS,
    ENV_ACCESS_KEY_ID,
    ENV_S3_ADDRESSING_STYLE,
    ENV_S3_ENDPOINT,
    ENV_S3_REGION,
    ENV_S3_SECRET_DIR,
    ENV_SECRET_ACCESS_KEY,
    ENV_SESSION_TOKEN,
)
from genfab.storage import redact
from genfab.storage.base import ObjectInfo, Storage, StorageError, check_key_length, safe_key, shorten

T = TypeVar("T")
redact.install()  # before any boto3 client exists: botocore logs credentials at DEBUG
MiB = 1 << 20


@dataclass(frozen=True)
class S3Settings:
    """How to reach an S3-compatible store. Secrets are excluded from repr (and so from logs)."""

    endpoint: str | None = None
    region: str = "us-east-1"
    addressing_style: str = "auto"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_attempts: int = 10
    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 8  # measured: 16 threads upload 1 GiB slower than 8 on a 2-CPU node (benchmarks/storage.py)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> S3Settings:
        """Endpoint/region from `GENFAB_S3_*`; credentials from the standard AWS variables or from
        a mounted Secret directory (`GENFAB_S3_SECRET_DIR` with one file per key)."""
        env = dict(os.environ if env is None else env)
        secret_dir = env.get(ENV_S3_SECRET_DIR)
        if secret_dir:
            for name, _ in CREDENTIAL_KEYS:
                path = Path(secret_dir) / name
                if path.is_file():
                    env.setdefault(name, path.read_text().strip())
        values: dict[str, Any] = {
            "endpoint": env.get(ENV_S3_ENDPOINT) or env.get("AWS_ENDPOINT_URL_S3") or None,
            "region": env.get(ENV_S3_REGION) or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            "addressing_style": env.get(ENV_S3_ADDRESSING_STYLE, "auto"),
            "access_key_id": env.get(ENV_ACCESS_KEY_ID),
            "secret_access_key": env.get(ENV_SECRET_ACCESS_KEY),
            "session_token": env.get(ENV_SESSION_TOKEN),
        }
        values.update(overrides)
        return cls(**values)

    def client(self) -> Any:
        redact.remember(self.access_key_id, self.secret_access_key, self.session_token)
        config = Config(
            region_name=self.region,
            retries={"mode": "adaptive", "max_attempts": self.max_attempts},
            s3={"addressing_style": self.addressing_style},
            max_pool_connections=max(10, self.max_concurrency * 2),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            config=config,
        )

    def transfer(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )


class S3Storage(Storage):
    def __init__(self, uri: str, bucket: str, prefix: str, settings: S3Settings, client: Any = None) -> None:
        self.uri = uri
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings
        self.client = client if client is not None else settings.client()
        self._transfer = settings.transfer()

    def _key(self, key: str) -> str:
        key = safe_key(key)
        return check_key_length(f"{self.prefix}/{key}" if self.prefix else key)

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run a boto3 call; turn every error into a bounded StorageError naming the object (never
        credentials): boto3's transfer manager and its threads raise more than botocore's errors."""
        where = shorten(f"{self.uri.rstrip('/')}/{key}" if key else self.uri)
        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = err.get("Code", "?")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise StorageError(f"not found: {where}") from None
            raise StorageError(f"{what} {where} failed: {code} {shorten(err.get('Message', ''), 300)}".strip()
                               ) from None
        except StorageError:
            raise
        except Exception as exc:  # BotoCoreError, S3UploadFailedError, RuntimeError from s3transfer ...
            raise StorageError(f"{what} {where} failed: {type(exc).__name__}: {shorten(str(exc), 300)}") from None

    def read_bytes(self, key: str) -> bytes:
        body = self._call("read", key, lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"])
        return cast(bytes, self._call("read", key, body.read))

    def write_bytes(self, key: str, data: bytes) -> None:
        # A single PUT is atomic on S3: readers never see a partial object.
        self._call("write", key, lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data))

    def upload_file(self, key: str, path: Path) -> None:
        full = self._key(key)
        if path.stat().st_size >= self.settings.multipart_threshold:
            # boto3 aborts an upload that fails or is interrupted in this process; one whose process
            # was killed (OOM, SIGKILL after the grace period) leaves its parts behind: the retry of
            # that sample, which writes the same key, removes them.
            self._abort_uploads(full)
        self._call("upload", key, lambda: self.client.upload_file(str(path), self.bucket, full, Config=self._transfer))

    def _abort_uploads(self, full_key: str) -> None:
        """Abort the incomplete multipart uploads of one key (best effort; a bucket lifecycle rule
        `AbortIncompleteMultipartUpload` covers keys that are never written again)."""
        try:
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=full_key).get("Uploads", [])
            for upload in uploads:
                if upload["Key"] == full_key:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload["UploadId"])
        except Exception:
            pass

    def download_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        try:
            self._call("download", key, lambda: self.client.download_file(
                self.bucket, self._key(key), str(tmp), Config=self._transfer))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def open_read(self, key: str) -> BinaryIO:
        response = self._call("open", key, lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key)))
        return cast(BinaryIO, response["Body"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(f"{self.prefix}/") if self.prefix else 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        iterator = iter(pages)
        while True:
            page = self._call("list", prefix, lambda: next(iterator, None))
            if page is None:
                return
            for obj in page.get("Contents", []):
                etag, modified = obj.get("ETag"), obj.get("LastModified")
                yield ObjectInfo(obj["Key"][strip:], int(obj["Size"]), str(etag).strip('"') if etag else None,
                                 modified.timestamp() if modified is not None else None)

    def size(self, key: str) -> int | None:
        try:
            head = self._call("stat", key, lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except StorageError as exc:
            if str(exc).startswith("not found"):
                return None
            raise
        return int(head["ContentLength"])

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            got = self._call("read", key, lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key)))
        except StorageError as exc:
            if str(exc).startswith("not found"):
                return None
            raise
        return cast(bytes, self._call("read", key, got["Body"].read)), str(got["ETag"])

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            put = self._call("write", key, lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **condition))
        except StorageError as exc:
            # 412: the object changed (or exists); 409: a concurrent conditional write won.
            if any(code in str(exc) for code in ("PreconditionFailed", "ConditionalRequestConflict")):
                return None
            raise
        return str(put["ETag"])

    def copy(self, src: str, dst: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._key(src)}
        self._call("copy", src, lambda: self.client.copy(source, self.bucket, self._key(dst), Config=self._transfer))

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix)]
        self._delete(keys, prefix)
        return len(keys)

    def delete_keys(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        self._delete(wanted, wanted[0] if wanted else "")

    def _delete(self, keys: Sequence[str], what: str) -> None:
        full = [self._key(k) for k in keys]
        for start in range(0, len(full), 1000):  # DeleteObjects takes at most 1000 keys
            batch = {"Objects": [{"Key": k} for k in full[start:start + 1000]], "Quiet": True}
            self._call("delete", what, lambda b=batch: self.client.delete_objects(  # type: ignore[misc]
                Bucket=self.bucket, Delete=b))
