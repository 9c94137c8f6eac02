"""Pure status aggregation: what each stage's executor observed -> `ResourceStatus`.

The operator observes Jobs and shard reports, the local runner observes subprocesses and the same
shard reports; both describe each stage as a `StageObservation` and get the same status back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel

from genfab.api.reasons import FILTERED
from genfab.api.status import (
    Condition,
    CustomStageStatus,
    ResourceStatus,
    SampleCounts,
    ShardCounts,
    ShardTally,
    StagePhase,
    StageStatus,
)
from genfab.status.cost import eta_seconds, rfc3339


def _max_length(model: type[BaseModel], name: str) -> int:
    """The `max_length` the API declares for a field (one declaration: the status models)."""
    return next(int(m.max_length) for m in model.model_fields[name].metadata if getattr(m, "max_length", None))


MAX_STAGE_MESSAGE = _max_length(StageStatus, "message")
MAX_STAGE_REASON = _max_length(StageStatus, "reason")
MAX_CONDITION_MESSAGE = _max_length(Condition, "message")


def fit(text: str | None, limit: int) -> str | None:
    """`text` cut to the API's limit (a long URI in an error must never make the status unwritable)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def notes_message(notes: list[str] | tuple[str, ...], total: int | None = None) -> str | None:
    """A stage's status message from its samples' notes: the first, and how many more there are
    (`total`: all of them, where only the first few are at hand)."""
    if not notes:
        return None
    total = len(notes) if total is None else total
    more = f" (+{total - 1} more in the shard reports)" if total > 1 else ""
    return (fit(notes[0], MAX_STAGE_MESSAGE - len(more)) or "") + more


