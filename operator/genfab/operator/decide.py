"""The reconcile decision, pure: plan + observed children + previous status -> actions + new status.

Rules:
- A stage's current Job is the one labelled with its name and config hash. Jobs of other config
  hashes (a GitOps spec change) are deleted; their committed outputs stay in storage.
- A stage starts when every upstream stage succeeded (or partially succeeded under
  `continueOnError`) or was not selected; a failed upstream blocks it. A stage that streams from its
  upstream starts once that one committed a first shard, and stops if it fails (genfab.operator.streams).
- A finished stage's result lives on in `status.stages` after its Job is gone (TTL, deadline), so
  it is never re-run for the same config hash.
- Suspend passes through to every unfinished Job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from genfab.api.common import CommonSpec
from genfab.api.status import TERMINAL_PHASES, CustomStageStatus, ResourceStatus, ShardTally, StageStatus
from genfab.contract import indexes
from genfab.operator.hosting import hosted_on, stale_hosted
from genfab.operator.objects import LABEL_HASH, LABEL_STAGE, Job, Pod, inventory_name
from genfab.operator.observe import (
    STALL_ORDER,
    JobView,
    LostPod,
    Stall,
    config_maps_of,
    group_survivors,
    job_stall,
    job_view,
    partially_scheduled,
    start_deadline_passed,
    stuck_pods,
)
from genfab.operator.streams import (
    IDLE_RELEASE_SECONDS,
    StreamInput,
    StreamStart,
    idle_past,
    may_start,
    ready_shards,
    release_after,
    wanted_parallelism,
)
from genfab.planner import Plan, PlannedStage
from genfab.sequencing import BLOCKED_MESSAGE, gate, no_progress_message, phase_of
from genfab.sequencing.manual import Awaiting, gate_status, held_back
from genfab.sequencing.refs import RefState, stage_refs
from genfab.status import StageObservation, build_status, filtered_count, notes_message, set_condition
from genfab.status.aggregate import ExecState
from genfab.status.cost import gpu_seconds

WAITING_FOR_REFERENCE = "WaitingForReference"
"""A stage's reason while the resource whose output it reads has not succeeded."""
PODS_REFUSED = "PodsRefused"
"""A stage's Stalled reason while the API server refuses its Job's Pods (quota, LimitRange, admission)."""
INDEXES_UNKNOWN = "IndexesUnknown"
"""A stage's reason when its Job completed without naming every index done (it ran without Indexed mode)."""


@dataclass(frozen=True)
class Progress:
    """Per-sample counts of a stage, summed over its shard reports."""

    succeeded: int = 0
    failed: int = 0
    corrupt: tuple[str, ...] = ()
    """Messages of shard reports that could not be read (each fails its shard: CorruptReport)."""
    last_sample: Mapping[int, float] = field(default_factory=dict)
    """Running shards' last progress (last sample, else report start; epoch seconds) by index."""
    notes: tuple[str, ...] = ()
    """The samples' notes, in shard order (the first becomes the stage's message)."""
    shard_errors: tuple[str, ...] = ()
    """`shard N: why` of failed shards, from their reports (the stage's own words: the first leads a
    failed stage's message, before what the Job says)."""
    produced_by: Mapping[str, int] = field(default_factory=dict)
    """How many samples each backend, model or method made, summed over the reports."""
    corrupt_shards: int | None = None
    """Shards whose report is unreadable (None: `len(corrupt)`, every one listed)."""
    note_count: int | None = None
    """All notes (None: `len(notes)`, every one listed)."""
    tally: ShardTally | None = None
    """The finished shards' reports as read so far (genfab.operator.progress), kept in the status."""
    complete: bool = True
    """Every finished shard's report is read: a finished Job's stage is finished only then."""
    shard_seconds: float = 0.0
    """Seconds its shard processes ran: the finished shards read so far and the running ones' last reports."""
    shards: tuple[int, int] | None = None
    """A worker Job's (succeeded, failed) shards, from its workers' records (its Job's indexes are the
    workers'); None where each index is a shard."""
    worker_shards: Mapping[int, int] = field(default_factory=dict)
    """A worker Job's running workers' shards, by worker index (its Pods' index)."""
    waiting: Mapping[int, float] = field(default_factory=dict)
    """A streaming stage's running workers that wait for committed input, by worker index: since when
    (epoch seconds, their records'). Not stuck: released once they waited past the stage's bound."""
    busy_workers: frozenset[int] | None = None
    """A worker Job's workers whose records name a shard they run (None: each index is a shard). A deleted
    worker Pod lost work only if it held one: one that waited for input (released by the operator), sat
    between shards or had not started is no stall."""
    finished: indexes.Ranges = ()
    """Shards that ended (done, or failed for good) as the Job's status says, or, for a worker Job, whose
    final reports are read: what a stage streaming from this one may take (genfab.operator.streams)."""

    @property
    def unreadable(self) -> int:
        return len(self.corrupt) if self.corrupt_shards is None else self.corrupt_shards


