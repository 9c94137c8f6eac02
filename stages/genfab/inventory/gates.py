"""The I/O edge of a manual gate (`genfab.sequencing.manual`): which required files each committed
sample's folder still lacks, from one listing per sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from genfab.storage import Storage


def missing_by_sample(store: Storage, folders: Mapping[str, str], required: Sequence[str]
                      ) -> dict[str, tuple[str, ...]]:
    """Sample id -> the `required` files (relative to its folder in `store`) that are not there."""
    out = {}
    for sample_id, folder in sorted(folders.items()):
        present = {obj.key[len(folder):] for obj in store.list(folder)}
        out[sample_id] = tuple(f for f in required if f not in present)
    return out
