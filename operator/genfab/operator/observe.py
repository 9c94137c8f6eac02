"""Pure readers of observed Kubernetes objects: Job counts, Pod trouble, stall reasons.

What counts as which stall reason (each test-covered in tests/unit/test_operator_observe.py):
- ImagePullBackOff: a stage container waits with ImagePullBackOff, ErrImagePull, InvalidImageName
  or ErrImageNeverPull.
- Unschedulable: a Pod's PodScheduled condition is False with reason Unschedulable (e.g. no free GPU).
- NodeLost: a Pod is on a lost node: phase Unknown, `status.reason` NodeLost, or a DisruptionTarget
  condition set by the taint manager or the Pod garbage collector.
- PartiallyScheduled: some Pods of a process group (a gang stage's Job) are scheduled and others are
  Unschedulable: the scheduled ones hold GPUs without training.
- PodDeleted: a Pod was deleted before it finished (not by suspend, not a disruption) and its index
  has no running replacement yet (a worker Job's Pod only if its worker held a shard: genfab.operator.decide).
- DeadlineExceeded: the Job failed its deadline, or none of its Pods started within the operator's
  start deadline after the Job was last unsuspended.
- NoProgress: a running Pod's shard committed no sample within the stage's progress deadline (since
  its last sample, or since the Pod's container started): the operator deletes that Pod.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from genfab.inventory.reports import MAX_SHARDS
from genfab.operator.hosting import hosted_on, hosts
from genfab.operator.objects import (
    ANNOTATION_NO_PROGRESS,
    ANNOTATION_SAMPLES,
    ANNOTATION_SHARDS,
    ANNOTATION_STREAMS,
    INDEX_KEY,
    LABEL_QUEUE,
    LABEL_TASK,
    Condition,
    Job,
    ObjectMeta,
    Pod,
)
from genfab.sequencing import idle_seconds

IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
NODE_LOSS_DISRUPTIONS = frozenset({"DeletionByTaintManager", "DeletionByPodGC"})
STALL_ORDER = ("DeadlineExceeded", "PodsRefused", "NoProgress", "ImagePullBackOff", "PartiallyScheduled",
               "Unschedulable", "NodeLost", "PodDeleted")


@dataclass(frozen=True)
class Stall:
    reason: str
    message: str


@dataclass(frozen=True)
class LostPod:
    """A Pod that was deleted before it finished, as seen on its DELETED watch event."""

    job: str
    index: int
    pod: str
    at: str


def parse_indexes(text: str | None) -> set[int]:
    """`"0-2,5"` -> {0, 1, 2, 5} (the Job's completedIndexes/failedIndexes format)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part.strip():
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def condition(obj: Job | Pod, type_: str) -> Condition | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == type_:
            return c
    return None


def is_true(obj: Job | Pod, type_: str) -> bool:
    c = condition(obj, type_)
    return c is not None and c.get("status") == "True"


@dataclass(frozen=True)
class JobView:
    """The parts of a stage Job's status genfab reports."""

    name: str
    suspended: bool
    complete: bool
    failed: bool
    failed_reason: str | None
    failed_message: str
    shards: int
    samples: int
    succeeded_indexes: int
    failed_indexes: int
    active: int
    ready: int
    pods_started: bool
    """Any Pod of the Job ever got to run (ready, succeeded or failed)."""
    start_time: str | None
    completion_time: str | None
    created: str | None = None
    """When the Job was created, or last resumed from suspension (its Suspended condition turned False):
    where its start deadline counts from while the Job controller writes no startTime (no Pod made)."""
    queue: str | None = None
    """Kueue LocalQueue of the Job (`kueue.x-k8s.io/queue-name`): Kueue, not genfab, unsuspends it."""
    no_progress: str = ""
    """Why the operator last stopped a Pod of this Job for making no progress ("" if never)."""
    workers: int = 0
    """Its Pods are this many warm workers taking shard after shard (0: one Pod per shard, index = shard):
    then `succeeded_indexes` and `failed_indexes` count workers, and the shards' come from the workers'
    records (genfab.operator.progress)."""
    parallelism: int = 0
    """Its Pods at once (`spec.parallelism`)."""
    streams_from: str = ""
    """The upstream stage whose shards it takes as they finish (genfab.operator.streams); "" for none."""
    hosts: tuple[tuple[str, str], ...] = ()
    """A shared worker Job's: the stages it may host besides its own, each with its short config hash
    (genfab.operator.hosting)."""
    hosted: bool = False
    """The view of a stage another stage's shared worker Job hosts: its shards, samples and stream are its
    own, the Job's Pods and end the shared Job's."""

    @property
    def finished(self) -> bool:
        return self.complete or self.failed


def job_view(job: Job, hosted: str | None = None) -> JobView:
    """The Job's view; `hosted`: that stage's, hosted by this shared worker Job (genfab.operator.hosting)."""
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status", {})
    annotations = meta.get("annotations", {})
    failed = condition(job, "Failed")
    succeeded = parse_indexes(status.get("completedIndexes"))
    failed_idx = parse_indexes(status.get("failedIndexes"))
    completions = int(spec.get("completions") or 0)
    shards = _annotated_shards(meta, completions)
    streams_from = annotations.get(ANNOTATION_STREAMS, "")
    shared = hosts(job)
    samples = _count(annotations.get(ANNOTATION_SAMPLES, ""))
    if hosted is not None:
        member = hosted_on(job).get(hosted)
        shards, samples, streams_from = ((min(member.shards, MAX_SHARDS), member.samples, member.streams_from)
                                         if member is not None else (0, 0, ""))
    return JobView(
        name=meta.get("name", ""),
        suspended=bool(spec.get("suspend")),
        complete=is_true(job, "Complete"),
        failed=failed is not None and failed.get("status") == "True",
        failed_reason=failed.get("reason") if failed is not None else None,
        failed_message=failed.get("message", "") if failed is not None else "",
        shards=shards,
        workers=completions if shards > completions or streams_from or shared or hosted is not None else 0,
        parallelism=int(completions if spec.get("parallelism") is None else spec["parallelism"]),  # 0: all released
        streams_from=streams_from,
        hosts=shared if hosted is None else (),
        hosted=hosted is not None,
        samples=samples,
        succeeded_indexes=len(succeeded),
        failed_indexes=len(failed_idx),
        active=int(status.get("active") or 0),
        ready=int(status.get("ready") or 0),
        pods_started=bool(status.get("ready") or status.get("succeeded") or status.get("failed") or succeeded),
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
        created=_resumed(job) or meta.get("creationTimestamp"),
        queue=meta.get("labels", {}).get(LABEL_QUEUE) or None,
        no_progress=annotations.get(ANNOTATION_NO_PROGRESS, ""),
    )


def task_of(job: Job) -> str | None:
    """What a Job of genfab's that is not a stage's does (`inventory`, `records`), None for a stage's."""
    return job.get("metadata", {}).get("labels", {}).get(LABEL_TASK)


def config_maps_of(job: Job) -> list[str]:
    """The ConfigMaps a Job's Pods mount (an inventory Job: its stage's, named like the stage's Job)."""
    volumes = job.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
    return [name for v in volumes if (name := v.get("configMap", {}).get("name"))]


def _count(text: str) -> int:
    """An annotation's count (0 where it is not one: a Job of an older genfab, or edited)."""
    return int(text) if text.isdigit() else 0


def _annotated_shards(meta: ObjectMeta, completions: int) -> int:
    """The stage's shards as its Job's annotation says (a worker Job has more than its completions);
    the completions where it says nothing usable (a Job of an older genfab)."""
    text = meta.get("annotations", {}).get(ANNOTATION_SHARDS, "")
    return max(completions, min(int(text), MAX_SHARDS)) if text.isdigit() else completions


def _resumed(job: Job) -> str | None:
    suspended = condition(job, "Suspended")
    return suspended.get("lastTransitionTime") if suspended is not None and suspended.get("status") == "False" else None


def pod_index(pod: Pod) -> int | None:
    meta = pod.get("metadata", {})
    raw = meta.get("labels", {}).get(INDEX_KEY) or meta.get("annotations", {}).get(INDEX_KEY)
    return int(raw) if raw is not None and raw.isdigit() else None


def pod_running(pod: Pod) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and not _node_lost(pod)


def _node_lost(pod: Pod) -> bool:
    status = pod.get("status", {})
    target = condition(pod, "DisruptionTarget")
    return (status.get("phase") == "Unknown" or status.get("reason") == "NodeLost"
            or (target is not None and target.get("status") == "True"
                and target.get("reason") in NODE_LOSS_DISRUPTIONS))


def pod_trouble(pod: Pod) -> Stall | None:
    """Why this Pod cannot make progress, if it cannot."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status", {})
    for cs in status.get("containerStatuses", []):
        waiting = cs.get("state", {}).get("waiting", {})
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            reason = waiting.get("reason")
            return Stall("ImagePullBackOff", f"pod {name}: {reason}: {waiting.get('message', '')}".strip())
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return Stall("Unschedulable", f"pod {name}: {scheduled.get('message', 'unschedulable')}")
    if _node_lost(pod):
        node = pod.get("spec", {}).get("nodeName", "?")
        return Stall("NodeLost", f"pod {name}: node {node} is lost ({status.get('message') or 'not ready'})")
    return None


def was_lost(pod: Pod, job_suspended: bool) -> bool:
    """A DELETED Pod counts as lost work when it had not finished and no disruption explains it."""
    phase = pod.get("status", {}).get("phase")
    return not job_suspended and phase not in ("Succeeded", "Failed") and not is_true(pod, "DisruptionTarget")


def unresolved_lost(lost: Iterable[LostPod], pods: Iterable[Pod], job: JobView) -> list[LostPod]:
    """Lost Pods whose index has no running replacement and has not finished otherwise."""
    if job.finished or job.suspended:
        return []
    running = {pod_index(p) for p in pods if pod_running(p)}
    return [lp for lp in lost if lp.index not in running]


def start_deadline_passed(job: JobView, pods: Iterable[Pod], now: datetime, deadline_s: int,
                          ran: bool = False) -> bool:
    """Unsuspended for longer than the deadline and not one Pod ever ran. Counted from the Job's start, or
    while it has none (every Pod refused: the Job controller writes startTime with its first Pod) from its
    creation or resumption. `ran`: its shards' reports show some ended (a streaming Job whose workers were
    all released has no Pod and no counts in its status, yet ran)."""
    started = parse_time(job.start_time) or parse_time(job.created)
    if job.suspended or job.finished or started is None or job.pods_started or ran:
        return False
    if any(pod_running(p) for p in pods):
        return False
    return (now - started).total_seconds() > deadline_s


def pod_started(pod: Pod) -> datetime | None:
    """When this Pod's stage container started running (else the Pod's own start)."""
    status = pod.get("status", {})
    for cs in status.get("containerStatuses", []):
        started = cs.get("state", {}).get("running", {}).get("startedAt")
        if started:
            return parse_time(started)
    return parse_time(status.get("startTime"))


@dataclass(frozen=True)
class StuckPod:
    pod: str
    index: int
    idle: float
    """Seconds without progress."""


def stuck_pods(job: JobView, pods: Iterable[Pod], last_sample: Mapping[int, float], now: datetime,
               deadline_s: int, waiting: Collection[int] = ()) -> list[StuckPod]:
    """Running Pods whose shard has made no progress for longer than `deadline_s` (see `idle_seconds`).
    `last_sample` maps a shard index to its report's last sample time (epoch seconds); the workers in
    `waiting` wait for input, not stuck."""
    if job.finished or job.suspended:
        return []
    out = []
    for pod in pods:
        index, started = pod_index(pod), pod_started(pod)
        meta = pod.get("metadata", {})
        if not pod_running(pod) or meta.get("deletionTimestamp") or index is None \
                or started is None or index in waiting:
            continue
        idle = idle_seconds(started.timestamp(), last_sample.get(index), now.timestamp())
        if idle > deadline_s:
            out.append(StuckPod(meta.get("name", "?"), index, idle))
    return out


def _ended_at(pod: Pod) -> datetime | None:
    """When a failed Pod's container ended (else when the Pod was created)."""
    for cs in pod.get("status", {}).get("containerStatuses", []):
        finished = cs.get("state", {}).get("terminated", {}).get("finishedAt")
        if finished:
            return parse_time(finished)
    return parse_time(pod.get("metadata", {}).get("creationTimestamp"))


