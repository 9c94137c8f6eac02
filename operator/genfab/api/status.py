"""Status models, following the Kubernetes API conventions. Kept small: no per-sample lists."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from genfab.api.base import GenfabModel
from genfab.api.reference_object import EXECUTION_NAME

Phase = Literal["Pending", "Running", "Succeeded", "Failed", "PartiallySucceeded", "Suspended", "AwaitingSelection"]
StagePhase = Literal["Pending", "Waiting", "Running", "Succeeded", "Failed", "PartiallySucceeded",
                     "Suspended", "Skipped"]
ConditionType = Literal["Accepted", "InvalidSpec", "Running", "Suspended", "Stalled", "Succeeded", "Failed"]
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "PartiallySucceeded"})
AWAITING_PHASE = "AwaitingSelection"
"""A run stopped at a person's step (worldexplorer's manual selection): nothing downstream runs until they choose."""
SETTLED_PHASES: frozenset[str] = TERMINAL_PHASES | {AWAITING_PHASE}
"""Phases a watcher stops at: the run ended, or it waits for a person (the operator still polls the gate)."""


class Condition(GenfabModel):
    """A condition, as in `metav1.Condition`."""

    type: str = Field(max_length=316)
    """Accepted, InvalidSpec, Running, Suspended, Stalled, Succeeded or Failed; AwaitingSelection while a
    worldexplorer run waits for a person's choice of scaffold views."""
    status: Literal["True", "False", "Unknown"]
    """Condition status."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """CamelCase reason, e.g. ImagePullBackOff, Unschedulable, PodDeleted, NodeLost, DeadlineExceeded."""
    message: str = Field("", max_length=32768)
    """Human-readable details."""
    last_transition_time: str
    """RFC 3339 time the status last changed."""
    observed_generation: int | None = Field(None, ge=0)
    """The `metadata.generation` this condition was set for."""


class SampleCounts(GenfabModel):
    """Sample counts of a stage."""

    total: int = Field(0, ge=0)
    """Samples the stage has to process (0 until known)."""
    succeeded: int = Field(0, ge=0)
    """Samples committed (with a matching `_SUCCESS.json`)."""
    failed: int = Field(0, ge=0)
    """Samples recorded as failed or dropped, with a reason, in the stage's failure list."""


class ShardCounts(GenfabModel):
    """Shard (Job index) counts of a stage, from the Job status."""

    total: int = Field(0, ge=0)
    """Shards (Job completions)."""
    succeeded: int = Field(0, ge=0)
    """Completed indexes."""
    failed: int = Field(0, ge=0)
    """Failed indexes (retries exhausted or bad input)."""
    active: int = Field(0, ge=0)
    """Running Pods."""
    ready: int = Field(0, ge=0)
    """Ready Pods."""


MAX_TALLY_INDEXES = 131072
"""Characters of a tally's index ranges: a few hundred ranges in practice (shards are read as the Job
finishes them, lowest first), far below this; an Indexed Job's own `completedIndexes` is no shorter."""


class DropTally(GenfabModel):
    """Samples a stage dropped for one reason."""

    count: int = Field(0, ge=0)
    """How many."""
    examples: list[Annotated[str, StringConstraints(max_length=256)]] = Field(default_factory=list, max_length=3)
    """The first few sample ids (the run's `dropped_samples.csv` lists them all)."""


