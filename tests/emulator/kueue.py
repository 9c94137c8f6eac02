"""An emulated Kueue for `GenfabCluster`: what Kueue 0.18's batch/Job integration does to a queued Job, as
its own code does it (read from kubernetes-sigs/kueue: pkg/controller/jobframework/reconciler.go,
pkg/controller/jobs/job, pkg/workloadslicing), in simplified form. Kueue is a Go controller with webhooks
that nothing these machines can install ships, so its behaviour towards genfab's Jobs is emulated here;
a test that passes here has not met a real Kueue.

- A Job labelled `kueue.x-k8s.io/queue-name` is suspended when created (Kueue's webhook) and gets a
  Workload asking for its Pods (`min(parallelism, completions)`).
- The Workload is admitted once the queue's quota (`quota`, Pods) has room: the Job is unsuspended.
- An admitted Job whose Pod count changed while it runs no longer matches its Workload: Kueue suspends it
  and queues it again (`NoMatchingWorkload`, counted in `evictions`), unless the Job is elastic
  (`kueue.x-k8s.io/elastic-job: "true"`): a lower count is recorded in its Workload at once, a higher one is
  admitted when the quota has room, and until then the Job runs only the Pods admitted (Kueue gates the
  others; here they are not made).
- A finished Job's Workload gives its quota back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.emulator.cluster import GenfabCluster, ObjKey, res_of

JOBS = res_of("batch/v1/jobs")
QUEUE = "kueue.x-k8s.io/queue-name"
ELASTIC = "kueue.x-k8s.io/elastic-job"


@dataclass
class Workload:
    pods: int
    """The Pods it asks for (its PodSet's count)."""
    admitted: bool = False


@dataclass
class EmulatedKueue:
    cluster: GenfabCluster
    quota: int = 1_000
    """Pods the queue admits at once (one GPU each)."""
    workloads: dict[str, Workload] = field(default_factory=dict)
    """By Job uid."""
    evictions: list[str] = field(default_factory=list)
    """Jobs suspended because their running Pod count no longer matched their Workload."""
    resizes: list[tuple[str, int, int]] = field(default_factory=list)
    """(Job, admitted Pods before, after) of each elastic resize."""

    def used(self) -> int:
        return sum(w.pods for w in self.workloads.values() if w.admitted)

    def admitted_pods(self, job: dict[str, Any]) -> int | None:
        """How many Pods the Job may run (None: Kueue does not manage it)."""
        if QUEUE not in (job["metadata"].get("labels") or {}):
            return None
        workload = self.workloads.get(job["metadata"]["uid"])
        return workload.pods if workload is not None and workload.admitted else 0

    def sync(self) -> None:
        """One pass of Kueue's controllers over every queued Job (a test's few)."""
        for key, job in list(self.cluster.store.items()):
            if key[0] == JOBS and QUEUE in (job["metadata"].get("labels") or {}):
                self._sync(key, job)

    def _sync(self, key: ObjKey, job: dict[str, Any]) -> None:
        uid, spec = job["metadata"]["uid"], job["spec"]
        conditions = (job.get("status") or {}).get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            self.workloads.pop(uid, None)  # finished: its quota goes back
            return
        pods = min(int(spec.get("parallelism", 1)), int(spec.get("completions", 1)))
        workload = self.workloads.get(uid)
        if workload is None:
            self.workloads[uid] = Workload(pods)
            if not spec.get("suspend"):
                self._suspend(key, True)
            return
        if not workload.admitted:
            workload.pods = pods  # a suspended Job's Workload follows it
            if self.used() + pods <= self.quota:
                workload.admitted = True
                self._suspend(key, False)
            return
        if pods == workload.pods:
            return
        if (job["metadata"].get("annotations") or {}).get(ELASTIC) != "true":
            self.evictions.append(job["metadata"]["name"])
            self.workloads[uid] = Workload(pods)
            self._suspend(key, True)
            return
        if pods < workload.pods or self.used() + pods - workload.pods <= self.quota:
            self.resizes.append((job["metadata"]["name"], workload.pods, pods))
            workload.pods = pods

    def _suspend(self, key: ObjKey, suspend: bool) -> None:
        self.cluster.patch(key, {"spec": {"suspend": suspend}})
