"""What the operator does beside reconciles, on its own threads: say once whether the API server
filters resources by shard, and label stage Jobs an operator older than `operator.shards` made."""

from __future__ import annotations

import contextlib
import logging

from genfab.api.resources import API_VERSION, KINDS, PLURALS
from genfab.operator.cache import Cache, owner_key
from genfab.operator.kube import Kube, KubeError
from genfab.operator.objects import LABEL_MANAGED, Job, JobList, resource_path
from genfab.operator.settings import OperatorSettings
from genfab.operator.sharding import BUCKETS, LABEL_BUCKET, Shard, bucket_label

log = logging.getLogger("genfab.operator")
NO_UID_MATCHES = "shardRange(object.metadata.uid, '0x0000000000000000', '0x0000000000000001')"
UNLABELLED_PAGE, UNLABELLED_PAGES = 500, 20
"""Jobs without a bucket label listed per request, and requests per resync (`unlabelled_jobs`)."""


def report_sharding(kube: Kube, settings: OperatorSettings, shard: Shard) -> None:
    """Say once whether the API server filters resources by shard (Kubernetes 1.36 with the gate
    ShardedListAndWatch) or every shard receives all of them and drops the others' (`on_resource`):
    one resource listed without a selector, and with one no UID can match (a hash of exactly 0)."""
    where = f"shard {shard}: buckets {shard.buckets.start}-{shard.buckets.stop - 1} of {BUCKETS}"
    try:
        path = next((p for p in (resource_path(API_VERSION, PLURALS[kind], ns) for kind in KINDS
                                 for ns in settings.namespaces or (None,))
                     if (kube.request("GET", p, query={"limit": "1"}) or {}).get("items")), None)
        if path is None:
            log.info("%s (whether the API server filters by shard shows once resources exist)", where)
        elif (kube.request("GET", path, query={"limit": "1", "shardSelector": NO_UID_MATCHES}) or {}).get("items"):
            log.warning("%s; the API server ignores shard selectors (Kubernetes before 1.36, or the gate "
                        "ShardedListAndWatch off): every shard receives every resource's events and drops "
                        "the other shards' (Jobs and Pods are still split by label)", where)
        else:
            log.info("%s; the API server filters resources by shard", where)
    except KubeError as exc:
        log.warning("%s; could not check for sharded watches: %s", where, exc)


def label_older_jobs(kube: Kube, cache: Cache, settings: OperatorSettings) -> None:
    """Stage Jobs made before Jobs carried their resource's shard bucket (an operator older than
    `operator.shards`) are outside a sharded operator's Job watch: label this shard's (their
    resource is in this shard's cache and controls them), so the watch sees them from now on.
    Their Pods stay unlabelled (the operator may not patch Pods): until those Jobs finish, the
    Job's own counts are observed, not its Pods' stall reasons."""
    for namespace in settings.namespaces or (None,):
        for job in unlabelled_jobs(kube, namespace):
            key = owner_key(job)
            resource = cache.resource(key) if key else None
            uid = resource.get("metadata", {}).get("uid") if resource is not None else None
            meta = job.get("metadata", {})
            if not uid or not any(r.get("uid") == uid and r.get("controller") for r in meta.get("ownerReferences", [])):
                continue  # another shard's, or not made for a genfab resource
            with contextlib.suppress(KubeError):
                kube.patch(resource_path("batch/v1", "jobs", meta.get("namespace"), meta.get("name")),
                           {"metadata": {"labels": {LABEL_BUCKET: bucket_label(uid)}}})


def unlabelled_jobs(kube: Kube, namespace: str | None) -> list[Job]:
    """genfab-labelled Jobs without a bucket label, in pages, at most `UNLABELLED_PAGES` of them per
    resync: a tenant can make any number of look-alikes, which are never labelled and stay listed."""
    query = {"labelSelector": f"{LABEL_MANAGED}=genfab,!{LABEL_BUCKET}", "limit": str(UNLABELLED_PAGE)}
    jobs: list[Job] = []
    for _ in range(UNLABELLED_PAGES):
        try:
            page: JobList = kube.request("GET", resource_path("batch/v1", "jobs", namespace), query=query)
        except KubeError as exc:
            log.warning("listing Jobs without a shard bucket label: %s", exc)
            break
        jobs += page.get("items") or []
        token = page.get("metadata", {}).get("continue")
        if not token:
            break
        query = {**query, "continue": token}
    return jobs