@dataclass(frozen=True)
class Observed:
    """Everything the controller saw for one resource (all read from caches)."""

    jobs: Sequence[Job] = ()
    pods: Mapping[str, Sequence[Pod]] = field(default_factory=dict)
    """Pods by Job name."""
    lost: Mapping[str, Sequence[LostPod]] = field(default_factory=dict)
    """Pods deleted before they finished, by Job name."""
    progress: Mapping[str, Progress] = field(default_factory=dict)
    """Shard-report counts by stage name (current config hash only)."""
    awaiting: Mapping[str, Awaiting] = field(default_factory=dict)
    """Finished gated stages whose samples still wait for a person's choice, by stage name."""
    refs: Mapping[str, RefState] = field(default_factory=dict)
    """Resources whose output the plan reads (`Kind/name`) that are not usable yet, or failed."""
    inventories: Sequence[Job] = ()
    """The resource's inventory Jobs (one-Pod listings of a stage's samples, `build_inventory_job`)."""
    refused_pods: Mapping[str, str] = field(default_factory=dict)
    """Job name -> the API server's words refusing its Pods (its newest FailedCreate Event), for Jobs that
    have had no Pod (genfab.operator.pod_refusals)."""


@dataclass
class Decision:
    start: list[str] = field(default_factory=list)
    """Stages to start now (list samples, create ConfigMap + Job)."""
    delete: list[str] = field(default_factory=list)
    """Jobs to delete: stale config hashes, deselected stages, expired start deadlines."""
    delete_groups: list[str] = field(default_factory=list)
    """Deleted gang Jobs, whose headless Service and NetworkPolicy (same names) go with them."""
    suspend: list[tuple[str, bool]] = field(default_factory=list)
    """Jobs whose `spec.suspend` must change."""
    observations: list[StageObservation] = field(default_factory=list)
    stall: Stall | None = None
    stop_pods: list[tuple[str, str, str]] = field(default_factory=list)
    """(job, pod, why) of Pods past their progress deadline: deleting one frees its GPUs, and the Job
    counts the failure against the shard's retries."""
    gates: dict[str, str] = field(default_factory=dict)
    """Condition type of every manual gate in the plan -> the message while it holds stages back,
    "" once nothing waits."""
    stream_starts: dict[str, StreamStart] = field(default_factory=dict)
    """Stages of `start` that take their upstream's shards as they finish (genfab.operator.streams)."""
    streams: list[StreamInput] = field(default_factory=list)
    """Running streaming stages: the shards whose input is committed, the workers to raise their Job to."""
    hosting: dict[str, list[str]] = field(default_factory=dict)
    """Stages of `start` whose Job is a shared worker: the members it hosts (genfab.operator.hosting)."""
    hosted_starts: dict[str, str] = field(default_factory=dict)
    """Stages of `start` that a running shared worker Job hosts: its name (they get no Job of their own)."""
    stop_hosted: list[tuple[str, str]] = field(default_factory=list)
    """Hosted stages (name, config hash) that will not run, or not under that config: their upstream
    failed, or their spec changed. The shared Job's workers stop waiting for them, or taking their shards."""


