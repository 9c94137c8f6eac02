"""A scriptable fake Job controller and kubelet for `GenfabCluster`.

It moves Indexed Jobs and their Pods through their lifecycle the way Kubernetes does, in simplified
form: one Pod per pending index (up to `parallelism`), `backoffLimitPerIndex`, the podFailurePolicy
genfab sets (exit 42 fails the index at once; Pods with a DisruptionTarget condition do not count),
suspend/resume, completedIndexes/failedIndexes, Complete/Failed conditions.

A Pod "runs" a shard by writing the stage's real shard reports (genfab.inventory) into the
resource's output storage, so the operator reads progress over the real channel. What a Pod does is
decided by `script(stage, index, attempt) -> Behaviour` when it is created.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genfab.contract import StageConfig, shard_bounds
from genfab.contract.names import report_key
from genfab.inventory import FailedSample, ShardReport, resolve_samples, write_report
from genfab.storage import open_storage
from tests.emulator.cluster import GenfabCluster, ObjKey, now_rfc3339, res_of

JOBS, PODS, CONFIGMAPS = res_of("batch/v1/jobs"), res_of("v1/pods"), res_of("v1/configmaps")
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
    raw_report: bytes | None = None
    """Bytes written as the shard's final report instead of a real one (corrupt, huge, nested)."""
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
    report: ShardReport | None = None


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


def _indexes(values: set[int]) -> str:
    return ",".join(str(i) for i in sorted(values))


