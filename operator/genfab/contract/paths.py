"""Paths and ids that become object-storage keys: checked before they touch storage.

No `..` or `.` segments, no absolute paths, no backslashes, no NUL. The API's constrained types
(`genfab.api.types`) and the storage layer both use these checks, so a value the API accepted is a
value storage accepts.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_BUCKET_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
"""S3 refuses bucket names formatted as an IP address: such a URI names no bucket anyone can have."""
SYSTEM_FOLDERS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/dev", "/proc", "/sys")
"""A run's output is never written into the operating system's own folders (nor `/` itself)."""
SAMPLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_segments(path: str, what: str) -> None:
    if "\x00" in path:
        raise ValueError(f"{what} must not contain a NUL byte")
    if "\\" in path:
        raise ValueError(f"{what} must use '/' separators, not backslashes")
    if any(seg in (".", "..") for seg in path.split("/")):
        raise ValueError(f"{what} must not contain '.' or '..' path segments")


def check_storage_uri(value: str, *, schemes: tuple[str, ...] = ("s3", "file")) -> str:
    """`s3://bucket/prefix` or `file://path`; raises ValueError naming what is wrong."""
    allowed = " or ".join(f"{s}://..." for s in schemes)
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes:
        raise ValueError(f"must be a URI of the form {allowed}")
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not S3_BUCKET_RE.match(bucket) or ".." in bucket:
            raise ValueError(
                f"S3 bucket {bucket!r} is not a valid bucket name "
                "(3-63 characters: lowercase letters, digits, '.', '-')"
            )
        if IP_BUCKET_RE.match(bucket):
            raise ValueError(f"S3 bucket {bucket!r} is an IP address, not a bucket name (the endpoint goes in "
                             "storage.endpoint)")
        if key.startswith("/"):
            raise ValueError("S3 key prefix must be relative, not absolute")
        check_segments(key, "S3 key prefix")
    elif scheme == "file":
        if not rest:
            raise ValueError("file:// URI needs a path, e.g. file://./out or file:///data/out")
        # `file://./out` is relative to the working directory; only that leading `.` is allowed.
        check_segments(rest.removeprefix("./"), "file path")
    else:
        if not rest or rest[0] == "/":
            raise ValueError(f"{scheme}:// URI needs a host")
        check_segments(rest, "URI path")
    return value


def check_output_uri(value: str) -> str:
    """A storage URI a run may write to: not `/` nor under a system folder (`SYSTEM_FOLDERS`)."""
    check_storage_uri(value)
    if value.startswith("file://"):
        path = "/" + value.removeprefix("file://").strip("/") if value.startswith("file:///") else None
        folder = next((f for f in SYSTEM_FOLDERS if path == f or (path or "").startswith(f + "/")),
                      "/" if path == "/" else None)
        if folder is not None:
            raise ValueError(f"{path} is {'the root folder' if folder == '/' else f'in the system folder {folder}'}; "
                             "write outputs to a folder of your own (e.g. file://./genfab-runs/NAME)")
    return value


REF_SCHEME = "ref:"
"""An input that is another resource's output, `ref:Kind/name/path`: the executor resolves it to
that resource's output root (a cluster from its status, a local run from `--ref` or its local run)."""


def ref_uri(kind: str, name: str, path: str) -> str:
    return f"{REF_SCHEME}{kind}/{name}/{path}"


def split_ref(uri: str) -> tuple[str, str] | None:
    """(`Kind/name`, path inside its output) of a `ref:` input; None for a storage URI."""
    if not uri.startswith(REF_SCHEME):
        return None
    kind, _, rest = uri.removeprefix(REF_SCHEME).partition("/")
    name, _, path = rest.partition("/")
    return f"{kind}/{name}", path


def check_input_uri(value: str) -> str:
    """Inputs are read from object storage like outputs are written (no stage fetches web URLs:
    copy such files into a bucket first)."""
    return check_storage_uri(value, schemes=("s3", "file"))


def check_relative_path(value: str) -> str:
    if not value:
        raise ValueError("path must not be empty")
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise ValueError("path must be relative to the dataset root, not absolute")
    check_segments(value, "path")
    return value


def check_sample_id(value: str) -> str:
    if not SAMPLE_ID_RE.match(value):
        if "/" in value or "\\" in value or ".." in value:
            raise ValueError("sample id must be a single path-safe name, not a path")
        raise ValueError(
            f"sample id {value!r} is invalid: use 1-128 of A-Z a-z 0-9 '.', '_', '-', "
            "starting with a letter or digit"
        )
    return value


def join_uri(base: str, *parts: str) -> str:
    """`base` with relative `parts` appended, one `/` between each (empty parts are skipped)."""
    out = base.rstrip("/")
    for p in parts:
        if p:
            out += "/" + p.strip("/")
    return out


SampleIdStr = Annotated[str, AfterValidator(check_sample_id)]
"""A sample id (one path-safe name) in contract objects."""
RelativePathStr = Annotated[str, AfterValidator(check_relative_path)]
"""A relative storage key or dataset path in contract objects."""