def _job_key(job: Job) -> tuple[str, str]:
    labels = job.get("metadata", {}).get("labels", {})
    return labels.get(LABEL_STAGE, ""), labels.get(LABEL_HASH, "")


def _from_job(stage: PlannedStage, view: JobView, progress: Progress, prev: StageStatus | None,
              stall: Stall | None, expired: bool, deadline_s: int, suspend: bool) -> StageObservation:
    state: ExecState
    reason: str | None
    message: str | None
    if expired:
        state, reason = "finished", "DeadlineExceeded"
        message = (f"no Pod of job {view.name} started within {deadline_s}s of being unsuspended"
                   + (f" (last: {stall.reason}: {stall.message})" if stall else ""))
    elif view.finished and progress.complete:
        state = "finished"
        reason = view.failed_reason if view.failed else None
        message = f"job {view.name}: {view.failed_message or view.failed_reason}" if view.failed else None
        if view.failed and progress.shard_errors:
            message = f"{progress.shard_errors[0]} ({message})"
        if view.failed and view.no_progress:  # the retries ran out on Pods stopped for no progress
            message = f"{message}; last stopped: {view.no_progress}"
            reason = "NoProgress" if view.failed_reason == "FailedIndexes" else reason
    elif view.finished:  # every shard ended, not every report is read yet (a large stage: a few reconciles)
        state, reason = "running", None
        read = progress.tally.indexes if progress.tally is not None else ""
        message = f"job {view.name} finished; reading its shards' reports (read: {read or 'none yet'})"
    elif view.suspended and view.queue and not suspend:
        state, reason = "running", "Queued"  # Kueue admits it when its queue has quota
        message = f"job {view.name} is waiting for Kueue admission in queue {view.queue}"
    else:
        state = "suspended" if view.suspended else "running"
        reason, message = (stall.reason, stall.message) if stall else (None, None)
    done_indexes, failed_indexes = progress.shards or (view.succeeded_indexes, view.failed_indexes)
    shards_failed = view.shards if expired else failed_indexes
    if view.failed and not shards_failed:
        shards_failed = max(1, view.shards - done_indexes)  # e.g. the Job's own deadline
    shards_succeeded = done_indexes
    unknown = view.shards - done_indexes - failed_indexes
    if state == "finished" and view.complete and not view.failed and unknown > 0:
        # Complete, but not every index is named done: the Job ran without Indexed mode (a server or a
        # webhook that dropped `completionMode`), so no shard is known to have made its samples.
        shards_failed += unknown
        reason, message = INDEXES_UNKNOWN, (
            f"job {view.name} completed, but its status names {done_indexes} of its {view.shards} "
            "indexes done (status.completedIndexes): the cluster did not run it as an Indexed Job")
    if state == "finished" and view.workers and failed_indexes and not view.failed:
        # a worker Job completes although its workers gave shards up: what Kubernetes says of a Job of
        # one Pod per shard whose indexes failed
        reason = "FailedIndexes"
        message = (f"{progress.shard_errors[0]} (" if progress.shard_errors else "(") + (
            f"{failed_indexes} of {view.shards} shards of job {view.name} failed)")
    if progress.unreadable and state == "finished":  # a shard whose report is unreadable did not deliver
        shards_succeeded = max(0, shards_succeeded - progress.unreadable)
        shards_failed = min(view.shards, shards_failed + progress.unreadable)
        reason, message = "CorruptReport", f"{progress.unreadable} shard report(s) unreadable: {progress.corrupt[0]}"
    message = message or notes_message(progress.notes, progress.note_count)
    succeeded, failed = progress.succeeded, progress.failed
    if prev is not None and not (succeeded or failed):
        succeeded, failed = prev.samples.succeeded, prev.samples.failed
    return StageObservation(
        name=stage.name, config_hash=stage.config_hash, output_uri=stage.output_uri, state=state,
        samples_total=view.samples, samples_succeeded=succeeded, samples_failed=failed,
        samples_filtered=filtered_count(progress.tally or (prev.tally if prev is not None else None)),
        shards_total=view.shards, shards_succeeded=shards_succeeded, shards_failed=shards_failed,
        shards_active=0 if expired else view.active, shards_ready=0 if expired else view.ready,
        start_time=view.start_time or (prev.start_time if prev else None),
        completion_time=view.completion_time or (prev.completion_time if prev else None),
        job_name=view.name, reason=reason, message=message,
        produced_by=progress.produced_by or (
            prev.produced_by if prev is not None and prev.config_hash == stage.config_hash else None),
        tally=progress.tally,
        gpu_seconds=_used(gpu_seconds(progress.shard_seconds, stage.resources.gpus) if progress.shard_seconds else None,
                          prev.gpu_seconds if prev is not None and prev.config_hash == stage.config_hash else None),
    )


