"""A scriptable fake Job controller and kubelet for `GenfabCluster`.

It moves Indexed Jobs and their Pods through their lifecycle the way Kubernetes does, in simplified
form: one Pod per pending index (up to `parallelism`; a lowered parallelism stops the not-Ready Pods
first, uncounted), `backoffLimitPerIndex`, the podFailurePolicy
genfab sets (exit 42 fails the index at once; Pods with a DisruptionTarget condition do not count),
suspend/resume, completedIndexes/failedIndexes, Complete/Failed conditions.

A Pod "runs" a shard by writing the stage's real shard reports (genfab.inventory) into the
resource's output storage, so the operator reads progress over the real channel. What a Pod does is
decided by `script(stage, index, attempt) -> Behaviour` when it is created.

An inventory Job (label `genfab.dev/task=inventory`) runs the data plane's own inventory code
(`genfab.stages.runtime.inventory.make_inventory`) on a thread, without a Pod, then completes, or fails
with the inventory's one line as the Job's message. A records Job (`genfab.dev/task=records`) likewise
runs `genfab.jobs.records.write_records` with the request in its environment.

For stages of thousands of shards, a Job can complete its indexes in bulk (`Kubelet.bulk`): no Pod
objects, each index's final shard report written as its Pod would write it (on a thread of its own, off
the event loop the API server answers on), `bulk[stage]` indexes a tick, the Job's status in Kubernetes'
own range format (`completedIndexes: "0-9999"`).

Each tick visits only what changed since the last one, the Pods counting down their running time and
the Jobs waiting out `replacement_delay` (all of them after a `release`), so a store of thousands of
held Pods costs the event loop it shares with the API server nothing between changes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genfab.api.quality import FIGURES
from genfab.contract import StageConfig, shard_bounds
from genfab.contract import indexes as index_ranges
from genfab.contract.hosted import parse_members
from genfab.contract.names import (
    ENV_CONFIG,
    ENV_FILE_ROOTS,
    ENV_HOSTED,
    ENV_RECORDS,
    ENV_SAMPLE_MANIFEST,
    ENV_SHARD_RETRIES,
    ENV_SHARDS,
    ENV_WAITING_FILE,
    ENV_WORKERS,
    report_key,
)
from genfab.inventory import FailedSample, InventoryError, ShardReport, write_report
from genfab.inventory.workers import WAIT
from genfab.jobs.records import write_records
from genfab.sequencing.records import RecordsRequest
from genfab.stages.runtime.claims import ClaimFeed
from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.feed import Assignment
from genfab.stages.runtime.group import GroupFeed
from genfab.stages.runtime.inventory import make_inventory
from genfab.stages.runtime.shared import SharedAssignment
from genfab.storage import S3Settings, StorageError, open_storage
from tests.emulator.cluster import GenfabCluster, ObjKey, now_rfc3339, res_of
from tests.emulator.kueue import EmulatedKueue

JOBS, PODS, CONFIGMAPS = res_of("batch/v1/jobs"), res_of("v1/pods"), res_of("v1/configmaps")
SECRETS, EVENTS = res_of("v1/secrets"), res_of("v1/events")
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


@dataclass(frozen=True)
class Behaviour:
    outcome: str = "succeed"
    """succeed | crash (exit 1) | bad-input (exit 42) | image-pull | unschedulable"""
    seconds: float = 0.3
    """Running time before the Pod ends."""
    hold: bool = False
    """Stay Running until `Kubelet.release(stage, index)`."""
    fail_samples: int = 0
    """Samples of the shard recorded as failed (the shard still exits 0)."""
    fail_reason: str = "SampleError"
    fail_message: str = "scripted failure"
    """The failed samples' reason and message (`QualityOutOfRange` with a figure, value and bound...)."""
    figures: Mapping[str, float] | None = None
    """Quality figures every committed sample of the shard measured: binned into the report
    (`ShardReport.figures`, `figure_spans`) as a stage's shard does."""
    raw_report: bytes | None = None
    """Bytes written as the shard's final report instead of a real one (corrupt, huge, nested)."""
    at_exit: str = "final"
    """What the shard leaves in storage as it exits: final (its final report) | running (its first report,
    never finished) | none (no report: cleared after it was written)."""
    made_by: str | None = None
    """The backend, model or method the shard reports its samples made by (`ShardReport.produced_by`)."""


Script = Callable[[str, int, int], Behaviour]


@dataclass
class PodState:
    stage: str
    index: int
    behaviour: Behaviour
    created: float = field(default_factory=time.monotonic)
    running_since: float | None = None
    started: Future[tuple[ShardReport, list[str]]] | None = None
    """The shard's first report and its sample ids (`first_report`), once the Pod runs."""
    worker: WorkerPod | None = None
    """A worker Job's Pod (`GENFAB_WORKERS`): the shards it takes from the stage's cursor, one at a time."""


