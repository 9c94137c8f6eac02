"""The rules both executors apply, in one pure module: the operator's reconcile decision and the
local runner call these, so a plan runs the same way in a cluster and on a laptop.

- upstream gating (when a stage may start, when it is blocked; `continueOnError`);
- the stage command and the shard environment (genfab's contract names always win);
- the model-location environment from `spec.models` and the endpoint environment from `spec.storage`;
- the status `outputs` and timestamps;
- which planned stages cannot run in this installation;
- when a running shard has gone too long without progress (`progressDeadlineSeconds`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

from genfab.api.common import ModelSource, Storage
from genfab.api.families import CUSTOM_FAMILY
from genfab.contract import CONFIG_PATH, SUMMARY_KEY, StageConfig
from genfab.contract.names import (
    ENV_CONFIG,
    ENV_GROUP_ID,
    ENV_MODELS,
    ENV_NNODES,
    ENV_NPROC_PER_NODE,
    ENV_PROGRESS_DEADLINE,
    ENV_RDZV_HOST,
    ENV_RDZV_PORT,
    ENV_S3_ADDRESSING_STYLE,
    ENV_S3_ENDPOINT,
    ENV_S3_REGION,
    ENV_SHARD_RETRIES,
    ENV_WAITING_FILE,
    ENV_WORKERS,
    WAITING_FILE,
)
from genfab.planner import Plan, PlannedStage
from genfab.status import StageObservation, stage_phase

Gate = Literal["ready", "waiting", "blocked"]
OK_PHASES = ("Succeeded", "PartiallySucceeded")
BLOCKED_MESSAGE = "not started: an upstream stage failed"
MODELS_MOUNT = "/models"
LAB_TRAINER = "genfab.stages.tuning.lab"
"""The wrapper a custom stage replacing a training stage runs under (see its module)."""
"""Where a stage Pod sees a model PVC or hub cache (read-only)."""


class CannotRun(ValueError):
    """The plan cannot run with this executor (a stage without implementation, a PVC locally, ...)."""


def now_rfc3339(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def phase_of(obs: StageObservation, continue_on_error: bool) -> str:
    """A stage's phase for gating: the status phase, or `Blocked` for a stage that never started; a
    stage whose only drops are the spec's filter at work (`samples_filtered`) passes as Succeeded."""
    if obs.state == "blocked":
        return "Blocked"
    phase = stage_phase(obs, continue_on_error)
    return "Succeeded" if phase == "PartiallySucceeded" and obs.samples_failed == obs.samples_filtered else phase


def gate(stage: PlannedStage, phases: Mapping[str, str], continue_on_error: bool) -> Gate:
    """May `stage` start, given its upstream stages' phases? Skipped (not selected) upstream stages
    count as done: their committed outputs are reused. A failed or blocked upstream blocks it, and
    so does a partial success unless `continueOnError`."""
    ups = [phases[u] for u in stage.upstream]
    if any(p in ("Failed", "Blocked") or (p == "PartiallySucceeded" and not continue_on_error) for p in ups):
        return "blocked"
    if all(p in (*OK_PHASES, "Skipped") for p in ups):
        return "ready"
    return "waiting"


def stage_command(stage: PlannedStage, interpreter: str = "python") -> tuple[list[str] | None, list[str]]:
    """(command, args) of a stage's process. Built-in stages run `python -m genfab.stages <stage>`;
    a custom stage runs its `command` (None: its image's entry point), where a first word `python`
    or `python3` means `interpreter`; one that replaces a training stage runs under genfab's
    launch wrapper (`LAB_TRAINER`)."""
    if stage.family != CUSTOM_FAMILY:
        return [interpreter, "-m", "genfab.stages", stage.name], []
    command = list(stage.command) or None
    if command is not None and command[0] in ("python", "python3"):
        command[0] = interpreter
    if stage.gang and command is not None:  # a lab's trainer: genfab's launch, staging and sync around it
        return [interpreter, "-m", LAB_TRAINER, "--", *command, *stage.args], []
    return command, list(stage.args)


def models_env(models: ModelSource | None, *, mounted: bool) -> dict[str, str]:
    """`GENFAB_MODELS` for `spec.models`: an object-storage prefix as is; a PVC or hub cache at
    `MODELS_MOUNT` in a Pod (`mounted`), or the hub cache's own path on this machine."""
    if models is None:
        return {}
    if models.uri is not None:
        return {ENV_MODELS: models.uri}
    if mounted:
        return {ENV_MODELS: MODELS_MOUNT}
    if models.persistent_volume_claim is not None:
        raise CannotRun("spec.models.persistentVolumeClaim cannot be mounted by the local runner; "
                        "use spec.models.uri or spec.models.hubCache")
    return {ENV_MODELS: str(models.hub_cache)}


