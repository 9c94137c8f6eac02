"""Per-sample atomic commit: data first, then `_SUCCESS.json` with the stage's config hash.

A sample counts as done only when its marker exists and holds the current config hash; a write
interrupted before the marker leaves the sample not done, and a re-run redoes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from genfab.storage.base import Storage, StorageError, safe_key

MARKER = "_SUCCESS.json"


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
    try:
        raw = storage.read_bytes(f"{safe_key(sample_prefix)}/{MARKER}")
    except StorageError as exc:
        if str(exc).startswith("not found"):
            return None
        raise
    try:
        return Marker(**json.loads(raw))
    except (ValueError, TypeError):
        return None  # a corrupt marker is no marker: the sample is redone


def is_committed(storage: Storage, sample_prefix: str, config_hash: str) -> bool:
    marker = read_marker(storage, sample_prefix)
    return marker is not None and marker.config_hash == config_hash
