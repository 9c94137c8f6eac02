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
from genfab.api.common import Storage as StorageSpec
from genfab.inventory.model_identity import Entry, ModelLocationError, entries_identity, storage_entries
from genfab.operator.objects import Owner
from genfab.operator.storage_access import StorageAccess
from genfab.storage import StorageError, StorageLimit
from genfab.storage.base import safe_key

IDENTITY_SECONDS = 60.0
"""How long a read identity is used before the location is listed again (a weight replacement is seen
within this long; a failed read keeps the last identity, so a flaky store never changes a hash). A
listing again reads no file whose size, ETag and time are unchanged: an unchanged folder costs one
request per 1,000 files."""
MAX_KNOWN = 10_000
MAX_REFUSED_SECONDS = 3600.0
"""The longest a refused model folder goes unread: each refusal in a row doubles the wait from
IDENTITY_SECONDS, so a folder that stays past a bound is read about once an hour, not every retry."""


def readable(models: ModelSource | None, storage: StorageSpec | None) -> str | None:
    """The model location the operator reads, or None (not `s3://`, or no Secret to read it with)."""
    if models is None or models.uri is None or not models.uri.startswith("s3://"):
        return None
    return models.uri if storage is not None and storage.secret_ref is not None else None


Slot = tuple[str, str, str, str, str]
"""(namespace, endpoint, Secret, location, model id): the same location read with another endpoint or
Secret is another store."""


class ModelIdentities:
    def __init__(self, storage: StorageAccess, clock: Any = time.monotonic) -> None:
        self.storage = storage
        self.clock = clock
        self._lock = threading.Lock()
        self._known: dict[Slot, tuple[str, float, dict[str, Entry]]] = {}
        """-> (identity, when read, the folder's entries as read)."""
        self._refused: dict[Slot, tuple[str, float, float]] = {}
        """-> (why, when, how long it stays refused): a folder past a bound (no model folder, or more
        than a reconcile may list) is not listed again until then; each refusal in a row doubles it
        (`MAX_REFUSED_SECONDS` at most): a resource retried with backoff would otherwise pay the bound
        each time, for ever."""

    def read(self, owner: Owner, models: ModelSource | None, storage: StorageSpec | None,
             model_ids: list[str]) -> dict[str, str]:
        """Identity of each model id (those it cannot read are left out: they hash as unread). Raises
        StorageError only when a model was never read and its location fails now."""
        location = readable(models, storage)
        if location is None or not model_ids:
            return {}
        if storage is None or storage.secret_ref is None:  # (readable says None then: for mypy)
            return {}
        where = (owner.namespace, storage.endpoint or "", storage.secret_ref.name, location)
        now = self.clock()
        found: dict[str, str] = {}
        stale: list[str] = []
        with self._lock:
            for model in model_ids:
                hit = self._known.get((*where, model))
                if hit is not None:
                    found[model] = hit[0]
                if hit is None or now - hit[1] >= IDENTITY_SECONDS:
                    stale.append(model)
        if not stale:
            return found
        fresh: dict[str, tuple[str, dict[str, Entry]]] = {}
        with self._lock:
            refused = [self._refused[(*where, m)] for m in stale if (*where, m) in self._refused]
        why = next((w for w, when, wait in refused if now - when < wait), None)
        if why is not None:
            raise StorageError(why)
        model = ""
        try:
            store = self.storage.open(location, owner, storage)
            for model in sorted(set(stale)):
                with self._lock:
                    before = self._known.get((*where, model))
                entries = storage_entries(store, f"{safe_key(model)}/", before[2] if before else None)
                fresh[model] = (entries_identity(entries), entries)
        except ModelLocationError as exc:  # past a bound: what this folder holds is no model
            why = f"spec.models.uri: model location {location}: {exc}"
            self._refuse((*where, model), why, now)
            raise StorageError(why) from None
        except StorageError as exc:
            if all(m in found for m in stale) and not isinstance(exc, StorageLimit):
                return found  # keep the last identity: a flaky store must not change a hash
            if isinstance(exc, StorageLimit):  # more than a reconcile may read: the same next time
                self._refuse((*where, model), str(exc), now)
                raise
            raise StorageError(f"spec.models.uri: model location {location}: {exc}") from None
        with self._lock:
            if len(self._known) > MAX_KNOWN:
                self._known.clear()
            for model, (identity, entries) in fresh.items():
                self._known[(*where, model)] = (identity, now, entries)
                self._refused.pop((*where, model), None)  # read again: the backoff starts over
        return {**found, **{model: identity for model, (identity, _) in fresh.items()}}

    def _refuse(self, slot: Slot, why: str, now: float) -> None:
        with self._lock:
            if len(self._refused) > MAX_KNOWN:
                self._refused.clear()
            previous = self._refused.get(slot)
            wait = min(previous[2] * 2, MAX_REFUSED_SECONDS) if previous else IDENTITY_SECONDS
            self._refused[slot] = (why, now, wait)
