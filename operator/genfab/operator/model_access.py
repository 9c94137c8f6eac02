"""Model identities as the operator sees them: the weights under `spec.models.uri` are part of the
config hashes (genfab.inventory.model_identity), read with the same endpoint and Secret the stage Pods
get, and remembered for a while so a reconcile does not list the model location each time.

Only an `s3://` model location whose storage names a Secret is read: the operator never reads its own
disk for a tenant (`file://`), cannot see a PVC or a node's hub cache, and never lists a tenant's
store with its own credentials. Those models hash as `unread` (the plan says so); `spec.rerun` is how
a user asks for a re-run after replacing their weights.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from genfab.api.common import ModelSource
from genfab.inventory.model_identity import ModelLocationError, model_identities
from genfab.operator.builders import Owner
from genfab.operator.storage_access import StorageAccess
from genfab.storage import StorageError

IDENTITY_SECONDS = 60.0
"""How long a read identity is used before the location is read again (a weight replacement is seen
within this long; a failed read keeps the last identity, so a flaky store never changes a hash)."""


def readable(models: ModelSource | None, storage: dict[str, Any] | None) -> str | None:
    """The model location the operator reads, or None (not `s3://`, or no Secret to read it with)."""
    if models is None or models.uri is None or not models.uri.startswith("s3://"):
        return None
    return models.uri if (storage or {}).get("secretRef") else None


class ModelIdentities:
    def __init__(self, storage: StorageAccess, clock: Any = time.monotonic) -> None:
        self.storage = storage
        self.clock = clock
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str, str], tuple[str, float]] = {}
        """(namespace, location, model id) -> (identity, when read)."""

    def read(self, owner: Owner, models: ModelSource | None, storage: dict[str, Any] | None,
             model_ids: list[str]) -> dict[str, str]:
        """Identity of each model id (those it cannot read are left out: they hash as unread). Raises
        StorageError only when a model was never read and its location fails now."""
        location = readable(models, storage)
        if location is None or not model_ids:
            return {}
        now = self.clock()
        found: dict[str, str] = {}
        stale: list[str] = []
        with self._lock:
            for model in model_ids:
                hit = self._known.get((owner.namespace, location, model))
                if hit is not None:
                    found[model] = hit[0]
                if hit is None or now - hit[1] >= IDENTITY_SECONDS:
                    stale.append(model)
        if not stale:
            return found
        try:
            fresh = model_identities(stale, location, self.storage.open(location, owner, storage))
        except (ModelLocationError, StorageError) as exc:
            if all(m in found for m in stale):
                return found  # keep the last identity: a flaky store must not change a hash
            raise StorageError(f"spec.models.uri: {exc}") from None
        with self._lock:
            if len(self._known) > 10000:
                self._known.clear()
            for model, identity in fresh.items():
                self._known[(owner.namespace, location, model)] = (identity, now)
        return {**found, **fresh}