def _used(now: float | None, before: float | None) -> float | None:
    """GPU-seconds used so far never go down: a running shard that just finished leaves the running reports
    before its final report is read (the read budget may defer it), and the metrics count only increases."""
    return max(now, before) if now is not None and before is not None else now if now is not None else before


def _from_status(stage: PlannedStage, prev: StageStatus) -> StageObservation:
    """A stage that finished earlier and whose Job is gone (TTL, deadline, operator restart)."""
    return StageObservation(
        name=stage.name, config_hash=stage.config_hash, output_uri=stage.output_uri, state="finished",
        samples_total=prev.samples.total, samples_succeeded=prev.samples.succeeded,
        samples_failed=prev.samples.failed, samples_filtered=filtered_count(prev.tally),
        shards_total=prev.shards.total,
        shards_succeeded=prev.shards.succeeded, shards_failed=prev.shards.failed,
        start_time=prev.start_time, completion_time=prev.completion_time, job_name=prev.job_name,
        reason=prev.reason, message=prev.message, produced_by=prev.produced_by, tally=prev.tally,
        gpu_seconds=prev.gpu_seconds,
    )


def decide(plan: Plan, spec: CommonSpec, observed: Observed, previous: ResourceStatus | None, now: datetime,
           idle_release_seconds: float = IDLE_RELEASE_SECONDS) -> Decision:
    d = Decision()
    start_deadline_s = spec.start_deadline_seconds
    wanted = {(s.name, s.short_hash) for s in plan.stages if s.run}
    known = {(s.name, s.short_hash) for s in plan.stages}
    current: dict[str, Job] = {}
    hosted: set[str] = set()
    """Stages whose current Job is another stage's shared worker Job."""
    gangs = {s.name for s in plan.stages if s.gang}
    for job in observed.jobs:
        key = _job_key(job)
        name = job.get("metadata", {}).get("name", "")
        view = job_view(job)
        if key in wanted:
            current[key[0]] = job
            for member, entry in hosted_on(job).items():
                if (member, entry.config_hash[:10]) in wanted:
                    current[member] = job
                    hosted.add(member)
        elif key not in known or not view.finished:
            d.delete.append(name)
            if key[0] in gangs:
                d.delete_groups.append(name)
    for job in observed.inventories:  # listing for a stage no longer run, or for an older config: stopped
        if _job_key(job) not in wanted:
            d.delete.append(job.get("metadata", {}).get("name", ""))
            if _job_key(job) not in known:  # the older config's ConfigMap it mounted goes too
                d.delete.extend(config_maps_of(job))
    prev_stages = {s.name: s for s in (previous.stages if previous else [])}
    phases: dict[str, str] = {}
    by_name: dict[str, StageObservation] = {}
    for stage in plan.stages:
        prev = prev_stages.get(stage.name)
        prev = prev if prev is not None and prev.config_hash == stage.config_hash else None
        stage_job = current.get(stage.name)
        if not stage.run:
            obs = StageObservation(stage.name, stage.config_hash, stage.output_uri, "skipped")
        elif stage_job is not None and stage.name in hosted:
            view = job_view(stage_job, stage.name)
            obs = _from_job(stage, view, observed.progress.get(stage.name, Progress()), prev, None, False,
                            start_deadline_s, spec.suspend)
            if view.streams_from:
                obs = _streaming(d, stage, plan, view, observed.progress.get(stage.name, Progress()), obs,
                                 by_name.get(view.streams_from), observed.progress.get(view.streams_from, Progress()),
                                 phases, spec.continue_on_error, now, idle_release_seconds)
        elif stage_job is not None:
            view = job_view(stage_job)
            pods = observed.pods.get(view.name, ())
            progress = _with_hosted(observed.progress.get(stage.name, Progress()),
                                    [observed.progress[m] for m, _ in view.hosts if m in hosted
                                     and m in observed.progress])
            if not view.finished:
                d.stop_hosted += stale_hosted(stage_job, {s.name: s.short_hash for s in plan.stages if s.run})
            lost = [lp for lp in observed.lost.get(view.name, ())
                    if progress.busy_workers is None or lp.index in progress.busy_workers]
            stall = job_stall(view, pods, lost)
            refused = observed.refused_pods.get(view.name)
            if refused is not None and (stall is None or STALL_ORDER.index(stall.reason) > STALL_ORDER.index(
                    PODS_REFUSED)):
                stall = Stall(PODS_REFUSED, f"job {view.name}: the API server refuses its Pods: {refused}")
            for stuck in stuck_pods(view, pods, progress.last_sample, now, stage.progress_deadline_seconds,
                                    progress.waiting):
                shard = progress.worker_shards.get(stuck.index, stuck.index)
                why = no_progress_message(stage.name, shard, stuck.idle, stage.progress_deadline_seconds,
                                          f"pod {stuck.pod} deleted to free its GPUs, the shard retried per "
                                          "retries")
                d.stop_pods.append((view.name, stuck.pod, why))
                if stall is None or STALL_ORDER.index(stall.reason) > STALL_ORDER.index("NoProgress"):
                    stall = Stall("NoProgress", why)
            if stage.gang:
                survivors, what = group_survivors(view, pods, observed.lost.get(view.name, ()))
                for pod in survivors:
                    d.stop_pods.append((view.name, pod.pod, f"stage {stage.name}: {what}; pod {pod.pod} (node "
                                        f"{pod.index}) stopped, the process group restarts from its latest "
                                        "checkpoint"))
                partial = partially_scheduled(view, pods)
                if partial is not None and (stall is None or STALL_ORDER.index(stall.reason) > STALL_ORDER.index(
                        partial.reason)):
                    stall = partial
            expired = start_deadline_passed(view, pods, now, start_deadline_s, ran=bool(progress.finished))
            obs = _from_job(stage, view, progress, prev, stall, expired,
                            start_deadline_s, spec.suspend)
            if view.streams_from:
                obs = _streaming(d, stage, plan, view, progress, obs, by_name.get(view.streams_from),
                                 observed.progress.get(view.streams_from, Progress()), phases, spec.continue_on_error,
                                 now, idle_release_seconds)
            if expired:
                d.delete.append(view.name)
            if stall is not None and obs.state == "running" and d.stall is None:
                d.stall = stall
            # Kueue suspends queued Jobs and unsuspends them on admission: never unsuspend those.
            kueue_holds = view.queue is not None and view.suspended and not spec.suspend
            if not view.finished and not expired and view.suspended != spec.suspend and not kueue_holds:
                d.suspend.append((view.name, spec.suspend))
        elif prev is not None and prev.phase in TERMINAL_PHASES:
            obs = _from_status(stage, prev)
        else:
            obs = _waiting(plan, stage, phases, spec.continue_on_error, observed.awaiting)
            if obs.state == "blocked" and prev is not None and prev.job_name:  # stopped while it streamed
                obs = replace(_from_status(stage, prev), state="blocked", message=prev.message)
            if obs.state in ("waiting", "pending") and obs.reason is None and stage.streams_from:
                upstream = stage.streams_from[0]
                start = may_start(by_name[upstream], observed.progress.get(upstream, Progress()).finished,
                                  plan.stage(upstream).shard_size, stage.shard_size)
                if start is not None:  # its upstream runs and committed a first shard: it starts on that
                    obs = StageObservation(stage.name, stage.config_hash, stage.output_uri, "pending")
                    d.stream_starts[stage.name] = start
            blocking = [observed.refs[t] for t in stage_refs(stage) if t in observed.refs]
            if obs.state == "pending" and blocking:  # its input is another resource's output, not there yet
                failed = next((r for r in blocking if r.state == "failed"), None)
                obs = (StageObservation(stage.name, stage.config_hash, stage.output_uri, "finished", shards_total=1,
                                        shards_failed=1, reason="ReferenceFailed", message=failed.message)
                       if failed is not None else
                       StageObservation(stage.name, stage.config_hash, stage.output_uri, "waiting",
                                        reason=WAITING_FOR_REFERENCE, message=blocking[0].message))
            if obs.state == "pending":
                d.start.append(stage.name)
                host = stage.shares_worker[0] if stage.shares_worker else ""
                shared = _shared_job(stage, current)
                if shared is not None:
                    d.hosted_starts[stage.name] = shared.name  # its shards go to the shared worker Job
                elif host and host == stage.name:
                    d.hosting[stage.name] = hostable(plan, stage, current, prev_stages)
                elif stage.name in d.hosting.get(host, ()):  # the shared Job starts now: hosted by it next time
                    d.start.remove(stage.name)
                listing = inventory_name(plan.name, stage)
                refused = observed.refused_pods.get(listing)
                if refused is not None and d.stall is None and any(
                        j.get("metadata", {}).get("name") == listing for j in observed.inventories):
                    # its samples are listed by a one-Pod Job first: that Pod refused, nothing will start
                    d.stall = Stall(PODS_REFUSED, f"inventory job {listing}: the API server refuses its Pods: "
                                                  f"{refused}")
        if obs.state == "blocked" and stage_job is None and _shared_job(stage, current) is not None:
            d.stop_hosted.append((stage.name, stage.short_hash))  # it will not start: its workers stop waiting
        phases[stage.name] = phase_of(obs, spec.continue_on_error)
        d.observations.append(obs)
        by_name[stage.name] = obs
        if stage.manual_gate is not None:
            held = observed.awaiting.get(stage.name)
            d.gates[stage.manual_gate.condition] = held.message if held is not None else ""
    if d.stall is None:
        expired_stage = next((o for o in d.observations if o.reason == "DeadlineExceeded"), None)
        if expired_stage is not None:
            d.stall = Stall("DeadlineExceeded", expired_stage.message or "deadline exceeded")
    return d


