"""The I/O edge of a manual gate (`genfab.sequencing.manual`): which required files each committed
sample's folder still lacks, from one listing per sample."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from genfab.storage.base import Storage


def lacking(required: Sequence[str], present: Iterable[str]) -> tuple[str, ...]:
    """The `required` files not in `present` (keys relative to a sample's folder), in `required`'s order:
    what a sample still lacks at a manual gate, wherever that is asked."""
    have = set(present)
    return tuple(f for f in required if f not in have)


def missing_by_sample(store: Storage, folders: Mapping[str, str], required: Sequence[str]
                      ) -> dict[str, tuple[str, ...]]:
    """Sample id -> the `required` files (relative to its folder in `store`) that are not there."""
    out = {}
    for sample_id, folder in sorted(folders.items()):
        out[sample_id] = lacking(required, (obj.key[len(folder):] for obj in store.list(folder)))
    return out
