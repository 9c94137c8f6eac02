"""The planner's output: an ordered stage DAG that both executors (operator, local runner) consume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resources:
    """Effective compute resources and placement of a stage's Pods."""

    gpus: int
    cpu: str
    memory: str
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    priority_class_name: str | None = None


@dataclass(frozen=True)
class PlannedStage:
    name: str
    family: str
    """Image family (cv, scene, segment, diffusion) or `custom`."""
    description: str
    upstream: tuple[str, ...]
    config: dict[str, Any]
    """The stage's typed parameters (camelCase), mounted into the Pod as JSON. Hashed."""
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
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def short_hash(self) -> str:
        return self.config_hash[:10]


@dataclass(frozen=True)
class Plan:
    kind: str
    name: str
    namespace: str | None
    pipeline: str
    output_uri: str
    stages: tuple[PlannedStage, ...]
    external_refs: tuple[str, ...] = ()
    """Other resources this plan waits for, as `Kind/name` (TuningRun checkpoints, DatasetJob exports)."""

    def stage(self, name: str) -> PlannedStage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
