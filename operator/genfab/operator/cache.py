"""In-memory view of the watched objects, fed by kopf's watch events (an informer cache).

Reconciles read their children from here instead of listing them from the API server, so a
reconcile costs API requests only for what it changes.

Succeeded Pods are not kept (`put_pod`): a stage of 10,000 shards would otherwise hold 10,000 of them
and every reconcile would visit them.

The cache keeps of each object only what the reconciles read (`kept`), the way client-go's informers
take a transform: a stage Job's Pod template and a Pod's spec (containers, environment, volumes) are
most of an object's size and are never read from here, so keeping them whole made the Jobs and Pods
three quarters of the cache's memory per resource (about 36 of 49 KB at N = 1,000). Server-side
apply's `managedFields` are dropped from every object for the same reason.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from genfab.operator.objects import LABEL_KIND, LABEL_RESOURCE, GenfabResource, Job, Key, Pod
from genfab.operator.observe import LostPod, pod_index, was_lost

B = TypeVar("B", GenfabResource, Job, Pod)
SPEC_KEPT: dict[str, frozenset[str]] = {
    "Job": frozenset({"suspend", "completions", "parallelism", "completionMode"}),
    "Pod": frozenset({"nodeName"}),
}
"""The spec fields the reconciles read of a child (genfab.operator.observe), by kind; the rest of a
child's spec is not kept. Metadata and status are kept whole (less managedFields)."""


def kept(obj: B, kind: str | None = None) -> B:
    """What the cache holds of `obj`: no managedFields, and of a child's spec only SPEC_KEPT's fields
    (`kind` None: a genfab resource, kept whole but for managedFields). A new dict; `obj` is untouched."""
    out: dict[str, Any] = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    spec = out.get("spec")
    if kind is not None and isinstance(spec, dict):
        out["spec"] = {k: v for k, v in spec.items() if k in SPEC_KEPT[kind]}
    return cast(B, out)  # the same kind of object, less fields it may lack anyway


def owner_key(obj: Job | Pod) -> Key | None:
    meta = obj.get("metadata", {})
    labels = meta.get("labels", {})
    kind, name = labels.get(LABEL_KIND), labels.get(LABEL_RESOURCE)
    return (kind, meta.get("namespace", ""), name) if kind and name else None


class Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.resources: dict[Key, GenfabResource] = {}
        self._jobs: dict[Key, dict[str, Job]] = defaultdict(dict)
        self._pods: dict[tuple[str, str], dict[str, Pod]] = defaultdict(dict)
        """(namespace, job name) -> pod name -> pod."""
        self._lost: dict[tuple[str, str], dict[str, LostPod]] = defaultdict(dict)

    # -- feeding (watch events)
    def put_resource(self, key: Key, body: GenfabResource | None) -> bool:
        """Store (or, None, drop) a resource; False when the cache already held this version or a later
        one: the watch echoing a write the operator made itself, whose answer it stored
        (`Controller._write_status`), needs no reconcile of its own, and a watch lagging behind the
        operator's writes must not take the cache back to a status without what they recorded (a stage's
        new Job among its children: the next reconcile would start that stage again)."""
        with self._lock:
            if body is None:
                self.resources.pop(key, None)
                self._jobs.pop(key, None)
                return True
            cached = self.resources.get(key)
            if _older(cached, body):
                return False  # a lagging watch's past version: the cache holds a later one (a write's answer)
            self.resources[key] = kept(body)
            return not _same_version(cached, body)

    def put_job(self, job: Job, deleted: bool = False) -> Key | None:
        """Store a Job; its resource's key, or None when it has none or the cache already held this
        version (the watch echoing a Job the operator created and stored)."""
        key = owner_key(job)
        if key is None:
            return None
        name = job["metadata"]["name"]
        job = kept(job, "Job")
        with self._lock:
            if deleted:
                self._jobs[key].pop(name, None)
                self._pods.pop((key[1], name), None)
                self._lost.pop((key[1], name), None)
            else:
                cached = self._jobs[key].get(name)
                if _older(cached, job):
                    return None
                if _same_version(cached, job):
                    self._jobs[key][name] = job
                    return None
                self._jobs[key][name] = job
        return key

    def put_pod(self, pod: Pod, deleted: bool = False) -> Key | None:
        key = owner_key(pod)
        meta = pod.get("metadata", {})
        labels = meta.get("labels", {})
        job = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name")
        if key is None or not job:
            return None
        slot = (meta.get("namespace", ""), job)
        with self._lock:
            if deleted:
                self._pods[slot].pop(meta["name"], None)
                owner_job = self._jobs.get(key, {}).get(job)
                suspended = owner_job is not None and owner_job.get("spec", {}).get("suspend", False)
                index = pod_index(pod)
                if owner_job is not None and index is not None and was_lost(pod, suspended):
                    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    self._lost[slot][meta["name"]] = LostPod(job, index, meta["name"], when)
            elif pod.get("status", {}).get("phase") == "Succeeded":
                # Its index is in the Job's completedIndexes, and nothing a reconcile reads of Pods (stall
                # reasons, progress deadlines, a process group's failures) looks at a succeeded one: not
                # kept, so a stage's reconciles visit its live Pods, not every Pod it ever ran.
                self._pods[slot].pop(meta["name"], None)
            else:
                self._pods[slot][meta["name"]] = kept(pod, "Pod")
        return key

    def forget_lost(self, namespace: str, job: str, keep: list[LostPod]) -> None:
        with self._lock:
            self._lost[(namespace, job)] = {lp.pod: lp for lp in keep}

    # -- reading (reconciles)
    def resource(self, key: Key) -> GenfabResource | None:
        with self._lock:
            return self.resources.get(key)

    def spec(self, key: Key) -> dict[str, Any] | None:
        """The resource's `spec` as last watched (None: not seen)."""
        body = self.resource(key)
        return body.get("spec") if body is not None else None

    def status(self, key: Key) -> dict[str, Any] | None:
        """The resource's `status` as last watched (None: not seen, or none written yet)."""
        body = self.resource(key)
        return body.get("status") if body is not None else None

    def jobs(self, key: Key) -> list[Job]:
        with self._lock:
            return list(self._jobs.get(key, {}).values())

    def pods(self, namespace: str, job: str) -> list[Pod]:
        with self._lock:
            return list(self._pods.get((namespace, job), {}).values())

    def lost(self, namespace: str, job: str) -> list[LostPod]:
        with self._lock:
            return list(self._lost.get((namespace, job), {}).values())

    def all_resources(self, kind: str) -> list[GenfabResource]:
        with self._lock:
            return [body for key, body in self.resources.items() if key[0] == kind]

    def all_jobs(self) -> list[Job]:
        with self._lock:
            return [job for jobs in self._jobs.values() for job in jobs.values()]

    def all_pods(self) -> list[Pod]:
        with self._lock:
            return [pod for pods in self._pods.values() for pod in pods.values()]

    def resource_keys(self) -> list[Key]:
        with self._lock:
            return list(self.resources)


def version_order(a: object, b: object) -> int | None:
    """-1, 0 or 1 as resource version `a` is before, equal to or after `b` (of one kind of object);
    None when either is not a decimal integer. kube-apiserver writes etcd's revision so, and Kubernetes
    declares resource versions comparable that way (KEP-5504); any other is never compared."""
    left, right = str(a or ""), str(b or "")
    if not (left.isdecimal() and right.isdecimal()):
        return None
    return (int(left) > int(right)) - (int(left) < int(right))


def _older(cached: B | None, new: B) -> bool:
    """Whether `new` is an earlier version of the object `cached` holds: same UID, lower resourceVersion."""
    if cached is None:
        return False
    before, after = cached.get("metadata", {}), new.get("metadata", {})
    return (before.get("uid") == after.get("uid")
            and version_order(after.get("resourceVersion"), before.get("resourceVersion")) == -1)


def _same_version(cached: B | None, new: B) -> bool:
    version = new.get("metadata", {}).get("resourceVersion")
    return bool(version) and cached is not None and cached.get("metadata", {}).get("resourceVersion") == version
