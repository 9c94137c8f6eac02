"""Constrained string types used across the API, each with a clear error and a CRD pattern.

Everything that later becomes part of an object-storage key (URIs, sample ids, relative paths)
is checked here, before it reaches storage: no `..`, no absolute paths, no backslashes, no NUL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
SAMPLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")

# CEL twin of `_check_segments`: no `.`/`..` path segment, no backslash, no NUL.
NO_TRAVERSAL_CEL = (
    "!self.matches('(^|/)[.][.](/|$)') && !self.matches('[^/:]/[.](/|$)') && !self.contains('\\\\')"
)


def _check_segments(path: str, what: str) -> None:
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
        if key.startswith("/"):
            raise ValueError("S3 key prefix must be relative, not absolute")
        _check_segments(key, "S3 key prefix")
    elif scheme == "file":
        if not rest:
            raise ValueError("file:// URI needs a path, e.g. file://./out or file:///data/out")
        # `file://./out` is relative to the working directory; only that leading `.` is allowed.
        _check_segments(rest.removeprefix("./"), "file path")
    else:
        if not rest or rest[0] == "/":
            raise ValueError(f"{scheme}:// URI needs a host")
        _check_segments(rest, "URI path")
    return value


def check_input_uri(value: str) -> str:
    return check_storage_uri(value, schemes=("s3", "file", "http", "https"))


def check_relative_path(value: str) -> str:
    if not value:
        raise ValueError("path must not be empty")
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise ValueError("path must be relative to the dataset root, not absolute")
    _check_segments(value, "path")
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


def _pattern_check(regex: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"{value!r} is not a valid {what} (must match {regex.pattern})")
        return value

    return check


def _uri_schema(pattern: str) -> dict[str, Any]:
    return {
        "pattern": pattern,
        "maxLength": 1024,
        "x-kubernetes-validations": [
            {"rule": NO_TRAVERSAL_CEL, "message": "must not contain '.' or '..' segments or backslashes"}
        ],
    }


StorageUri = Annotated[
    str,
    AfterValidator(check_storage_uri),
    Field(json_schema_extra=_uri_schema(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/].*)?/?|file://.+)$")),
]
"""Object-storage location: `s3://bucket/prefix` or `file://path`."""

InputUri = Annotated[
    str,
    AfterValidator(check_input_uri),
    Field(
        json_schema_extra=_uri_schema(
            r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/].*)?|file://.+|https?://[^/].*)$"
        )
    ),
]
"""Readable input: `s3://`, `file://`, `http://` or `https://`."""

RelativePath = Annotated[
    str,
    AfterValidator(check_relative_path),
    Field(
        max_length=1024,
        json_schema_extra={
            "pattern": r"^[^/\\]",
            "x-kubernetes-validations": [
                {"rule": NO_TRAVERSAL_CEL, "message": "must not contain '.' or '..' segments or backslashes"}
            ],
        },
    ),
]

SampleId = Annotated[
    str, AfterValidator(check_sample_id), Field(json_schema_extra={"pattern": SAMPLE_ID_RE.pattern, "maxLength": 128})
]

DnsLabel = Annotated[
    str,
    AfterValidator(_pattern_check(DNS_LABEL_RE, "DNS-1123 label")),
    Field(max_length=63, json_schema_extra={"pattern": DNS_LABEL_RE.pattern}),
]

StageName = Annotated[
    str,
    AfterValidator(_pattern_check(STAGE_NAME_RE, "stage name")),
    Field(json_schema_extra={"pattern": STAGE_NAME_RE.pattern, "maxLength": 32}),
]

EnvName = Annotated[
    str,
    AfterValidator(_pattern_check(ENV_NAME_RE, "environment variable name")),
    Field(json_schema_extra={"pattern": ENV_NAME_RE.pattern, "maxLength": 256}),
]

Quantity = Annotated[
    str,
    AfterValidator(_pattern_check(QUANTITY_RE, "Kubernetes quantity (e.g. 500m, 4, 32Gi)")),
    Field(json_schema_extra={"pattern": QUANTITY_RE.pattern, "maxLength": 32}),
]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
