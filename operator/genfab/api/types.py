"""Constrained string types used across the API, each with a clear error and a CRD pattern.

Everything that later becomes part of an object-storage key (URIs, sample ids, relative paths)
is checked here, before it reaches storage: no `..`, no absolute paths, no backslashes, no NUL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from genfab.contract.paths import (
    SAMPLE_ID_RE,
    SYSTEM_FOLDERS,
    check_input_uri,
    check_output_uri,
    check_relative_path,
    check_sample_id,
    check_storage_uri,
)

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")

# CEL twin of `genfab.contract.paths` segment checks: no `.`/`..` path segment, no backslash, no NUL.
NO_TRAVERSAL_CEL = (
    "!self.matches('(^|/)[.][.](/|$)') && !self.matches('[^/:]/[.](/|$)') && !self.contains('\\\\')"
    " && !self.contains('\\u0000')"
)
# CEL twin of the IP-address bucket check.
NO_IP_BUCKET_CEL = "!self.matches('^s3://[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+(/|$)')"
# CEL twin of `check_output_uri`'s system folders.
NO_SYSTEM_FOLDER_CEL = ("!self.matches('^file:///*$') && !self.matches('^file:///+("
                        + "|".join(f.strip("/") for f in SYSTEM_FOLDERS) + ")(/|$)')")
URI_MAX = 1024


def _pattern_check(regex: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"{value!r} is not a valid {what} (must match {regex.pattern})")
        return value

    return check


def _uri_schema(pattern: str, *extra: dict[str, str]) -> dict[str, Any]:
    return {
        "pattern": pattern,
        "maxLength": URI_MAX,
        "x-kubernetes-validations": [
            {"rule": NO_TRAVERSAL_CEL, "message": "must not contain '.' or '..' segments, backslashes or NUL"},
            {"rule": NO_IP_BUCKET_CEL, "message": "an S3 bucket name, not an IP address"},
            *extra,
        ],
    }


StorageUri = Annotated[
    str,
    Field(max_length=URI_MAX),
    AfterValidator(check_storage_uri),
    Field(json_schema_extra=_uri_schema(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/].*)?/?|file://.+)$")),
]
"""Object-storage location: `s3://bucket/prefix` or `file://path`."""

OutputUri = Annotated[
    str,
    Field(max_length=URI_MAX),
    AfterValidator(check_output_uri),
    Field(json_schema_extra=_uri_schema(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/].*)?/?|file://.+)$",
                                        {"rule": NO_SYSTEM_FOLDER_CEL,
                                         "message": "not / nor a system folder (/etc, /usr, ...)"})),
]
"""Where a run writes: a `StorageUri` that is not `/` nor under a system folder."""

InputUri = Annotated[
    str,
    Field(max_length=URI_MAX),
    AfterValidator(check_input_uri),
    Field(
        json_schema_extra=_uri_schema(
            r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/].*)?|file://.+)$"
        )
    ),
]
"""Readable input: `s3://` or `file://`."""

# A path segment other than `.` and `..`, without `/`, backslash or NUL (RE2 and Python alike).
_SEGMENT = r"([^./\\\x00][^/\\\x00]*|[.][^./\\\x00][^/\\\x00]*|[.][.][^/\\\x00]+)"
RELATIVE_PATH_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT}?)*$"
"""The CRD's form of `check_relative_path` (drive letters aside): a non-empty first segment (not
absolute), no `.`/`..` segment, no backslash or NUL. A pattern, not CEL: a curated set's 10,000
samples hold five such paths each, and CEL's estimated cost of the same check over them was 4x the
per-rule budget of Kubernetes' CRD server (patterns have no cost budget)."""

PATTERN_MEANINGS: dict[str, str] = {
    RELATIVE_PATH_PATTERN: "a relative path: no `.` or `..` segments, backslashes or NUL",
}
"""What a pattern too long to read means, for the field reference."""

RelativePath = Annotated[
    str,
    AfterValidator(check_relative_path),
    Field(max_length=1024, json_schema_extra={"pattern": RELATIVE_PATH_PATTERN}),
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
    Field(max_length=32, json_schema_extra={"pattern": QUANTITY_RE.pattern}),
    AfterValidator(_pattern_check(QUANTITY_RE, "Kubernetes quantity (e.g. 500m, 4, 32Gi)")),
]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