def group_survivors(job: JobView, pods: Iterable[Pod], lost: Iterable[LostPod]
                    ) -> tuple[list[StuckPod], str]:
    """A gang stage's Pods that outlived a member of their process group, and which member: they
    cannot finish without it (their workers wait on it), so the operator stops them and the whole
    group starts again from its latest checkpoint. Pods created after the failure are replacements,
    part of the next attempt."""
    if job.finished or job.suspended:
        return [], ""
    pods = list(pods)
    failures: list[tuple[datetime, str]] = []
    for pod in pods:
        when = _ended_at(pod)
        name = pod.get("metadata", {}).get("name", "?")
        if when is not None and (pod.get("status", {}).get("phase") == "Failed" or _node_lost(pod)):
            failures.append((when, f"pod {name} (node {pod_index(pod)}) failed"))
    for lp in lost:
        when = parse_time(lp.at)
        if when is not None:
            failures.append((when, f"pod {lp.pod} (node {lp.index}) was deleted"))
    if not failures:
        return [], ""
    latest, what = max(failures)
    out = []
    for pod in pods:
        meta = pod.get("metadata", {})
        created = parse_time(meta.get("creationTimestamp"))
        phase = pod.get("status", {}).get("phase")
        if phase in ("Pending", "Running") and not meta.get("deletionTimestamp") and not _node_lost(pod) \
                and created is not None and created < latest:
            out.append(StuckPod(meta.get("name", "?"), pod_index(pod) or 0, 0.0))
    return out, what


