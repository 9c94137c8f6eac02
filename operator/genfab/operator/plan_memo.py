"""Validated resources and their plans, remembered per resource and spec generation.

A resource is reconciled on every event about it or its children (its status written back, each
Job and Pod change): five to ten times before it runs. Validating the spec and planning it are pure
functions of the resource's spec and metadata (and of what the plan is given: the execution folder,
the TuningRun checkpoints found, the model identities read), so they are done once per generation
instead of once per event. A spec change bumps `metadata.generation` and starts afresh; labels and
annotations are part of the fingerprint, since they do not bump it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from genfab.operator.objects import GenfabResource

T = TypeVar("T")
Fingerprint = tuple[str, int, str]
MAX_VARIANTS = 8
"""Plans kept per resource generation (execution folder x references x model identities)."""
MAX_RESOURCES = 1024
"""Resources remembered, least recently used out first: a plan with its validated resource is about
26 KB, so the memo stays under ~30 MB however many resources exist (at N = 5,000 unbounded, it
alone would push the operator past its 500 MB target); a resource that falls out is planned again
on its next reconcile."""


def fingerprint(body: GenfabResource) -> Fingerprint | None:
    """What identifies a resource's spec and metadata as genfab reads them; None when the server
    gives no generation (then nothing is remembered)."""
    meta = body.get("metadata", {})
    generation = meta.get("generation")
    if not isinstance(generation, int):
        return None
    return (str(meta.get("uid", "")), generation,
            json.dumps([meta.get("labels", {}), meta.get("annotations", {})], sort_keys=True))


class PlanMemo:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Fingerprint, dict[Hashable, Any]]] = OrderedDict()

    def get(self, key: Hashable, body: GenfabResource, part: Hashable, make: Callable[[], T]) -> T:
        """`make()` for this resource generation and `part` (what else it depends on), computed once.
        Exceptions are not remembered: they are raised again on the next call."""
        fp = fingerprint(body)
        if fp is None:
            return make()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == fp and part in entry[1]:
                self._entries.move_to_end(key)
                return entry[1][part]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != fp:
                entry = (fp, {})
                self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_RESOURCES:
                self._entries.popitem(last=False)
            if len(entry[1]) >= MAX_VARIANTS:
                entry[1].clear()
            entry[1][part] = value
        return value

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