def produced_by(shards: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """How many of a stage's samples each backend or model made, summed over its shards' counts,
    most first (ties by name): a fallback shows in the run's summary, not only in logs."""
    counts: Counter[str] = Counter()
    for shard in shards:
        counts.update(shard)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


MAX_PRODUCERS = 16
"""Entries of a stage's `producedBy` in its status: the most frequent, the rest summed as one."""
MAX_PRODUCER_NAME = 128


def bounded_produced_by(counts: Mapping[str, int], limit: int = MAX_PRODUCERS) -> dict[str, int]:
    """`counts` (most first) fit for a status: names cut to `MAX_PRODUCER_NAME`, at most `limit`
    entries, the least frequent beyond `limit - 1` summed as `other (N kinds)`."""
    cut: Counter[str] = Counter()
    for name, n in counts.items():
        cut[name if len(name) <= MAX_PRODUCER_NAME else name[: MAX_PRODUCER_NAME - 3] + "..."] += n
    ordered = list(produced_by([cut]).items())
    if len(ordered) <= limit:
        return dict(ordered)
    rest = ordered[limit - 1:]
    return {**dict(ordered[: limit - 1]), f"other ({len(rest)} kinds)": sum(n for _, n in rest)}


ExecState = Literal["pending", "waiting", "running", "finished", "suspended", "skipped", "blocked"]


@dataclass(frozen=True)
class StageObservation:
    name: str
    config_hash: str
    output_uri: str
    state: ExecState
    """pending: not started; waiting: upstream not done; running; finished (every shard ended);
    suspended; skipped (not selected, outputs reused); blocked (an upstream failed)."""
    samples_total: int = 0
    samples_succeeded: int = 0
    samples_failed: int = 0
    samples_filtered: int = 0
    """Of `samples_failed`, those the spec's own filter dropped (`reasons.FILTERED`): never an error."""
    shards_total: int = 0
    shards_succeeded: int = 0
    shards_failed: int = 0
    shards_active: int = 0
    shards_ready: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    job_name: str | None = None
    reason: str | None = None
    message: str | None = None
    produced_by: Mapping[str, int] | None = None
    """How many samples each backend, model or method made (shard reports' counts); None: unknown."""
    tally: ShardTally | None = None
    """What the operator has read of the stage's shard reports (genfab.operator.progress)."""
    gpu_seconds: float | None = None
    """GPU-seconds its shards used so far (genfab.status.cost); None on CPUs or before any report."""


def failed_at_start(name: str, config_hash: str, output_uri: str, message: str, now: str,
                    reason: str | None = None) -> StageObservation:
    """A stage that ended before any shard ran (its samples could not be listed, its Job's name is
    taken, this machine cannot run it): one failed shard, so it fails like any other stage."""
    return StageObservation(name, config_hash, output_uri, "finished", shards_total=1, shards_failed=1,
                            start_time=now, completion_time=now, reason=reason, message=message)


def stage_phase(obs: StageObservation, continue_on_error: bool) -> StagePhase:
    if obs.state == "skipped":
        return "Skipped"
    if obs.state in ("pending", "blocked"):
        return "Pending"
    if obs.state == "waiting":
        return "Waiting"
    if obs.state == "suspended":
        return "Suspended"
    if obs.state == "running":
        return "Running"
    errors = obs.samples_failed - obs.samples_filtered
    if obs.shards_failed or (errors and not continue_on_error):
        return "Failed"
    if obs.samples_failed:
        return "PartiallySucceeded"
    return "Succeeded"


def filtered_count(tally: ShardTally | None) -> int:
    """Samples a tally's shards dropped by the spec's own filter (`reasons.FILTERED`)."""
    return sum(d.count for reason, d in (tally.dropped if tally else {}).items() if reason in FILTERED)


def set_condition(conditions: list[Condition], type_: str, status: bool, reason: str, message: str, now: str,
                  generation: int | None) -> list[Condition]:
    """Upsert one condition; `lastTransitionTime` changes only when the status flips."""
    value: Literal["True", "False"] = "True" if status else "False"
    message = fit(message, MAX_CONDITION_MESSAGE) or ""
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type == type_:
            found = True
            when = c.last_transition_time if c.status == value else now
            c = Condition(type=type_, status=value, reason=reason, message=message, last_transition_time=when,
                          observed_generation=generation)
        out.append(c)
    if not found:
        out.append(Condition(type=type_, status=value, reason=reason, message=message, last_transition_time=now,
                             observed_generation=generation))
    return out


def _stage_status(obs: StageObservation, phase: StagePhase, custom: CustomStageStatus | None, now: str
                  ) -> StageStatus:
    eta = (eta_seconds(obs.samples_total, obs.samples_succeeded + obs.samples_failed, rfc3339(obs.start_time),
                       rfc3339(now)) if phase == "Running" else None)
    return StageStatus(
        name=obs.name, phase=phase, config_hash=obs.config_hash, job_name=obs.job_name,
        samples=SampleCounts(total=obs.samples_total, succeeded=obs.samples_succeeded, failed=obs.samples_failed),
        shards=ShardCounts(total=obs.shards_total, succeeded=obs.shards_succeeded, failed=obs.shards_failed,
                           active=obs.shards_active, ready=obs.shards_ready),
        start_time=obs.start_time, completion_time=obs.completion_time, output_uri=obs.output_uri,
        reason=fit(obs.reason, MAX_STAGE_REASON), message=fit(obs.message, MAX_STAGE_MESSAGE), custom=custom,
        produced_by=bounded_produced_by(obs.produced_by) if obs.produced_by else None, tally=obs.tally,
        gpu_seconds=obs.gpu_seconds, eta_seconds=eta,
    )


def build_status(observations: list[StageObservation], *, continue_on_error: bool, generation: int | None,
                 now: str, previous: ResourceStatus | None = None, suspended: bool = False,
                 outputs: dict[str, str] | None = None,
                 custom: Mapping[str, CustomStageStatus] | None = None,
                 interrupted: str | None = None) -> ResourceStatus:
    """The resource status for these stage observations (in plan order); `custom` names the custom
    stage that makes a stage's outputs, by stage name (`PlannedStage.custom`). `interrupted` (why the
    run was stopped before its end) ends it Failed: each stage still running Failed with reason
    `Interrupted`, the `Running` condition False and the `Failed` condition saying why."""
    prev = previous or ResourceStatus()
    phases = [stage_phase(o, continue_on_error) for o in observations]
    if interrupted:
        observations = [replace(o, reason="Interrupted", message=interrupted) if p == "Running" else o
                        for o, p in zip(observations, phases, strict=True)]
        phases = ["Failed" if p == "Running" else p for p in phases]
    stages = [_stage_status(o, p, (custom or {}).get(o.name), now)
              for o, p in zip(observations, phases, strict=True)]
    active = [s for s in stages if s.phase not in ("Skipped",)]
    if any(p == "Failed" for p in phases):
        phase = "Failed"
    elif (active and all(s.phase in ("Succeeded", "PartiallySucceeded") for s in active)) or not active:
        phase = "PartiallySucceeded" if any(p == "PartiallySucceeded" for p in phases) else "Succeeded"
    elif suspended:
        phase = "Suspended"
    elif any(p in ("Running", "Succeeded", "PartiallySucceeded") for p in phases):
        phase = "Running"
    else:
        phase = "Pending"
    if interrupted and phase not in ("Succeeded", "PartiallySucceeded"):
        phase = "Failed"
    current = next((s for s in stages if s.phase == "Running"), None) or next(
        (s for s in reversed(stages) if s.phase not in ("Pending", "Waiting", "Skipped")), None)
    progress = f"{current.samples.succeeded}/{current.samples.total}" if current is not None else None

    terminal = phase in ("Succeeded", "PartiallySucceeded", "Failed")
    failed_stage = next((s for s in stages if s.phase == "Failed"), None)
    conditions = list(prev.conditions)
    conditions = set_condition(conditions, "Running", phase == "Running", "StageRunning" if phase == "Running"
                               else phase, f"stage {current.name}: {progress}" if current and phase == "Running"
                               else "", now, generation)
    conditions = set_condition(conditions, "Suspended", phase == "Suspended", "Suspended" if suspended
                               else "NotSuspended", "", now, generation)
    if terminal:
        ok = phase != "Failed"
        conditions = set_condition(conditions, "Succeeded", ok, phase, _summary(stages), now, generation)
        why = failed_stage.message or f"stage {failed_stage.name} failed" if failed_stage else ""
        reason = "Interrupted" if interrupted else "StageFailed"
        conditions = set_condition(conditions, "Failed", not ok, reason if not ok else phase, interrupted or why,
                                   now, generation)
    starts = [s.start_time for s in stages if s.start_time]
    ends = [s.completion_time for s in stages if s.completion_time]
    return ResourceStatus(
        phase=phase, observed_generation=generation, conditions=conditions,
        current_stage=current.name if current else None, progress=progress, stages=stages,
        outputs=dict(outputs or prev.outputs), start_time=prev.start_time or (min(starts) if starts else None),
        completion_time=(prev.completion_time or (max(ends) if ends else now)) if terminal else None,
    )


def _summary(stages: list[StageStatus]) -> str:
    return "; ".join(f"{s.name} {s.samples.succeeded}/{s.samples.total}" + (
        f" ({s.samples.failed} failed)" if s.samples.failed else "") for s in stages if s.phase != "Skipped")
