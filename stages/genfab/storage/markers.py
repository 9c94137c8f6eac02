"""Per-sample atomic commit: data first, then `_SUCCESS.json` with the stage's config hash.

A sample counts as done only when its marker exists, holds the current config hash and its outputs
are still what was committed (each exists with its recorded size; with `sha256` checking, its
content hashes to the recorded digest). A write interrupted before the marker, or an output deleted
or overwritten since, leaves the sample not done, and a re-run redoes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from genfab.storage.base import Storage, StorageError, safe_key

MARKER = "_SUCCESS.json"
MAX_MARKER_BYTES = 1 << 20
"""A marker lists a sample's outputs and their sha256: far below this. Larger is not a marker."""


@dataclass(frozen=True)
class Marker:
    config_hash: str
    outputs: dict[str, str]
    """Output key (relative to the stage output) -> sha256."""
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    """Output key -> size in bytes (markers written before sizes were recorded have none: only
    existence is checked for them)."""
    base_hash: str = ""
    """The config hash without a re-run token (`spec.rerun`); equal to `config_hash` when none applied."""


Check = Literal["size", "sha256"]
"""How much of a committed sample reuse verifies: existence and size (always), or also content."""


@dataclass(frozen=True)
class Reuse:
    committed: bool
    problem: str = ""
    """Why a sample whose marker holds the current config hash is produced again (an output is
    missing, has another size or, with `sha256`, other content)."""
    previous: Marker | None = None
    """The marker found (any config): what a sample produced again replaces."""


def write_marker(storage: Storage, sample_prefix: str, marker: Marker) -> None:
    """Write the marker alone: call it only after every output of the sample is written."""
    storage.write_bytes(f"{safe_key(sample_prefix)}/{MARKER}", json.dumps(asdict(marker), sort_keys=True).encode())


def read_marker(storage: Storage, sample_prefix: str) -> Marker | None:
    """The sample's marker; None when there is none or it is corrupt (too large, not JSON, nested too
    deep, wrong shape): a corrupt marker is no marker, and the sample is redone."""
    try:
        with storage.open_read(f"{safe_key(sample_prefix)}/{MARKER}") as stream:
            raw = stream.read(MAX_MARKER_BYTES + 1)
    except StorageError as exc:
        if str(exc).startswith("not found"):
            return None
        raise
    if len(raw) > MAX_MARKER_BYTES:
        return None
    try:
        marker = _ADAPTER.validate_json(raw)
    except (ValidationError, ValueError):
        return None
    try:  # output keys name files under the stage output: `../x` or `/etc/x` is no marker genfab wrote
        for key in (*marker.outputs, *marker.sizes):
            safe_key(key)
    except StorageError:
        return None
    return marker


_ADAPTER = TypeAdapter(Marker)


def _sha256(storage: Storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open_read(key) as stream:
        for chunk in iter(lambda: stream.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def broken_output(storage: Storage, marker: Marker, check: Check = "size") -> str:
    """The first committed output that is no longer what the marker says ("" when all are)."""
    for key, digest in sorted(marker.outputs.items()):
        size = storage.size(key)
        if size is None:
            return f"output {key} is missing"
        expected = marker.sizes.get(key)
        if expected is not None and size != expected:
            return f"output {key} is {size} bytes, {expected} when committed"
        if check == "sha256" and _sha256(storage, key) != digest:
            return f"output {key} changed since it was committed (sha256)"
    return ""


def same_output(marker: Marker, config_hash: str, base_hash: str | None = None) -> bool:
    """Whether a marker's sample is what a stage with `config_hash` makes. A stage no re-run token applies
    to (`base_hash` == `config_hash`) also takes a sample made under a token on the same base: a token
    re-runs once, and dropping it later re-runs nothing."""
    if marker.config_hash == config_hash:
        return True
    return base_hash is not None and base_hash == config_hash and marker.base_hash == base_hash


def check_reuse(storage: Storage, sample_prefix: str, config_hash: str, check: Check = "size",
                base_hash: str | None = None) -> Reuse:
    """May the sample committed under `sample_prefix` be reused by a stage with `config_hash`?"""
    marker = read_marker(storage, sample_prefix)
    if marker is None or not same_output(marker, config_hash, base_hash):
        return Reuse(False, previous=marker)
    problem = broken_output(storage, marker, check)
    return Reuse(not problem, problem, marker)


def is_committed(storage: Storage, sample_prefix: str, config_hash: str, base_hash: str | None = None) -> bool:
    return check_reuse(storage, sample_prefix, config_hash, base_hash=base_hash).committed