@dataclass
class WorkerPod:
    """A warm worker Pod as the kubelet runs it: the real runtime's `ClaimFeed` takes shard after shard
    from the stage's cursor and keeps the worker's record; each shard does what `script(stage, shard,
    try)` says (its running time, its samples' outcomes; a crash ends the Pod, bad input fails that shard
    and the worker goes on), with its reports written as a shard's Pod writes them."""

    feed: ClaimFeed | GroupFeed
    """A shared worker Job's Pod (`GENFAB_HOSTED`): the real runtime's `GroupFeed`, its stages' shards."""
    config: str
    manifest: bool
    current: Assignment | None = None
    since: float = 0.0
    stage: str = ""
    """The stage of the shard it runs (a shared worker's: any of its stages')."""
    shard_config: str = ""
    shards: int = 0


    def feed_shards(self) -> int:
        return self.feed.host.shards if isinstance(self.feed, GroupFeed) else self.feed.shards

    def attempt(self) -> int:
        """The try of the shard it runs (1: the first), as its stage's record says."""
        feed = self.feed.feeds[self.stage] if isinstance(self.feed, GroupFeed) else self.feed
        return feed.record.attempt


@dataclass
class JobState:
    failures: dict[int, int] = field(default_factory=dict)
    completed: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    counted: set[str] = field(default_factory=set)
    """Pod uids already counted as succeeded or failed."""
    attempts: dict[int, int] = field(default_factory=dict)
    lost_at: dict[int, float] = field(default_factory=dict)
    succeeded_pods: int = 0
    failed_pods: int = 0
    job_failed: str = ""
    """Why the whole Job failed (a gang Job's backoffLimit, or its FailJob rule)."""
    next_bulk: int = 0
    """A bulk Job's next index to finish (`Kubelet.bulk`)."""
    scaled_down: set[str] = field(default_factory=set)
    """Pod uids the Job controller stopped for a lowered parallelism: not counted (it removes their
    tracking finalizer first), their indexes left to run again."""


def _indexes(values: set[int]) -> str:
    return index_ranges.text(index_ranges.of(values))