def _streaming(d: Decision, stage: PlannedStage, plan: Plan, view: JobView, progress: Progress,
               obs: StageObservation,
               upstream: StageObservation | None, up_progress: Progress, phases: Mapping[str, str],
               continue_on_error: bool, now: datetime, idle_release_seconds: float) -> StageObservation:
    """A stage whose Job takes its upstream's shards as they finish: its samples so far are what the
    upstream committed; its workers follow the committed input, and those that waited for it past the
    stage's bound are released (genfab.operator.streams); an upstream that fails stops it
    (`continueOnError` lets it go on with what the upstream committed)."""
    if upstream is None:
        return obs
    obs = replace(obs, samples_total=max(upstream.samples_succeeded, obs.samples_succeeded + obs.samples_failed))
    if view.finished:
        return obs
    if gate(stage, phases, continue_on_error) == "blocked":
        if view.hosted:  # the shared Job goes on with its other stages; its workers stop waiting for this one
            d.stop_hosted.append((stage.name, stage.short_hash))
        else:
            d.delete.append(view.name)  # what it committed stays; its workers stop
        return replace(obs, state="blocked", shards_active=0, shards_ready=0,
                       message=f"stopped: {BLOCKED_MESSAGE.removeprefix('not started: ')}")
    ready = ready_shards(upstream, up_progress.finished, view.shards, plan.stage(upstream.name).shard_size,
                         stage.shard_size)
    done = indexes.count(progress.finished)
    bound = release_after(idle_release_seconds, (progress.tally.model_load_seconds if progress.tally else None))
    idle = idle_past(progress.waiting, now.timestamp(), bound)
    d.streams.append(StreamInput(stage.name, view.name, ready, None if view.hosted else  # the shared Job's own
                                 wanted_parallelism(view.workers, view.parallelism, ready, done, view.shards, idle)))
    return obs