class ShardTally(GenfabModel):
    """What the operator has read of a stage's shard reports. Each finished shard's report is read once,
    when its Job says the index finished, and added here; a reconcile reads only the shards finished since
    the last one (within its storage budget, the rest next time), so its work does not grow with the
    stage's shards, and an operator that restarts goes on from here instead of reading them all again."""

    job_uid: str = Field("", max_length=64)
    """The Job whose shards these are (a new Job of the stage starts a new tally)."""
    indexes: str = Field("", max_length=MAX_TALLY_INDEXES)
    """The shard indexes read, as ranges (`0-999,1004`), in the format of the Job's `completedIndexes`."""
    succeeded: int = Field(0, ge=0)
    """Samples the read shards committed (reused ones included)."""
    failed: int = Field(0, ge=0)
    """Samples the read shards recorded as failed or dropped."""
    reused: int = Field(0, ge=0)
    """Of `succeeded`, samples committed earlier with the same config hash."""
    redone: int = Field(0, ge=0)
    """Samples produced again because their committed outputs failed the reuse check."""
    corrupt: int = Field(0, ge=0)
    """Shards whose report could not be read (each fails its shard: CorruptReport)."""
    corrupt_messages: list[Annotated[str, StringConstraints(max_length=512)]] = Field(default_factory=list,
                                                                                      max_length=8)
    """`shard N: why` of the first unreadable reports."""
    shard_errors: list[Annotated[str, StringConstraints(max_length=512)]] = Field(default_factory=list, max_length=8)
    """`shard N: why` of the first shards that failed as a whole, in their own words."""
    notes: list[Annotated[str, StringConstraints(max_length=512)]] = Field(default_factory=list, max_length=20)
    """The first notes the shards made about their samples (the first becomes the stage's message)."""
    note_count: int = Field(0, ge=0)
    """All notes of the read shards (those past `notes` stay in the shard reports)."""
    produced_by: dict[Annotated[str, StringConstraints(max_length=128)], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=64)
    """Samples each backend, model or method made (past 64 kinds the rarest are summed as one)."""
    dropped: dict[Annotated[str, StringConstraints(max_length=128)], DropTally] = Field(default_factory=dict,
                                                                                         max_length=32)
    """Dropped samples by reason (past 32 reasons the rarest are summed as one)."""
    figures: dict[Annotated[str, StringConstraints(max_length=64)],
                  Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=32)]] = Field(default_factory=dict,
                                                                                             max_length=32)
    """Histograms of the samples' quality figures (`genfab.api.quality`: each figure's bins), by name."""
    figure_spans: dict[Annotated[str, StringConstraints(max_length=64)],
                       Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(default_factory=dict,
                                                                                       max_length=32)
    """Each figure's [least, greatest] value."""
    shard_seconds: float = Field(0.0, ge=0)
    """Seconds the read shards' processes ran, summed (each report's start to its last write, plus a retried
    shard's earlier attempts): times the stage's GPUs per Pod, its GPU-seconds."""
    model_load_seconds: float | None = Field(None, ge=0)
    """The longest model load of a read shard."""
    gpu_peak_bytes: int | None = Field(None, ge=0)
    """The highest peak GPU memory of a read shard."""


class CustomStageStatus(GenfabModel):
    """The custom stage (`spec.customStages`) that makes a stage's outputs instead of genfab's own code."""

    image: str = Field(max_length=512)
    """Its image, as the spec names it (`genfab run` runs its command on the laptop instead)."""
    replaces: bool = False
    """True when it stands in the place of the pipeline's own stage of this name (downstream stages read
    its outputs as that stage's); false for a stage the spec adds."""


class StageStatus(GenfabModel):
    """Observed state of one stage."""

    name: str = Field(max_length=64)
    """Stage name."""
    phase: StagePhase = "Pending"
    """Stage phase."""
    config_hash: str = Field("", max_length=64)
    """Config hash the stage ran (or runs) with."""
    job_name: str | None = Field(None, max_length=253)
    """Name of the stage's Job."""
    samples: SampleCounts = Field(default_factory=SampleCounts)
    """Sample counts."""
    shards: ShardCounts = Field(default_factory=ShardCounts)
    """Shard counts."""
    start_time: str | None = None
    """When the stage started (RFC 3339)."""
    completion_time: str | None = None
    """When the stage finished (RFC 3339)."""
    output_uri: str | None = Field(None, max_length=2048)
    """Where the stage writes."""
    reason: str | None = Field(None, max_length=128)
    """Machine-readable cause of the last notable event (ImagePullBackOff, DeadlineExceeded, ...)."""
    message: str | None = Field(None, max_length=4096)
    """Last notable event of the stage."""
    custom: CustomStageStatus | None = None
    """Set when a custom stage, not genfab, makes this stage's outputs."""
    produced_by: dict[Annotated[str, StringConstraints(max_length=128)], Annotated[int, Field(ge=0)]] | None = Field(
        None, max_length=16)
    """How many of the stage's samples each backend, model or method made (`sam2:facebook/sam2.1-hiera-large`,
    `retinex (msrcp)`, `seva`, `flux-walk`), from its shards' reports, most first; past 16 kinds the
    rarest are summed as `other (N kinds)`. Each sample's metadata says which one made it."""
    tally: ShardTally | None = None
    """What the operator has read of the stage's shard reports (counts, drops, notes), shard by shard as
    they finish: the summary's row of the stage is made from it."""
    gpu_seconds: float | None = Field(None, ge=0)
    """GPU-seconds the stage's shards used so far: each shard process's running time (every attempt's)
    times the stage's GPUs per Pod, finished shards and running ones (as last reported). Pod start-up and
    image pulls are not in it. None for a stage on CPUs."""
    eta_seconds: float | None = Field(None, ge=0)
    """While it runs: seconds until its last sample at the rate measured so far (samples done since the
    stage started); None before the first sample and once it ended."""


class TrainingStatus(GenfabModel):
    """A training stage's state (TuningRun), as its node 0 last reported it."""

    trainer: str | None = Field(None, max_length=200)
    """Which trainer makes the checkpoints now: `genfab` (the built-in trainer) or the lab's, named by the
    code it runs (`difix3d:train_difix.py@<commit>`, or `custom:<script>` where its image recorded no
    source). `train_config.json` keeps every start's trainer (`history`)."""
    step: int = Field(0, ge=0)
    """Optimizer steps done."""
    max_steps: int = Field(0, ge=0)
    """Steps the run trains for."""
    loss: float | None = None
    """Total loss of the last step (mean over the ranks)."""
    images_per_second: float | None = Field(None, ge=0)
    """Training images per second over all GPUs."""
    eta_seconds: float | None = Field(None, ge=0)
    """Seconds left at the current rate."""
    checkpoints: list[str] = Field(default_factory=list, max_length=256)
    """Checkpoints written (`model_<step>.pkl`), oldest first (the last 256)."""
    latest_checkpoint: str | None = Field(None, max_length=2048)
    """URI of the newest checkpoint (what a SceneJob's `refinement.tuningRunRef` takes by default)."""
    best_checkpoint: str | None = Field(None, max_length=2048)
    """URI of the checkpoint with the highest held-out PSNR among those still kept and evaluated at their
    own step (the latest on a tie)."""
    best_step: int | None = Field(None, ge=0)
    """Its step."""
    best_psnr: float | None = None
    """Its held-out PSNR (dB): DiFix's output against the target on the test split."""


ChildKind = Literal["Job", "ConfigMap", "Service", "NetworkPolicy"]
MAX_CHILDREN = 256


class ChildRef(GenfabModel):
    """An object the operator created for the resource, by its UID: the proof it made it. The operator
    adopts, changes or deletes only objects whose UID it recorded here (tenants cannot write status),
    never one found by name, labels or owner references alone."""

    kind: ChildKind
    """Job, ConfigMap, Service or NetworkPolicy."""
    name: str = Field(max_length=253)
    """Its name in the resource's namespace."""
    uid: str = Field(max_length=64)
    """Its `metadata.uid`, as the API server returned it on creation."""


class ResourceStatus(GenfabModel):
    """Observed state of a genfab resource."""

    phase: Phase = "Pending"
    """Pending, Running, Succeeded, Failed, PartiallySucceeded, Suspended, or AwaitingSelection while a person's
    choice holds stages back (worldexplorer's manual selection)."""
    observed_generation: int | None = Field(None, ge=0)
    """The `metadata.generation` this status reflects (Argo CD waits for it)."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Conditions, one per type."""
    current_stage: str | None = Field(None, max_length=64)
    """The stage running now (the STAGE column)."""
    progress: str | None = Field(None, max_length=64)
    """`succeeded/total` samples of the current stage (the PROGRESS column)."""
    stages: list[StageStatus] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Per-stage status, in plan order."""
    outputs: dict[str, str] = Field(default_factory=dict, max_length=64)
    """Named output URIs (e.g. `dataset`, `summary`)."""
    execution: str | None = Field(None, max_length=128, pattern=EXECUTION_NAME)
    """The execution folder chosen for the resource (reference-object's `executionMode` new or last),
    once, when it first ran: every later reconcile writes to it."""
    start_time: str | None = None
    """When the first stage started."""
    completion_time: str | None = None
    """When the resource reached a terminal phase."""
    training: TrainingStatus | None = None
    """TuningRun: the training's step, loss, throughput, ETA and checkpoints."""
    children: list[ChildRef] | None = Field(
        None,
        max_length=MAX_CHILDREN,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["kind", "name"]},
    )
    """The objects the operator created for this resource (Jobs, their ConfigMaps, a process group's
    Service and NetworkPolicy), by UID: what it may change or delete."""
