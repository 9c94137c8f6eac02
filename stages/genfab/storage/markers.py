"""Per-sample atomic commit: data first, then `_SUCCESS.json` with the stage's config hash.

A sample counts as done only when its marker exists and holds the current config hash; a write
interrupted before the marker leaves the sample not done, and a re-run redoes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from genfab.storage.base import Storage, StorageError, safe_key

MARKER = "_SUCCESS.json"
MAX_MARKER_BYTES = 1 << 20
"""A marker lists a sample's outputs and their sha256: far below this. Larger is not a marker."""


@dataclass(frozen=True)
class Marker:
    config_hash: str
    outputs: dict[str, str]
    """Output key (relative to the sample folder) -> sha256."""
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


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
        return _ADAPTER.validate_json(raw)
    except (ValidationError, ValueError):
        return None


_ADAPTER = TypeAdapter(Marker)


def is_committed(storage: Storage, sample_prefix: str, config_hash: str) -> bool:
    marker = read_marker(storage, sample_prefix)
    return marker is not None and marker.config_hash == config_hash