def _shared_job(stage: PlannedStage, current: Mapping[str, Job]) -> JobView | None:
    """The running shared worker Job that may host `stage` under its current config (its group's first
    stage's), or None."""
    host = stage.shares_worker[0] if stage.shares_worker else ""
    if not host or host == stage.name or host not in current:
        return None
    shared = job_view(current[host])
    return shared if (stage.name, stage.short_hash) in shared.hosts and not shared.finished else None


def hostable(plan: Plan, host: PlannedStage, current: Mapping[str, Job],
             previous: Mapping[str, StageStatus]) -> list[str]:
    """The members of `host`'s group its shared worker Job hosts: those that have not started, and have not
    run before under their config (a member that started on its own, or finished, is left to itself)."""
    def fresh(name: str) -> bool:
        prev = previous.get(name)
        ran = prev is not None and prev.config_hash == plan.stage(name).config_hash and (
            prev.job_name is not None or prev.phase in TERMINAL_PHASES)
        return name not in current and not ran
    return [name for name in host.shares_worker if name != host.name and fresh(name)]


def _with_hosted(own: Progress, hosted: Sequence[Progress]) -> Progress:
    """A shared worker Job's progress for what concerns its Pods (no-progress, lost work, release): a
    worker is active while any of its stages' records or running shards say so, and busy while it runs any
    stage's shard (its waiting is said on its own stage's record)."""
    if not hosted:
        return own
    last: dict[int, float] = dict(own.last_sample)
    for other in hosted:
        for worker, at in other.last_sample.items():
            last[worker] = max(at, last.get(worker, at))
    busy = own.busy_workers
    if busy is not None:
        for other in hosted:
            busy = busy | (other.busy_workers or frozenset())
    shards = {**{w: s for other in hosted for w, s in other.worker_shards.items()}, **own.worker_shards}
    return replace(own, last_sample=last, busy_workers=busy, worker_shards=shards)