def storage_env(storage: Storage | None) -> dict[str, str]:
    """How a shard reaches `spec.storage` (endpoint, region, addressing), as values. Credentials are
    not here: the operator passes Secret references, the local runner the secret's values."""
    if storage is None:
        return {}
    env = {ENV_S3_ENDPOINT: storage.endpoint} if storage.endpoint else {}
    return {**env, ENV_S3_REGION: storage.region, ENV_S3_ADDRESSING_STYLE: storage.addressing_style}


def shard_env(cfg: StageConfig, stage: PlannedStage, shards: int, index: int | None,
              models: Mapping[str, str], config_path: str = CONFIG_PATH, **extra: str) -> dict[str, str]:
    """The environment of a shard process: a custom stage's own `env` first, then the contract's
    names, which always win. `index` None leaves `JOB_COMPLETION_INDEX` to Kubernetes."""
    contract = cfg.shard_env(index if index is not None else 0, shards)
    if index is None:
        contract.pop("JOB_COMPLETION_INDEX")
    return {**dict(stage.env), **contract, ENV_CONFIG: config_path, **models, **extra}


def worker_env(stage: PlannedStage, shards: int, workers: int, retries: int, streaming: bool = False
               ) -> dict[str, str]:
    """What a worker Job's Pods are told beyond the shard contract (nothing for a Job of one Pod per shard;
    a streaming stage's Job is always one of workers: its shards are taken as their input is committed)."""
    if workers >= shards and not streaming:
        return {}
    return {ENV_WORKERS: str(workers), ENV_SHARD_RETRIES: str(retries),
            ENV_PROGRESS_DEADLINE: str(stage.progress_deadline_seconds),
            **({ENV_WAITING_FILE: WAITING_FILE} if streaming else {})}


def gang_env(stage: PlannedStage, shards: int, host: str, port: int, group: str) -> dict[str, str]:
    """The process-group shape of a gang stage's node (`StageDecl.gang`): node count, one worker per
    GPU (one on a CPU-only node), node 0's address and the group's identity; the node rank is the
    completion index."""
    if not stage.gang:
        return {}
    return {ENV_NNODES: str(shards), ENV_NPROC_PER_NODE: str(max(1, stage.resources.gpus)),
            ENV_RDZV_HOST: host, ENV_RDZV_PORT: str(port), ENV_GROUP_ID: group}


def idle_seconds(started: float, last_sample: float | None, now: float) -> float:
    """Seconds a running shard has made no progress: since its last committed or failed sample, or
    since this attempt started, whichever is later (a report left by an earlier attempt of the same
    shard never counts against a new one). Epoch seconds."""
    return now - max(started, last_sample or 0.0)


def no_progress_message(stage: str, index: int, idle: float, deadline: int, action: str) -> str:
    return (f"shard {index} of stage {stage} committed no sample for {idle:.0f} s (progressDeadlineSeconds "
            f"{deadline}): {action}")


def status_outputs(plan: Plan) -> dict[str, str]:
    """The `status.outputs` both executors report."""
    return {"root": plan.output_uri, "summary": f"{plan.output_uri}/{SUMMARY_KEY}"}


def unimplemented(stages: Iterable[PlannedStage]) -> list[str]:
    """Stages that would run but have no implementation here (not built in yet, or not for these
    settings, and no custom stage)."""
    return [s.name for s in stages if s.run and s.family != CUSTOM_FAMILY and s.implementation is None]


def cuda_message(pipeline: str, needing: list[str], others: list[str]) -> str:
    """The one line for stages that need a CUDA GPU on a machine without one."""
    leave_out = (f", or run only the others with onlyStages: [{', '.join(others)}] (--only {','.join(others)})"
                 if others else "")
    return (f"stage{'s' if len(needing) > 1 else ''} {', '.join(needing)} of pipeline {pipeline} "
            f"need{'' if len(needing) > 1 else 's'} a CUDA GPU (gsplat) and this machine has none: run it on a "
            f"GPU machine{leave_out}")


def behind_gate(plan: Plan, stage: PlannedStage) -> bool:
    """A stage upstream of `stage` (directly or not) runs and may stop the run for a person's choice."""
    upstream = plan.ancestors(stage.name)
    return any(s.run and s.manual_gate is not None for s in plan.stages if s.name in upstream)


def cuda_refusal(plan: Plan, cuda: bool) -> str | None:
    """Why this machine cannot run the plan's selected stages, said before anything starts: stages
    that need a CUDA GPU on a machine without one. None when it can, or when a manual gate stands
    before each of them: the run may stop there first (exit 3), and such a stage is refused when it
    would start (`cuda_message`), without retries."""
    needing = [s.name for s in plan.stages if s.run and s.cuda and not behind_gate(plan, s)]
    if cuda or not needing:
        return None
    return cuda_message(plan.pipeline, needing, [s.name for s in plan.stages if s.run and not s.cuda])


def unsupported_settings(stages: Iterable[PlannedStage]) -> list[str]:
    """Why built-in stages that would run cannot run their settings (`StageDecl.refuses`)."""
    return [f"stage {s.name}: {s.unsupported}" for s in stages if s.run and s.unsupported]