def partially_scheduled(job: JobView, pods: Iterable[Pod]) -> Stall | None:
    """A gang stage's group with some Pods placed and others Unschedulable (without Kueue nothing
    holds a group back until all of it fits)."""
    if job.finished or job.suspended:
        return None
    pods = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
    waiting = [p for p in pods if (pod_trouble(p) or Stall("", "")).reason == "Unschedulable"]
    placed = [p for p in pods if is_true(p, "PodScheduled")]
    if not waiting or not placed:
        return None
    first = pod_trouble(waiting[0])
    return Stall("PartiallyScheduled",
                 f"{len(placed)} of {job.shards} nodes of the process group of job {job.name} are scheduled, "
                 f"{len(waiting)} cannot be ({first.message if first else 'unschedulable'}); the scheduled nodes "
                 "hold their GPUs without training. Set spec.queueName (Kueue) to admit the group whole or not at all")


def job_stall(job: JobView, pods: Iterable[Pod], lost: Iterable[LostPod]) -> Stall | None:
    """The most important reason this stage's Job is stuck, if it is (see STALL_ORDER)."""
    if job.failed and job.failed_reason == "DeadlineExceeded":
        return Stall("DeadlineExceeded", f"job {job.name}: {job.failed_message or 'deadline exceeded'}")
    if job.finished or job.suspended:
        return None
    pods = list(pods)
    found = [s for s in (pod_trouble(p) for p in pods) if s is not None]
    found += [Stall("PodDeleted", f"pod {lp.pod} (shard {lp.index}) of job {lp.job} was deleted at {lp.at}; "
                                  f"waiting for a replacement")
              for lp in unresolved_lost(lost, pods, job)]
    if not found:
        return None
    return min(found, key=lambda s: STALL_ORDER.index(s.reason))