def _waiting(plan: Plan, stage: PlannedStage, phases: Mapping[str, str], continue_on_error: bool,
             awaiting: Mapping[str, Awaiting]) -> StageObservation:
    verdict = gate(stage, phases, continue_on_error)
    held = held_back(stage, awaiting, plan) if verdict != "blocked" else None
    if held is not None:  # a person has not chosen yet, here or further up: no Job, no Pod
        return StageObservation(stage.name, stage.config_hash, stage.output_uri, "waiting",
                                reason=held.condition, message=f"waiting for a person's choice in stage {held.stage}")
    state: ExecState = {"ready": "pending", "waiting": "waiting", "blocked": "blocked"}[verdict]  # type: ignore[assignment]
    return StageObservation(stage.name, stage.config_hash, stage.output_uri, state,
                            message=BLOCKED_MESSAGE if verdict == "blocked" else None)


def resource_status(decision: Decision, spec: CommonSpec, previous: ResourceStatus | None, generation: int | None,
                    now: str, outputs: dict[str, str], custom: Mapping[str, CustomStageStatus]) -> ResourceStatus:
    status = build_status(decision.observations, continue_on_error=spec.continue_on_error, generation=generation,
                          now=now, previous=previous, suspended=spec.suspend, outputs=outputs, custom=custom)
    conditions = set_condition(status.conditions, "Accepted", True, "Planned",
                               f"{len(decision.observations)} stages planned", now, generation)
    conditions = set_condition(conditions, "InvalidSpec", False, "Valid", "", now, generation)
    stall = decision.stall
    conditions = set_condition(conditions, "Stalled", stall is not None, stall.reason if stall else "Progressing",
                               stall.message if stall else "", now, generation)
    # a person's step: its condition, and the phase AwaitingSelection while samples wait
    return gate_status(status.model_copy(update={"conditions": conditions}), decision.gates, now, generation)