class Kubelet:
    def __init__(self, cluster: GenfabCluster, tick: float = 0.05) -> None:
        self.cluster = cluster
        self.tick = tick
        self.script: Script = lambda stage, index, attempt: Behaviour()
        self.resource_script: Callable[[str, str, int, int], Behaviour] | None = None
        """When set, decides instead of `script`, also given the Pod's resource name first."""
        self.report_pool: Executor | None = None
        """Where a starting Pod's stage work runs (`first_report`). None: here, at once (the tests'
        order of events); a process pool (benchmarks/operator_scale.py): off the thread that also
        serves the API, as on a real cluster, where the stage's container does it."""
        self.bulk: dict[str, int] = {}
        """Stage name -> indexes a Job of that stage completes per tick without Pods (see the module's docs);
        each index's outcome is `script(stage, index, 0)`'s: succeed (with `fail_samples`), or crash and
        bad-input (the index fails with a failed report)."""
        self._inventories: dict[str, Future[str]] = {}
        """Inventory Job uid -> its listing, running on `_inventory_pool` ("" when it succeeded, else why not)."""
        self._inventory_pool = ThreadPoolExecutor(2, thread_name_prefix="fake-inventory")
        self._bulk_samples: dict[str, list[str]] = {}
        """Config hash -> the stage's sample ids (listed once per stage, as an inventory would)."""
        self._bulk_writes: dict[str, Future[list[tuple[int, bool]]]] = {}
        """Bulk Job uid -> its batch of reports being written on `_bulk_pool` (each index: succeeded?)."""
        self._bulk_pool = ThreadPoolExecutor(1, thread_name_prefix="fake-bulk")
        self.refuse_pods: dict[str, str] = {}
        """Namespace -> why the API server refuses every Pod there (a quota, admission): its Jobs get a
        FailedCreate Event, as Kubernetes' Job controller writes it (`failed_create_event`), and no
        status, until removed."""
        self.replacement_delay = 0.0
        """Seconds before a deleted Pod's index gets a new Pod (lets a test observe PodDeleted)."""
        self.pods: dict[str, PodState] = {}
        self.jobs: dict[str, JobState] = {}
        self.released: set[tuple[str, int | None]] = set()
        self.enabled = True
        self.kueue: EmulatedKueue | None = None
        """When set, Kueue admits queued Jobs (tests.emulator.kueue): synced each tick before the Jobs, and a
        queued Job runs only the Pods its Workload admitted."""
        self._quiet: dict[str, tuple[str, tuple[str, ...]]] = {}
        """Job uid -> the resourceVersions of it and its Pods when a sync last wrote nothing."""
        self._pods_of: dict[str, dict[ObjKey, None]] = {}
        """Job uid -> its Pods' keys in creation order (kept by `_on_change`)."""
        # What each tick visits, the way Kubernetes' controllers work from their informers' queues:
        # the Jobs and Pods that changed since (`_dirty`), the Pods counting down their running time
        # and the Jobs waiting out `replacement_delay` (`_timed`). Scanning every Job and Pod ten
        # times a second was ~15 % of the emulator's thread at 1,000 resources (py-spy), time the
        # API server it shares that thread with could not serve the operator under test.
        self._dirty: dict[Any, dict[ObjKey, None]] = {JOBS: {}, PODS: {}}
        self._timed: dict[Any, dict[ObjKey, None]] = {JOBS: {}, PODS: {}}
        self._visit_all = True
        """Visit every Job and Pod on the next tick (at start, and after `release`)."""
        self._keys: dict[Any, dict[ObjKey, None]] = {JOBS: {}, PODS: {}}
        """The store's Jobs and Pods in creation order (kept by `_on_change`)."""
        for key, obj in cluster.store.items():
            if key[0] in self._keys:
                self._on_change("ADDED", key[0], obj)
        cluster.hooks.append(self._on_change)

    def release(self, stage: str, index: int | None = None) -> None:
        """Let held Pods of `stage` (one index, or all: None) finish, including Pods not created yet."""
        self.released.add((stage, index))
        self._visit_all = True

    def _on_change(self, type_: str, res: Any, obj: dict[str, Any]) -> None:
        keys = self._keys.get(res)
        if keys is None:
            return
        meta = obj["metadata"]
        key = (res, meta.get("namespace", ""), meta["name"])
        ref = next(iter(meta.get("ownerReferences") or []), None) if res == PODS else None
        owner = ref.get("uid", "") if ref is not None else ""
        if type_ == "DELETED":
            keys.pop(key, None)
            self._dirty[res].pop(key, None)
            self._timed[res].pop(key, None)
            if res == PODS:
                self._pods_of.get(owner, {}).pop(key, None)
            else:
                self._pods_of.pop(meta["uid"], None)
        else:
            keys.setdefault(key, None)
            self._dirty[res][key] = None
            if res == PODS:
                self._pods_of.setdefault(owner, {})[key] = None
        if ref is not None:  # the owning Job sees its Pods change, as the Job controller's Pod informer does
            self._dirty[JOBS][(JOBS, meta.get("namespace", ""), ref["name"])] = None
        if res == PODS and type_ == "DELETED":
            state = self.pods.pop(meta["uid"], None)
            if state is not None and state.worker is not None and state.worker.current is not None:
                # a deleted Pod's process gets SIGTERM: the runtime ends its shard as stopped (143)
                state.worker.feed.done(state.worker.current, 143)
            job = self._job_of(obj)
            phase = (obj.get("status") or {}).get("phase")
            if state is not None and job is not None and phase not in ("Succeeded", "Failed") \
                    and meta["uid"] not in self.jobs.get(job["metadata"]["uid"], JobState()).scaled_down:
                js = self.jobs.setdefault(job["metadata"]["uid"], JobState())
                js.lost_at[state.index] = time.monotonic()
                if not (job.get("spec") or {}).get("suspend") and not _disrupted(obj):
                    js.failures[state.index] = js.failures.get(state.index, 0) + 1  # killed: exit 137
                    js.failed_pods += 1

    def _job_of(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        ref = next(iter(pod["metadata"].get("ownerReferences") or []), None)
        if ref is None:
            return None
        return self.cluster.store.get((JOBS, pod["metadata"]["namespace"], ref["name"]))

    async def run(self) -> None:
        while True:
            if self.enabled:
                self.tick_once()
            await asyncio.sleep(self.tick)

    def tick_once(self) -> None:
        """Sync the Jobs, then the Pods, that changed or are waiting on the clock (all after a release)."""
        visit_all, self._visit_all = self._visit_all, False
        if self.kueue is not None:
            self.kueue.sync()
            visit_all = True  # an admission or a resize changes no Pod the tick would see: look at every Job
            self._quiet.clear()
        for key in self._due(JOBS, visit_all):
            job = self.cluster.store.get(key)
            if job is not None:
                pods = [self.cluster.store[k] for k in self._pods_of.get(job["metadata"]["uid"], {})
                        if k in self.cluster.store]
                self._sync_job_unless_quiet(key, job, pods)
        for key in self._due(PODS, visit_all):
            pod = self.cluster.store.get(key)
            if pod is not None:
                self._sync_pod(key, pod)

    def _due(self, res: Any, visit_all: bool) -> list[ObjKey]:
        """The keys of `res` to visit this tick (changed first, then timed; every one with `visit_all`);
        starts them afresh."""
        if visit_all:
            due = list(self._keys[res])
        else:
            due = [*self._dirty[res], *(k for k in self._timed[res] if k not in self._dirty[res])]
        self._dirty[res] = {}
        self._timed[res] = {}
        return due

    # -- the Job controller
    def _sync_job_unless_quiet(self, key: ObjKey, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Sync a Job unless neither it nor its Pods changed since a sync that wrote nothing (nothing
        would differ, unless a lost Pod's replacement is waiting out `replacement_delay`, or the sync asked
        to be visited again: an inventory listing, a bulk Job's next indexes)."""
        uid = job["metadata"]["uid"]
        seen = (job["metadata"]["resourceVersion"], tuple(p["metadata"]["resourceVersion"] for p in pods))
        if self._quiet.get(uid) == seen:
            return
        before = self.cluster.last_rv
        self._sync_job(key, job, pods)
        js = self.jobs.get(uid)
        waiting = js is not None and any(time.monotonic() - t < self.replacement_delay for t in js.lost_at.values())
        if self.cluster.last_rv == before and not waiting and key not in self._timed[JOBS]:
            self._quiet[uid] = seen
        else:
            self._quiet.pop(uid, None)
        if waiting:
            self._timed[JOBS][key] = None

    def _sync_job(self, key: ObjKey, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        spec, status = job["spec"], dict(job.get("status") or {})
        conditions = [c for c in status.get("conditions") or []]
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            return
        js = self.jobs.setdefault(job["metadata"]["uid"], JobState())
        new: dict[str, Any] = dict(status)
        if spec.get("suspend"):
            for p in pods:
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    self.cluster.delete((PODS, key[1], p["metadata"]["name"]))
            new.update(active=0, ready=0)
            new.pop("startTime", None)
            new["conditions"] = _set(conditions, "Suspended", "True", "JobSuspended")
            return self._write_job(key, status, new)
        if any(c["type"] == "Suspended" and c["status"] == "True" for c in conditions):
            new["conditions"] = _set(conditions, "Suspended", "False", "JobResumed")
        refusal = self.refuse_pods.get(key[1])
        if refusal is not None and not pods:  # as the Job controller meets a quota: an Event, no status
            self._failed_create(key, job, refusal)
            self._timed[JOBS][key] = None  # tried again, as its backoff does, until the refusal is lifted
            return
        new.setdefault("startTime", now_rfc3339())
        labels = job["metadata"].get("labels") or {}
        if labels.get("genfab.dev/task") in ("inventory", "records"):
            return self._one_pod_sync(key, job, status, new)
        rate = self.bulk.get(labels.get("genfab.dev/stage", ""), 0)
        if rate:
            return self._bulk_sync(key, job, js, status, new, rate)
        per_index = "backoffLimitPerIndex" in spec
        limit = int(spec.get("backoffLimitPerIndex") or 0) if per_index else 10**9
        # Without backoffLimitPerIndex (a gang Job): failures count over the whole Job, exit 42 fails it.
        for p in pods:
            uid, phase = p["metadata"]["uid"], (p.get("status") or {}).get("phase")
            if uid in js.counted or phase not in ("Succeeded", "Failed"):
                continue
            js.counted.add(uid)
            index = int(p["metadata"]["labels"][INDEX_LABEL])
            if phase == "Succeeded":
                js.completed.add(index)
                js.succeeded_pods += 1
                continue
            if _disrupted(p):
                continue  # podFailurePolicy: Ignore
            js.failed_pods += 1
            code = _exit_code(p)
            js.failures[index] = js.failures.get(index, 0) + 1
            if code == 42 and not per_index:
                js.job_failed = "PodFailurePolicy"
            if code == 42 or js.failures[index] > limit:
                js.failed.add(index)
        if not per_index and js.failed_pods > int(spec.get("backoffLimit", 6)):
            js.job_failed = js.job_failed or "BackoffLimitExceeded"
        for index, n in js.failures.items():
            if n > limit:
                js.failed.add(index)
        completions = int(spec["completions"])
        live = {int(p["metadata"]["labels"][INDEX_LABEL]) for p in pods
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else completions)
        admitted = self.kueue.admitted_pods(job) if self.kueue is not None else None
        if admitted is not None:
            parallelism = min(parallelism, admitted)
        if len(live) > parallelism:
            live -= self._scale_down(key, pods, js, len(live) - parallelism)
        for index in range(completions):
            if len(live) >= parallelism:
                break
            if index in js.completed or index in js.failed or index in live:
                continue
            if time.monotonic() - js.lost_at.get(index, -1e9) < self.replacement_delay:
                continue
            self._create_pod(key, job, index, js)
            live.add(index)
        running = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                   and (PODS, key[1], p["metadata"]["name"]) in self.cluster.store]
        new.update(active=len(live), ready=sum(_ready(p) for p in running), succeeded=js.succeeded_pods,
                   failed=js.failed_pods, completedIndexes=_indexes(js.completed) or None,
                   failedIndexes=_indexes(js.failed) or None)
        if js.job_failed:  # the whole Job fails: its running Pods are stopped
            for p in running:
                self.cluster.delete((PODS, key[1], p["metadata"]["name"]))
            new.update(active=0, ready=0, completionTime=now_rfc3339())
            new["conditions"] = _set(new.get("conditions") or [], "Failed", "True", js.job_failed,
                                     "Job has reached the specified backoff limit")
        elif len(js.completed) + len(js.failed) >= completions:
            new.update(active=0, ready=0, completionTime=now_rfc3339())
            if js.failed:
                new["conditions"] = _set(new.get("conditions") or [], "Failed", "True", "FailedIndexes",
                                         "Job has failed indexes")
            else:
                new["conditions"] = _set(new.get("conditions") or [], "Complete", "True", "Completed")
        self._write_job(key, status, new)

    def _scale_down(self, key: ObjKey, pods: list[dict[str, Any]], js: JobState, count: int) -> set[int]:
        """Stop `count` active Pods as Kubernetes' Job controller does when parallelism is lowered
        (`activePodsForRemoval`: not yet running before running, not Ready before Ready, newest first),
        removing their tracking finalizer first so they count neither failed nor succeeded. Their indexes."""
        active = [(n, p) for n, p in enumerate(pods) if (p.get("status") or {}).get("phase") not in (
            "Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")]
        active.sort(key=lambda item: ((item[1].get("status") or {}).get("phase") == "Running", _ready(item[1]),
                                      -item[0]))
        stopped = set()
        for _, pod in active[:count]:
            js.scaled_down.add(pod["metadata"]["uid"])
            js.counted.add(pod["metadata"]["uid"])
            stopped.add(int(pod["metadata"]["labels"][INDEX_LABEL]))
            self.cluster.delete((PODS, key[1], pod["metadata"]["name"]))
        return stopped

    def _one_pod_sync(self, key: ObjKey, job: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        running = self._inventories.get(uid)
        if running is None:
            env = self._pod_env(key[1], job["spec"]["template"]["spec"]["containers"][0])
            if job["metadata"]["labels"]["genfab.dev/task"] == "records":
                self._inventories[uid] = self._inventory_pool.submit(_records, env)
            else:
                self._inventories[uid] = self._inventory_pool.submit(_inventory, self._job_config(key, job), env)
            new.update(active=1)
        elif running.done():
            why = running.result()
            new.update(active=0, ready=0, completionTime=now_rfc3339(), **({"failed": 1} if why else {"succeeded": 1}))
            new["conditions"] = (_set(new.get("conditions") or [], "Failed", "True", "PodFailurePolicy", why) if why
                                 else _set(new.get("conditions") or [], "Complete", "True", "Completed"))
        self._timed[JOBS][key] = None
        self._write_job(key, old, new)

    def _pod_env(self, ns: str, container: dict[str, Any]) -> dict[str, str]:
        """A container's environment as its Pod would see it (Secret references resolved, as the kubelet does)."""
        env: dict[str, str] = {}
        for e in container.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                env[e["name"]] = str(e.get("value", ""))
                continue
            secret = self.cluster.store.get((SECRETS, ns, ref["name"]))
            if secret is not None and ref["key"] in (secret.get("data") or {}):
                env[e["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return env

    def _job_config(self, key: ObjKey, job: dict[str, Any]) -> StageConfig:
        volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "stage-config")
        cm = self.cluster.store[(CONFIGMAPS, key[1], volume["configMap"]["name"])]
        return StageConfig.from_json(str(cm["data"]["stage.json"]))

    def _bulk_sync(self, key: ObjKey, job: dict[str, Any], js: JobState, old: dict[str, Any], new: dict[str, Any],
                   rate: int) -> None:
        """Finish a bulk Job's indexes, `rate` at a time: a batch's final reports are written on
        `_bulk_pool` (as Pods write theirs, elsewhere), and its indexes are recorded on a later tick, once
        written. Written here, on the event loop the API server shares, a batch of 250 reports held every
        request of every tenant for a tick (0.3-0.5 s on a loaded 2-core machine): the operator's next
        request waited for it, and another namespace's first Job took 2-19 s, a test's delay, not the
        operator's."""
        uid = job["metadata"]["uid"]
        pending = self._bulk_writes.get(uid)
        if pending is not None and not pending.done():
            self._timed[JOBS][key] = None
            return
        if pending is not None:
            del self._bulk_writes[uid]
            for index, succeeded in pending.result():
                (js.completed if succeeded else js.failed).add(index)
                js.succeeded_pods += succeeded
                js.failed_pods += not succeeded
                js.next_bulk += 1
        completions = int(job["spec"]["completions"])
        left = completions - js.next_bulk
        if left:
            cfg = self._job_config(key, job)
            ids = self._stage_ids(cfg, job)
            todo = range(js.next_bulk, min(completions, js.next_bulk + rate))
            batch = [(index, self.script(cfg.stage, index, 0)) for index in todo]
            self._bulk_writes[uid] = self._bulk_pool.submit(_write_bulk_reports, cfg, ids, completions, batch)
            self._timed[JOBS][key] = None
        new.update(active=min(rate, left), ready=min(rate, left), succeeded=js.succeeded_pods, failed=js.failed_pods,
                   completedIndexes=_indexes(js.completed) or None, failedIndexes=_indexes(js.failed) or None)
        if not left:
            new.update(completionTime=now_rfc3339())
            new["conditions"] = (_set(new.get("conditions") or [], "Failed", "True", "FailedIndexes",
                                      "Job has failed indexes") if js.failed else
                                 _set(new.get("conditions") or [], "Complete", "True", "Completed"))
        self._write_job(key, old, new)

    def _stage_ids(self, cfg: StageConfig, job: dict[str, Any]) -> list[str]:
        """The stage's sample ids, listed once per stage as an inventory would (from the manifest, if any)."""
        ids = self._bulk_samples.get(cfg.config_hash)
        if ids is None:
            env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
            context = StageContext(cfg, 0, 1, env={ENV_SAMPLE_MANIFEST: "1"} if env.get(ENV_SAMPLE_MANIFEST) else {})
            ids = self._bulk_samples[cfg.config_hash] = [s.id for s in context.all_samples]
        return ids

    def _write_job(self, key: ObjKey, old: dict[str, Any], new: dict[str, Any]) -> None:
        new = {k: v for k, v in new.items() if v is not None}
        if new != old:
            self.cluster.patch(key, {"status": {**{k: None for k in old if k not in new}, **new}})

    def _failed_create(self, key: ObjKey, job: dict[str, Any], why: str) -> None:
        name = f"{key[2]}.failedcreate"
        existing = self.cluster.store.get((EVENTS, key[1], name))
        if existing is None:
            self.cluster.create(EVENTS, key[1], failed_create_event(job, name, why))
        else:
            self.cluster.patch((EVENTS, key[1], name), {"count": existing["count"] + 1, "lastTimestamp": now_rfc3339()})

    def _create_pod(self, key: ObjKey, job: dict[str, Any], index: int, js: JobState) -> None:
        template = job["spec"]["template"]
        labels = {**(template.get("metadata") or {}).get("labels", {}), "job-name": key[2],
                  "batch.kubernetes.io/job-name": key[2], INDEX_LABEL: str(index)}
        attempt = js.attempts.get(index, 0)
        js.attempts[index] = attempt + 1
        pod = self.cluster.create(PODS, key[1], {
            "metadata": {"name": f"{key[2]}-{index}-{attempt}x{int(time.monotonic() * 1000) % 100000}",
                         "labels": labels,
                         "annotations": {INDEX_LABEL: str(index)},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": key[2],
                                              "uid": job["metadata"]["uid"], "controller": True}]},
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        })
        stage = labels.get("genfab.dev/stage", "")
        behaviour = (self.resource_script(labels.get("genfab.dev/resource", ""), stage, index, attempt)
                     if self.resource_script else self.script(stage, index, attempt))
        self.pods[pod["metadata"]["uid"]] = PodState(stage, index, behaviour)
        env = {e["name"]: str(e.get("value", "")) for e in template["spec"]["containers"][0].get("env") or []}
        config = self._config_json(pod)
        if env.get(ENV_WORKERS) and config is not None:
            cfg = StageConfig.from_json(config)
            feed: ClaimFeed | GroupFeed
            if env.get(ENV_HOSTED):  # a shared worker: the runtime's own feed over its stages' cursors
                ctx = StageContext(cfg, index, int(env["GENFAB_SHARD_COUNT"]),
                                   env={k: v for k, v in env.items() if k != ENV_WAITING_FILE})
                feed = GroupFeed(ctx, parse_members(env[ENV_HOSTED]), poll_seconds=0)
            else:
                feed = ClaimFeed(open_storage(cfg.run_uri), cfg.stage, cfg.config_hash, index,
                                 int(env["GENFAB_SHARD_COUNT"]), int(env.get(ENV_SHARD_RETRIES) or 0),
                                 upstream=cfg.stream, shard_size=cfg.shard_size)
            self.pods[pod["metadata"]["uid"]].worker = WorkerPod(feed, config, bool(env.get(ENV_SAMPLE_MANIFEST)))

    # -- the kubelet
    def _sync_pod(self, key: ObjKey, pod: dict[str, Any]) -> None:
        state = self.pods.get(pod["metadata"]["uid"])
        status = pod.get("status") or {}
        if state is None or status.get("phase") in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            return
        b = state.behaviour
        if status.get("reason") == "NodeLost":
            return
        if b.outcome == "unschedulable":
            if not status.get("conditions"):
                self.cluster.patch(key, {"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]}})
            return
        if b.outcome == "image-pull":
            if not status.get("containerStatuses"):
                self.cluster.patch(key, {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}],
                                                    "containerStatuses": [{"name": "stage", "ready": False, "state": {
                                                        "waiting": {"reason": "ImagePullBackOff",
                                                                    "message": "Back-off pulling image"}}}]}})
            return
        if state.running_since is None:
            state.running_since = time.monotonic()
            state.started = self._start_report(pod, state) if state.worker is None else None
            self.cluster.patch(key, {"status": {"phase": "Running", "startTime": now_rfc3339(), "conditions": [
                {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "stage", "ready": True,
                                       "state": {"running": {"startedAt": now_rfc3339()}}}]}})
            return
        if state.worker is not None:
            return self._sync_worker(key, state, state.worker)
        if b.hold and not {(state.stage, state.index), (state.stage, None)} & self.released:
            return
        if time.monotonic() - state.running_since < b.seconds:
            self._timed[PODS][key] = None
            return
        code = {"succeed": 0, "crash": 1, "bad-input": 42}[b.outcome]
        self._end_pod(key, code, self._finish_report(pod, state, code))

    def _sync_worker(self, key: ObjKey, state: PodState, w: WorkerPod) -> None:
        """One step of a worker Pod: take a shard, or end the one it runs once its time is up."""
        self._timed[PODS][key] = None
        if w.current is None:
            try:
                taken = w.feed.next()
            except BadInput as exc:  # a shared worker's hosted stage the operator did not start
                return self._end_pod(key, 42, str(exc))
            self._readiness(key, taken != WAIT)  # the runtime's waiting file, as its readiness probe reads it
            if taken == WAIT:  # a streaming stage's next input is not committed yet: look again next tick
                return None
            if taken is None:  # the cursor ran out: the worker ends
                return self._end_pod(key, 0, "")
            w.stage, w.shard_config, w.shards = state.stage, w.config, 0
            if isinstance(taken, SharedAssignment):  # one of a shared worker's stages
                w.stage = taken.stage
                if ENV_CONFIG in taken.env:
                    w.shard_config = Path(taken.env[ENV_CONFIG]).read_text()
                    w.shards = int(taken.env[ENV_SHARDS])
                taken = taken.shard
            w.current = taken
            w.since = time.monotonic()
            state.started = Future()
            state.started.set_result(first_report(w.shard_config, w.current.index, w.shards or w.feed_shards(),
                                                  w.manifest))
            return None
        shard = w.current.index
        b = state.behaviour = self.script(w.stage, shard, w.attempt() - 1)
        if b.hold and not {(w.stage, shard), (w.stage, None)} & self.released:
            return None
        if time.monotonic() - w.since < b.seconds:
            return None
        code = {"succeed": 0, "crash": 1, "bad-input": 42, "unschedulable": 0, "image-pull": 0}[b.outcome]
        pod = self.cluster.store.get(key)
        if pod is None:
            return None
        state.index = shard  # the report written is the shard's
        self._finish_report(pod, state, code)
        if isinstance(w.feed, GroupFeed):
            w.feed.done(SharedAssignment(w.stage, {}, w.current), code)
        else:
            w.feed.done(w.current, code)
        w.current = None
        if not w.feed.continues_after(code):
            return self._end_pod(key, code, "")
        return None

    def _readiness(self, key: ObjKey, ready: bool) -> None:
        """A worker Pod's Ready condition as its readiness probe says: not Ready while it waits for input."""
        pod = self.cluster.store.get(key)
        if pod is None or _ready(pod) == ready:
            return
        conditions = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"]
        self.cluster.patch(key, {"status": {"conditions": [
            *conditions, {"type": "Ready", "status": "True" if ready else "False"}]}})

    def _end_pod(self, key: ObjKey, code: int, message: str) -> None:
        self.cluster.patch(key, {"status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "stage", "ready": False, "state": {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message,
                "finishedAt": now_rfc3339()}}}]}})

    def lose_node(self, pod_name: str, ns: str) -> None:
        """The Pod's node stops responding: NodeLost, then the taint manager evicts it."""
        self.cluster.patch((PODS, ns, pod_name), {"status": {
            "reason": "NodeLost", "message": "Node gpu-node-3 which was running the pod is unresponsive",
            "conditions": [{"type": "Ready", "status": "False"},
                           {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}]}})

    def evict(self, pod_name: str, ns: str) -> None:
        """The taint manager's eviction completes: the Pod fails and is removed (not counted)."""
        key = (PODS, ns, pod_name)
        if self.cluster.patch(key, {"status": {"phase": "Failed"}}) is not None:
            self.cluster.delete(key)  # a Failed Pod with DisruptionTarget: replaced, not counted

    # -- shard reports over the real progress channel
    def _config_json(self, pod: dict[str, Any]) -> str | None:
        volume = next((v for v in pod["spec"].get("volumes", []) if v["name"] == "stage-config"), None)
        if volume is None:
            return None
        cm = self.cluster.store.get((CONFIGMAPS, pod["metadata"]["namespace"], volume["configMap"]["name"]))
        return str(cm["data"]["stage.json"]) if cm else None

    def _start_report(self, pod: dict[str, Any],
                      state: PodState) -> Future[tuple[ShardReport, list[str]]] | None:
        config = self._config_json(pod)
        if config is None:
            return None
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        shards, manifest = int(str(env["GENFAB_SHARD_COUNT"])), bool(env.get(ENV_SAMPLE_MANIFEST))
        if self.report_pool is not None:
            return self.report_pool.submit(first_report, config, state.index, shards, manifest)
        done: Future[tuple[ShardReport, list[str]]] = Future()
        done.set_result(first_report(config, state.index, shards, manifest))
        return done

    def _finish_report(self, pod: dict[str, Any], state: PodState, code: int) -> str:
        config = self._config_json(pod)
        if state.started is None or config is None:
            return ""
        (report, ids), cfg = state.started.result(), StageConfig.from_json(config)
        key = report_key(report.stage, report.config_hash, report.index)
        if state.behaviour.raw_report is not None:
            open_storage(cfg.run_uri).write_bytes(key, state.behaviour.raw_report)
            return ""
        if state.behaviour.at_exit != "final":
            if state.behaviour.at_exit == "none":
                open_storage(cfg.run_uri).delete_keys([key])
            return ""
        if code == 0:
            bad = ids[: state.behaviour.fail_samples]
            report.failed = [FailedSample(i, state.behaviour.fail_reason, state.behaviour.fail_message) for i in bad]
            report.succeeded = [i for i in ids if i not in bad]
            _bin_figures(report, state.behaviour)
            report.state = "succeeded"
            if state.behaviour.made_by:
                report.produced_by = {state.behaviour.made_by: len(report.succeeded)}
        else:
            report.state = "failed"
            report.message = f"exit code {code}"
        write_report(open_storage(cfg.run_uri), report)
        return json.dumps({"stage": report.stage, "index": report.index, "state": report.state,
                           "succeeded": len(report.succeeded), "failed": len(report.failed)})


