"""The planner's output: an ordered stage DAG that both executors (operator, local runner) consume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from genfab.api.families import CUSTOM_FAMILY
from genfab.api.pipeline import ManualGate
from genfab.api.status import CustomStageStatus
from genfab.contract import ResourceRef, Selection, StageConfig, StageRef, StreamSource

ENDPOINT = "endpoint:"
"""The identity prefix of a model an endpoint serves (its name is its identity)."""
UNREAD = "unread"
"""A model's identity when the executor did not read the model location (`plan(models=None)`, or a
location it cannot read: a PVC or host cache seen from the operator)."""


@dataclass(frozen=True, slots=True)
class Resources:
    """Effective compute resources and placement of a stage's Pods."""

    gpus: int
    cpu: str
    memory: str
    ephemeral_storage: str | None = None
    """None: the operator's default (the chart's `stages.ephemeralStorage`)."""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    priority_class_name: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedStage:
    name: str
    family: str
    """Image family (cv, scene, segment, diffusion) or `custom`."""
    description: str
    upstream: tuple[str, ...]
    config: dict[str, Any]
    """The stage's settings (its declared settings model, dumped camelCase), mounted into the Pod as
    JSON, where the stage validates them back into the model. Hashed."""
    options: dict[str, Any]
    """Run modes that do not change what a finished sample contains (retry-only, ...). Not hashed."""
    resources: Resources
    input_uris: tuple[str, ...]
    output_uri: str
    output_layout: str
    samples: int | None
    """Samples this stage processes; None until the input has been listed (see `Inventory`)."""
    shard_size: int
    shards: int | None
    config_hash: str
    """sha256 over `hash_parts` (genfab.planner.hashing): what a committed sample's marker records."""
    run: bool
    """False when the stage is not selected (`onlyStages`, `startFromStep`): its outputs are reused."""
    fixed_shards: int | None = None
    """Shard count that does not follow the sample count (singleton stages, one index per node)."""
    selection: dict[str, Any] = field(default_factory=dict)
    """For a stage that reads the job input: which files are samples. `ids` (only these, file names
    without extension), `limit` (the first N in key order), `suffixes` (default: images). Not hashed:
    it picks samples, it does not change what a committed sample contains."""
    image: str | None = None
    """Image override; None means the operator's default image for `family`."""
    implementation: str | None = None
    """The built-in implementation (`module:Class`); None for custom stages and for stages genfab
    does not implement yet (those cannot run unless a custom stage replaces them)."""
    unsupported: str = ""
    """Why the built-in implementation cannot run this stage's settings (`StageDecl.refuses`); such a
    stage has no implementation, as if genfab had none."""
    manual_gate: ManualGate | None = None
    """The person's step this stage's samples wait for before downstream stages start
    (`StageDecl.manual_gate`); derived from the hashed settings, so not hashed itself."""
    gang: bool = False
    """The shards run as one process group (`StageDecl.gang`)."""
    replaces: bool = False
    """A custom stage that takes the place of the pipeline's own stage of this name."""
    cuda: bool = False
    """Its built-in implementation needs a CUDA GPU (`StageDecl.cuda`); False for a custom stage."""
    streams_from: tuple[str, ...] = ()
    """The upstream stage whose shards it takes as they finish (`genfab.planner.streaming`): its shard j
    holds what the upstream's shard j committed. Empty: it starts once its upstream stages finished."""
    shares_worker: tuple[str, ...] = ()
    """The stages (this one among them) whose shards one warm worker runs, loading their common models once
    (`genfab.planner.sharing`); empty: a worker of its own. On a cluster the first one's Job is the shared
    worker, with the holder's image and resources (genfab.operator.hosting)."""
    shared_holder: str = ""
    """The member of `shares_worker` that loads every shared model itself (`SharedWorker.holder`)."""

    @property
    def shard_capacity(self) -> int | None:
        """The most samples one shard of this stage holds (a shard's report claiming more is refused);
        None when that is not known (a fixed shard count over samples not listed yet)."""
        if self.fixed_shards is None:
            return self.shard_size
        if self.samples is None:
            return None
        return max(1, -(-self.samples // max(1, self.fixed_shards)))

    @property
    def warm(self) -> bool:
        """Its processes can run shard after shard with the models they loaded once (warm workers): a
        built-in stage runs genfab's runtime, which can; a custom stage's own command and a gang stage's
        nodes (one process group) run one shard each."""
        return self.family != CUSTOM_FAMILY and not self.gang

    def workers(self, shards: int, parallelism: int | None) -> int:
        """Its Pods in a cluster: one per shard while `parallelism` lets every shard run at once (each Pod's
        index is its shard), else `parallelism` warm workers that take shard after shard (each Pod's index
        is its worker's)."""
        if not self.warm or parallelism is None or parallelism >= shards:
            return shards
        return parallelism
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    batch_size: int | None = None
    """Samples per model call (`stages.<name>.batchSize`); None: the stage's default. Not hashed."""
    offload: str | None = None
    """Model offload policy (`stages.<name>.offload`); None: the stage's default. Not hashed."""
    progress_deadline_seconds: int = 1800
    """Seconds a running shard may go without committing a sample (`progressDeadlineSeconds`). Not hashed."""
    active_deadline_seconds: int | None = None
    """The stage Job's `activeDeadlineSeconds` (`stages.<name>.activeDeadlineSeconds`). Not hashed."""
    hash_parts: dict[str, str] = field(default_factory=dict)
    """The digests the config hash is made of (`config`, `upstream`, `models`, `rerun`), so a plan can
    say which of them changed."""
    models: dict[str, str] = field(default_factory=dict)
    """Model id -> identity of each model the stage loads (`unread` where the executor could not read
    the model location; an endpoint's model is its name). Hashed."""
    required_models: tuple[str, ...] = ()
    """The models of `models` genfab's own implementation cannot run without under these settings
    (not the endpoint's, not a fallback's): a run without them is refused before it starts. Not hashed."""
    rerun: bool = False
    """A `spec.rerun` token applies (the stage is listed, or consumes a listed stage's outputs): the token
    is part of its hash."""
    base_hash: str = ""
    """The config hash without the token: samples committed under it, or under any token on it, are
    reused when no token applies (so a token re-runs once, and removing it re-runs nothing)."""

    @property
    def short_hash(self) -> str:
        return self.config_hash[:10]

    @property
    def custom(self) -> CustomStageStatus | None:
        """What the status and the run summary say made this stage's outputs, when a custom stage does."""
        if self.family != CUSTOM_FAMILY:
            return None
        return CustomStageStatus(image=self.image or "", replaces=self.replaces)


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str
    name: str
    namespace: str | None
    pipeline: str
    output_uri: str
    stages: tuple[PlannedStage, ...]
    external_refs: tuple[str, ...] = ()
    """Other resources this plan waits for, as `Kind/name` (TuningRun checkpoints, DatasetJob exports)."""
    execution: str | None = None
    """The execution folder the executor chose for it (`DraftRequest.execution`), kept in status."""

    def stage(self, name: str) -> PlannedStage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def custom_stages(self) -> dict[str, CustomStageStatus]:
        """The stages a custom stage makes, with what the status says of it (by stage name)."""
        return {s.name: record for s in self.stages if (record := s.custom) is not None}

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def downstream(self, name: str) -> tuple[str, ...]:
        """Every stage that (transitively) consumes `name`, in plan order."""
        found: set[str] = {name}
        for s in self.stages:
            if found.intersection(s.upstream):
                found.add(s.name)
        return tuple(s.name for s in self.stages if s.name in found and s.name != name)

    def ancestors(self, name: str) -> set[str]:
        """Every stage `name` consumes, directly or transitively."""
        seen: set[str] = set()
        todo = list(self.stage(name).upstream)
        while todo:
            up = todo.pop()
            if up not in seen:
                seen.add(up)
                todo.extend(self.stage(up).upstream)
        return seen

    def model_ids(self) -> list[str]:
        """Every model of the location the plan's stages load (endpoint models are named, not read)."""
        return sorted({m for s in self.stages for m, identity in s.models.items()
                       if not identity.startswith(ENDPOINT)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_config(plan: Plan, stage: PlannedStage, upstream_shards: int | None = None) -> StageConfig:
    """The contract document mounted into every Pod of `stage` (identical for all its shards);
    `upstream_shards`: the executor runs it on its upstream's shards as they finish (`streams_from`), and
    that stage has this many."""
    ancestors = plan.ancestors(stage.name)
    stream = None
    if upstream_shards is not None and stage.streams_from:
        up = plan.stage(stage.streams_from[0])
        stream = StreamSource(stage=up.name, config_hash=up.config_hash, shards=upstream_shards,
                              shard_size=up.shard_size)
    return StageConfig(
        resource=ResourceRef(kind=plan.kind, name=plan.name, namespace=plan.namespace),
        pipeline=plan.pipeline, run_uri=plan.output_uri, stage=stage.name, family=stage.family,
        config_hash=stage.config_hash, base_hash=stage.base_hash or None, input_uris=stage.input_uris,
        output_uri=stage.output_uri,
        output_layout=stage.output_layout, shard_size=stage.shard_size, batch_size=stage.batch_size,
        offload=stage.offload,
        upstream=tuple(_ref(plan.stage(n)) for n in stage.upstream),
        # Later stages also read earlier outputs (recombine reads segment's background; organize
        # gathers every stage's files).
        ancestors=tuple(_ref(a) for a in plan.stages if a.name in ancestors),
        selection=Selection(**stage.selection), config=stage.config, options=stage.options,
        stream=stream,
    )


def _ref(stage: PlannedStage) -> StageRef:
    return StageRef(name=stage.name, config_hash=stage.config_hash, output_uri=stage.output_uri)
