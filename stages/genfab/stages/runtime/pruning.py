"""Keeping a stage's output folder to its current samples (`Stage.prunes_outputs`): what a sample
that left the stage's unit list made, and what an earlier config made of a sample that now fails,
is deleted, so the folder a tool reads whole (ultralytics' dataset) holds nothing stale."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from genfab.storage import MARKER, Marker, Storage, read_marker

log = logging.getLogger("genfab.stages")


def gone_samples(marker_keys: Iterable[str], marker_dir: str, current: Iterable[str]) -> list[str]:
    """The sample ids that have a marker under `marker_dir` but are not in `current` (pure).
    Marker keys are `{marker_dir}/{sample id}/_SUCCESS.json`; ids may hold `/`."""
    head, tail = f"{marker_dir.rstrip('/')}/", f"/{MARKER}"
    listed = {k[len(head):-len(tail)] for k in marker_keys if k.startswith(head) and k.endswith(tail)}
    return sorted(listed - set(current) - {""})


def remove_sample(storage: Storage, marker_prefix: str, marker: Marker | None) -> int:
    """Delete a sample's outputs (as its marker lists them), then its marker; returns how many files.
    The marker goes last: an interrupted removal leaves a marker whose outputs fail the reuse check."""
    keys = sorted(marker.outputs) if marker is not None else []
    storage.delete_keys(keys)
    storage.delete_keys([f"{marker_prefix}/{MARKER}"])
    return len(keys)


def remove_gone_samples(storage: Storage, marker_dir: str, current: Iterable[str]) -> list[str]:
    """Remove every sample under `marker_dir` that is not in `current`; returns their ids. Shards of
    one stage may do this at once: they remove the same ids, none of which any shard produces."""
    gone = gone_samples((o.key for o in storage.list(f"{marker_dir.rstrip('/')}/")), marker_dir, current)
    for sample_id in gone:
        prefix = f"{marker_dir.rstrip('/')}/{sample_id}"
        files = remove_sample(storage, prefix, read_marker(storage, prefix))
        log.info("removed a sample no longer in the stage's units", extra={"sample": sample_id, "files": files})
    return gone