def failed_create_event(job: dict[str, Any], name: str, why: str) -> dict[str, Any]:
    """The Event Kubernetes' Job controller writes when the API server refuses a Pod of `job` (its shape
    as kube-controller-manager 1.20 writes it; tests/realcluster checks the two agree)."""
    meta, now = job["metadata"], now_rfc3339()
    return {"metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                               "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion", "")},
            "reason": "FailedCreate", "message": f'Error creating: pods "{meta["name"]}-x0001" is forbidden: {why}',
            "source": {"component": "job-controller"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "type": "Warning", "eventTime": None, "reportingComponent": "", "reportingInstance": ""}


def _write_bulk_reports(cfg: StageConfig, ids: list[str], completions: int,
                        batch: list[tuple[int, Behaviour]]) -> list[tuple[int, bool]]:
    """Write each index's final shard report as its Pod would: succeeded (its first `fail_samples` samples
    dropped), or failed (crash, bad input). Returns each index with whether it succeeded."""
    run = open_storage(cfg.run_uri)
    outcomes = []
    for index, behaviour in batch:
        lo, hi = shard_bounds(len(ids), index, completions)
        report = ShardReport(stage=cfg.stage, config_hash=cfg.config_hash, index=index, shards=completions,
                             total=hi - lo)
        if behaviour.outcome == "succeed":
            bad = ids[lo:lo + behaviour.fail_samples]
            report.failed = [FailedSample(i, behaviour.fail_reason, behaviour.fail_message) for i in bad]
            report.succeeded = ids[lo + len(bad):hi]
            _bin_figures(report, behaviour)
            report.state = "succeeded"
        else:
            report.state, report.message = "failed", f"exit code {1 if behaviour.outcome == 'crash' else 42}"
        write_report(run, report)
        outcomes.append((index, report.state == "succeeded"))
    return outcomes


def _bin_figures(report: ShardReport, behaviour: Behaviour) -> None:
    """The scripted figures of each committed sample, binned as a shard's progress reporter bins them."""
    for name, value in (behaviour.figures or {}).items():
        figure = FIGURES[name]
        counts = [0] * (len(figure.edges) - 1)
        counts[figure.bin(value)] = len(report.succeeded)
        report.figures[name], report.figure_spans[name] = counts, [value, value]


def _inventory(cfg: StageConfig, env: dict[str, str]) -> str:
    """What an inventory Pod does, with its environment (storage settings, credentials, confinement): ""
    once the manifest is written, else its one line."""
    settings = S3Settings.from_env(env)
    roots = json.loads(env[ENV_FILE_ROOTS]) if env.get(ENV_FILE_ROOTS) else None
    try:
        make_inventory(cfg, lambda uri: open_storage(uri, settings, confine=roots))
    except InventoryError as exc:
        return f"bad input: {exc}"
    return ""


def _records(env: dict[str, str]) -> str:
    """What a records Pod does (genfab.sequencing.records), with its environment: "" once written, else
    its one line."""
    settings = S3Settings.from_env(env)
    roots = json.loads(env[ENV_FILE_ROOTS]) if env.get(ENV_FILE_ROOTS) else None
    request = RecordsRequest.model_validate_json(env[ENV_RECORDS])
    try:
        write_records(open_storage(request.output_uri, settings, confine=roots), request)
    except StorageError as exc:
        return f"storage: {exc}"
    return ""


def first_report(config: str, index: int, shards: int, manifest: bool = False) -> tuple[ShardReport, list[str]]:
    """What a stage's shard does as it starts: take its slice of the samples as the stage runtime does
    (`StageContext.samples`: listed, or read from the stage's sample manifest where the Job says so) and
    write its first report into the run's storage (the operator reads progress from it). Returns the
    report and the shard's sample ids."""
    cfg = StageConfig.from_json(config)
    ids = [s.id for s in StageContext(cfg, index, shards, env={ENV_SAMPLE_MANIFEST: "1"} if manifest else {}).samples]
    report = ShardReport(stage=cfg.stage, config_hash=cfg.config_hash, index=index, shards=shards, total=len(ids))
    write_report(open_storage(cfg.run_uri), report)
    return report, ids


def _set(conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str = ""
         ) -> list[dict[str, Any]]:
    out = [c for c in conditions if c["type"] != type_]
    out.append({"type": type_, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": now_rfc3339()})
    return out


def _disrupted(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _exit_code(pod: dict[str, Any]) -> int:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated:
            return int(terminated.get("exitCode", 1))
    return 137