class Kubelet:
    def __init__(self, cluster: GenfabCluster, tick: float = 0.05) -> None:
        self.cluster = cluster
        self.tick = tick
        self.script: Script = lambda stage, index, attempt: Behaviour()
        self.resource_script: Callable[[str, str, int, int], Behaviour] | None = None
        """When set, decides instead of `script`, also given the Pod's resource name first."""
        self.replacement_delay = 0.0
        """Seconds before a deleted Pod's index gets a new Pod (lets a test observe PodDeleted)."""
        self.pods: dict[str, PodState] = {}
        self.jobs: dict[str, JobState] = {}
        self.released: set[tuple[str, int | None]] = set()
        self.enabled = True
        self._quiet: dict[str, tuple[str, tuple[str, ...]]] = {}
        """Job uid -> the resourceVersions of it and its Pods when a sync last wrote nothing."""
        self._keys: dict[Any, dict[ObjKey, None]] = {JOBS: {}, PODS: {}}
        """The store's Jobs and Pods in creation order (kept by `_on_change`): each tick visits these,
        not the whole store (at 5,000 resources a scan of every object ten times a second was most of
        the emulator's CPU, and it shared the machine with the operator under test)."""
        for key in cluster.store:
            if key[0] in self._keys:
                self._keys[key[0]][key] = None
        cluster.hooks.append(self._on_change)

    def release(self, stage: str, index: int | None = None) -> None:
        """Let held Pods of `stage` (one index, or all: None) finish, including Pods not created yet."""
        self.released.add((stage, index))

    def _on_change(self, type_: str, res: Any, obj: dict[str, Any]) -> None:
        keys = self._keys.get(res)
        if keys is not None:
            key = (res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if type_ == "DELETED":
                keys.pop(key, None)
            else:
                keys.setdefault(key, None)
        if res == PODS and type_ == "DELETED":
            state = self.pods.pop(obj["metadata"]["uid"], None)
            job = self._job_of(obj)
            phase = (obj.get("status") or {}).get("phase")
            if state is not None and job is not None and phase not in ("Succeeded", "Failed"):
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
                pods_of: dict[str, list[dict[str, Any]]] = {}
                for k in self._keys[PODS]:  # one pass: pods by owning Job uid
                    for ref in self.cluster.store[k]["metadata"].get("ownerReferences") or []:
                        pods_of.setdefault(ref.get("uid", ""), []).append(self.cluster.store[k])
                for key in list(self._keys[JOBS]):
                    job = self.cluster.store.get(key)
                    if job is not None:
                        self._sync_job_unless_quiet(key, job, pods_of.get(job["metadata"]["uid"], []))
                for key in list(self._keys[PODS]):
                    pod = self.cluster.store.get(key)
                    if pod is not None:
                        self._sync_pod(key, pod)
            await asyncio.sleep(self.tick)

    # -- the Job controller
    def _sync_job_unless_quiet(self, key: ObjKey, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Sync a Job unless neither it nor its Pods changed since a sync that wrote nothing (nothing
        would differ, unless a lost Pod's replacement is waiting out `replacement_delay`)."""
        uid = job["metadata"]["uid"]
        seen = (job["metadata"]["resourceVersion"], tuple(p["metadata"]["resourceVersion"] for p in pods))
        if self._quiet.get(uid) == seen:
            return
        before = self.cluster.last_rv
        self._sync_job(key, job, pods)
        js = self.jobs.get(uid)
        waiting = js is not None and any(time.monotonic() - t < self.replacement_delay for t in js.lost_at.values())
        if self.cluster.last_rv == before and not waiting:
            self._quiet[uid] = seen
        else:
            self._quiet.pop(uid, None)

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
        new.setdefault("startTime", now_rfc3339())
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
        parallelism = int(spec.get("parallelism") or completions)
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

    def _write_job(self, key: ObjKey, old: dict[str, Any], new: dict[str, Any]) -> None:
        new = {k: v for k, v in new.items() if v is not None}
        if new != old:
            self.cluster.patch(key, {"status": {**{k: None for k in old if k not in new}, **new}})

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
            state.report = self._start_report(pod, state)
            self.cluster.patch(key, {"status": {"phase": "Running", "startTime": now_rfc3339(), "conditions": [
                {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "stage", "ready": True,
                                       "state": {"running": {"startedAt": now_rfc3339()}}}]}})
            return
        if b.hold and not {(state.stage, state.index), (state.stage, None)} & self.released:
            return
        if time.monotonic() - state.running_since < b.seconds:
            return
        code = {"succeed": 0, "crash": 1, "bad-input": 42}[b.outcome]
        message = self._finish_report(pod, state, code)
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
    def _config(self, pod: dict[str, Any]) -> StageConfig | None:
        volume = next((v for v in pod["spec"].get("volumes", []) if v["name"] == "stage-config"), None)
        if volume is None:
            return None
        cm = self.cluster.store.get((CONFIGMAPS, pod["metadata"]["namespace"], volume["configMap"]["name"]))
        return StageConfig.from_json(cm["data"]["stage.json"]) if cm else None

    def _start_report(self, pod: dict[str, Any], state: PodState) -> ShardReport | None:
        cfg = self._config(pod)
        if cfg is None:
            return None
        shards = int(next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "GENFAB_SHARD_COUNT"))
        samples = resolve_samples(cfg, open_storage)
        lo, hi = shard_bounds(len(samples), state.index, shards)
        report = ShardReport(stage=cfg.stage, config_hash=cfg.config_hash, index=state.index, shards=shards,
                             total=hi - lo)
        report._ids = [s.id for s in samples[lo:hi]]  # type: ignore[attr-defined]
        write_report(open_storage(cfg.run_uri), report)
        return report

    def _finish_report(self, pod: dict[str, Any], state: PodState, code: int) -> str:
        report, cfg = state.report, self._config(pod)
        if report is None or cfg is None:
            return ""
        ids: list[str] = report._ids  # type: ignore[attr-defined]
        if state.behaviour.raw_report is not None:
            open_storage(cfg.run_uri).write_bytes(report_key(report.stage, report.config_hash, report.index),
                                                  state.behaviour.raw_report)
            return ""
        if code == 0:
            bad = ids[: state.behaviour.fail_samples]
            report.failed = [FailedSample(i, "SampleError", "scripted failure") for i in bad]
            report.succeeded = [i for i in ids if i not in bad]
            report.state = "succeeded"
            if state.behaviour.made_by:
                report.produced_by = {state.behaviour.made_by: len(report.succeeded)}
        else:
            report.state = "failed"
            report.message = f"exit code {code}"
        write_report(open_storage(cfg.run_uri), report)
        return json.dumps({"stage": report.stage, "index": report.index, "state": report.state,
                           "succeeded": len(report.succeeded), "failed": len(report.failed)})


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
