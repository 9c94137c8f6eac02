"""How the operator learns a stage's sample count without doing work that grows with the samples.

A stage's Job is sized by its sample count. The operator lists the samples itself when that is small
(`list_inline`: on a budget of its own, `INLINE`, as it always has: a folder of a few thousand images, the
reports of a few hundred upstream shards), and the shards list them again, as before. When the listing
is longer than that budget (its listing, request, time or byte bound is reached: many objects, many
upstream reports, or a store slow to list them; a single file larger than its reader's bound is still
refused by that reader, as before), the operator stops:
it starts a one-Pod inventory Job of the data plane (`build_inventory_job`), which lists once and writes
the stage's sample manifest, reads that manifest's bounded header when the Job completes, and starts the
stage's Job with `GENFAB_SAMPLE_MANIFEST`, so each shard reads only its slice. An inventory Job that
fails says why in its Pod's termination message, which becomes the stage's BadInput message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from genfab.contract import StageConfig
from genfab.inventory import SampleRef, resolve_samples
from genfab.inventory.manifest import InvalidManifest, SampleManifest
from genfab.operator import read_budget
from genfab.operator.objects import Job, Pod
from genfab.operator.observe import job_view
from genfab.operator.read_budget import BytePool, ReadBounds
from genfab.storage import Storage, StorageLimit

MiB = 1 << 20
INLINE = ReadBounds(seconds=10.0, requests=250, listed=20_000, bytes=24 * MiB)
"""What the operator spends listing a stage's samples itself, at most; past the listing or request bound
the stage's samples are listed by an inventory Job instead. Its bytes are more than any one object's reader
allows (16 MiB: a curated manifest, a shard report), so a file too large is refused by its reader, as
before, not handed to a Pod."""
TOO_BIG = frozenset({"listed", "requests", "seconds", "bytes"})
"""The bounds whose end means "a long listing" (many objects, many reports, or a store slow to list them):
an inventory Job's work. Not the byte pool all reconciles share (other tenants' reads: tried again)."""


@dataclass(frozen=True)
class Listing:
    """What is known of a stage's samples when it is about to start."""

    count: int | None = None
    """How many (None: not known yet)."""
    manifest: bool = False
    """The count is the sample manifest's: the stage's shards read their slices from it."""
    waiting: str = ""
    """The inventory Job runs: what the stage says meanwhile."""
    refused: str = ""
    """The samples cannot be listed (bad input): the stage fails with this."""


def list_inline(cfg: StageConfig, open_fn: Callable[[str], Storage], pool: BytePool) -> list[SampleRef] | None:
    """The stage's samples, listed here on the `INLINE` budget; None when the listing is too big for it.
    InventoryError (bad input) and other bounds (time, bytes: `StorageLimit`) pass through."""
    with read_budget.budget(INLINE, pool):
        try:
            return resolve_samples(cfg, open_fn)
        except StorageLimit as exc:
            if exc.bound in TOO_BIG:
                return None
            raise


def inventory_listing(job: Job, pods: Sequence[Pod],
                      header: Callable[[], SampleManifest]) -> Listing:
    """What the stage's inventory Job has found: waiting while it runs, the manifest's count once it
    completed (`header` reads it), its Pod's own words once it failed."""
    view = job_view(job)
    if view.complete:
        try:
            return Listing(count=header().count, manifest=True)
        except InvalidManifest as exc:
            return Listing(refused=f"the inventory job {view.name} completed, but {exc}")
    if view.failed:
        said = next((m for m in (_termination(p) for p in pods) if m), "")
        return Listing(refused=f"cannot list samples: {said or view.failed_message or view.failed_reason} "
                               f"(inventory job {view.name})")
    state = "waiting to run" if view.suspended or not view.active else "listing"
    return Listing(waiting=f"the stage's samples are too many to list in a reconcile: inventory job {view.name} "
                           f"is {state} them")


def _termination(pod: Pod) -> str:
    for cs in pod.get("status", {}).get("containerStatuses", []):
        message = cs.get("state", {}).get("terminated", {}).get("message", "").strip()
        if message:  # a Pod's own words: one line, no control characters (it reaches people's terminals)
            return "".join(c for c in " ".join(message.split()) if c.isprintable())[:1000]
    return ""
