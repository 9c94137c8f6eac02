"""Objects deleted while a watch was away, found by listing again.

When a watch expires (410 Gone: the API server no longer holds the events since the operator's last
resource version) kopf lists again and replays what the list holds, but says nothing of what was deleted
in between; client-go's informers do (their `Replace` deletes what the list lacks). Without this, a
resource deleted in that window stayed in the operator's cache, reconciled on every resync and counted in
its metrics, and a stage Job deleted then stayed Running there, its resource waiting on it forever.

Every `relist_seconds` each watched collection is listed once more, metadata only (PartialObjectMetadata,
`PAGE` objects a request): a cached object the list lacks is deleted, unless the cache holds a version later
than the list (made or changed after it: resource versions are comparable, KEP-5504); where versions
are not decimal integers, only one that two lists in a row lacked. The cost is one request per `PAGE`
objects every `relist_seconds`, not a request per reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from genfab.api.resources import KINDS
from genfab.operator.cache import Cache, version_order
from genfab.operator.kube import Kube
from genfab.operator.objects import (
    LABEL_MANAGED,
    GenfabResource,
    Job,
    PartialObjectList,
    Pod,
    custom_path,
    resource_path,
)

log = logging.getLogger("genfab.operator")

PAGE = 500
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
"""Accept header of a metadata-only list (the objects' spec and status are not sent)."""


W = TypeVar("W", GenfabResource, Job, Pod)


@dataclass(frozen=True)
class Watched(Generic[W]):
    """One watched collection: where to list it, and what the operator's cache holds of it."""

    name: str
    paths: tuple[str, ...]
    """The collection's list paths (one cluster-wide, or one per namespace watched)."""
    selector: str | None
    cached: Callable[[], Iterable[W]]
    """The objects the cache holds now."""
    deleted: Callable[[W], None]
    """Called with each cached object the API server no longer has: what a DELETED event would do."""


def gone(cached: Iterable[W], listed: set[str], list_version: str, missed: set[str]) -> list[W]:
    """The cached objects deleted while the watch was away: not in the list (`listed`: its UIDs), and not
    newer than it; where versions cannot be compared, only those the previous list missed too (`missed`)."""
    out = []
    for obj in cached:
        meta = obj.get("metadata", {})
        uid = meta.get("uid", "")
        if not uid or uid in listed:
            continue
        order = version_order(meta.get("resourceVersion"), list_version)
        if (order is not None and order <= 0) or (order is None and uid in missed):
            out.append(obj)
    return out


@dataclass
class Relister:
    kube: Kube
    watched: list[Watched[Any]]
    """(Each of its own kind: `collections`.)"""
    _missed: dict[str, set[str]] = field(default_factory=dict)

    def sweep(self) -> int:
        """List every watched collection and delete from the cache what the API server no longer has;
        how many objects that was."""
        return sum(self._sweep(w) for w in self.watched)

    def _sweep(self, w: Watched[W]) -> int:
        listed, version = self._list(w.paths, w.selector)
        stale = gone(w.cached(), listed, version, self._missed.get(w.name, set()))
        self._missed[w.name] = {o.get("metadata", {}).get("uid", "") for o in w.cached()} - listed
        for obj in stale:
            meta = obj.get("metadata", {})
            log.info("%s %s/%s was deleted while the watch was away (410 Gone): forgotten", w.name,
                     meta.get("namespace", ""), meta.get("name", ""))
            w.deleted(obj)
        return len(stale)

    def _list(self, paths: tuple[str, ...], selector: str | None) -> tuple[set[str], str]:
        """The UIDs the collection holds now, and the resource version of the (last) list."""
        uids: set[str] = set()
        versions: list[str] = []
        for path in paths:
            token: str | None = None
            while True:
                query: dict[str, str | int] = {"limit": PAGE}
                if selector:
                    query["labelSelector"] = selector
                if token:
                    query["continue"] = token
                page: PartialObjectList = self.kube.request("GET", path, query=query, accept=METADATA_ONLY)
                uids.update(i.get("metadata", {}).get("uid", "") for i in page.get("items") or [])
                meta = page.get("metadata", {})
                token = meta.get("continue") or None
                if not token:  # the pages of one list are one snapshot, of one version
                    versions.append(meta.get("resourceVersion", ""))
                    break
        # One list per namespace, each its own snapshot: an object is older than "the list" only if it is
        # older than the earliest of them (a later sweep takes what this one keeps).
        decimal = [int(v) for v in versions if v.isdecimal()]
        return uids, str(min(decimal)) if decimal and len(decimal) == len(versions) else ""


def collections(namespaces: tuple[str, ...], cache: Cache,
                on_resource: Callable[[str, str | None, GenfabResource], None],
                on_job: Callable[[str | None, Job], None], on_pod: Callable[[str | None, Pod], None]
                ) -> list[Watched[GenfabResource] | Watched[Job] | Watched[Pod]]:
    """What the operator watches (cluster-wide, or in each of `namespaces`): its resources of every kind,
    and the stage Jobs and Pods it made; a deletion goes to the handler its watch event would reach."""
    where = list(namespaces) or [""]
    managed = f"{LABEL_MANAGED}=genfab"
    return [
        *(Watched(kind, tuple(custom_path(kind, ns) for ns in where), None, partial(cache.all_resources, kind),
                  partial(_deleted, partial(on_resource, kind))) for kind in KINDS),
        Watched("Job", tuple(resource_path("batch/v1", "jobs", ns) for ns in where), managed, cache.all_jobs,
                partial(_deleted, on_job)),
        Watched("Pod", tuple(resource_path("v1", "pods", ns) for ns in where), managed, cache.all_pods,
                partial(_deleted, on_pod)),
    ]


def _deleted(handler: Callable[[str | None, W], None], body: W) -> None:
    handler("DELETED", body)