def invalid_status(previous: ResourceStatus | None, message: str, generation: int | None, now: str) -> ResourceStatus:
    """An invalid spec: no Jobs, a clear condition, the previous stage results kept for reference."""
    prev = previous or ResourceStatus()
    conditions = set_condition(list(prev.conditions), "Accepted", False, "InvalidSpec", message[:32768], now,
                               generation)
    conditions = set_condition(conditions, "InvalidSpec", True, "InvalidSpec", message[:32768], now, generation)
    conditions = set_condition(conditions, "Running", False, "InvalidSpec", "", now, generation)
    return prev.model_copy(update={"phase": "Failed", "observed_generation": generation, "conditions": conditions,
                                   "current_stage": None, "progress": None})


def stalled_status(previous: ResourceStatus | None, reason: str, message: str, generation: int | None, now: str
                     ) -> ResourceStatus:
    """Something outside the spec blocks the resource (the namespace lacks an object, storage cannot
    be reached): Stalled with `reason` and `message`, stage results kept. It resolves by itself once
    the cause is gone (every unfinished resource is reconciled again)."""
    prev = previous or ResourceStatus()
    conditions = set_condition(list(prev.conditions), "Accepted", True, "Planned", "", now, generation)
    conditions = set_condition(conditions, "InvalidSpec", False, "Valid", "", now, generation)
    conditions = set_condition(conditions, "Stalled", True, reason, message[:32768], now, generation)
    phase = prev.phase if prev.stages and prev.phase != "Failed" else "Pending"
    return prev.model_copy(update={"phase": phase, "observed_generation": generation, "conditions": conditions})


@dataclass(frozen=True)
class Event:
    type: str
    """Normal or Warning."""
    reason: str
    message: str


def transitions(previous: ResourceStatus | None, new: ResourceStatus) -> list[Event]:
    """Kubernetes Events for what changed between two statuses (phase, stages, Stalled, InvalidSpec)."""
    prev = previous or ResourceStatus(phase="Pending")
    events: list[Event] = []
    prev_stages = {s.name: s for s in prev.stages}
    for s in new.stages:
        before = prev_stages.get(s.name)
        if before is not None and before.phase == s.phase and before.config_hash == s.config_hash:
            continue
        if s.phase in ("Pending", "Waiting", "Skipped") and before is None:
            continue
        kind = "Warning" if s.phase == "Failed" else "Normal"
        detail = f" ({s.samples.succeeded}/{s.samples.total} samples)" if s.samples.total else ""
        why = f": {s.message}" if s.message and s.phase in ("Failed", "Suspended") else ""
        events.append(Event(kind, f"Stage{s.phase}", f"stage {s.name} {s.phase.lower()}{detail}{why}"))
    for type_ in ("Stalled", "InvalidSpec"):
        old, cur = _cond(prev, type_), _cond(new, type_)
        if cur is not None and cur.status == "True" and (old is None or old.status != "True"
                                                          or old.reason != cur.reason):
            events.append(Event("Warning", cur.reason, cur.message or type_))
    if new.phase != prev.phase:
        kind = "Warning" if new.phase == "Failed" else "Normal"
        events.append(Event(kind, new.phase, f"{prev.phase} -> {new.phase}"))
    return events


def _cond(status: ResourceStatus, type_: str) -> Any:
    return next((c for c in status.conditions if c.type == type_), None)


def same_status(a: ResourceStatus | None, b: ResourceStatus) -> bool:
    """Equal for patching purposes (timestamps of unchanged conditions are stable by construction)."""
    return a is not None and a.to_yaml_dict() == b.to_yaml_dict()
