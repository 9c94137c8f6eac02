"""`StageConfig`: the typed, versioned document every shard process gets (mounted as JSON).

The planner builds it from a plan, the operator mounts it as a ConfigMap, the local runner writes
it to a file, and the stage runtime reads it back with `StageConfig.from_json`. Field names are
camelCase in JSON (the pydantic alias is the only name mapping).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from genfab.contract.names import (
    CONTRACT_VERSION,
    DEFAULT_SUFFIXES,
    ENV_INDEX,
    ENV_INPUT_URIS,
    ENV_OUTPUT_URI,
    ENV_RUN_URI,
    ENV_SHARDS,
    ENV_STAGE,
    shard_bounds,
)
from genfab.contract.paths import SampleIdStr

Offload = Literal["none", "model", "group", "sequential"]
"""How a model stage's diffusers pipelines share GPU memory (`stages.<name>.offload`; the API documents
each value)."""


class ContractError(ValueError):
    """A stage config that does not follow the contract (wrong version, missing or bad fields)."""


class ContractModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


class ResourceRef(ContractModel):
    kind: str
    name: str
    namespace: str | None = None


class StageRef(ContractModel):
    """Another stage of the plan: where its outputs are and under which config hash."""

    name: str
    config_hash: str
    output_uri: str


class StreamSource(ContractModel):
    """The upstream stage a streaming stage takes its shards from as they finish (genfab.contract.streams):
    its shard count when this stage started, and its shard size."""

    stage: str
    config_hash: str
    shards: int
    shard_size: int


class Selection(ContractModel):
    """For a stage that reads the job input: which files are samples. Not hashed: it picks samples,
    it does not change what a committed sample contains."""

    suffixes: tuple[str, ...] = DEFAULT_SUFFIXES
    ids: tuple[SampleIdStr, ...] | None = None
    """Only these (file names without extension)."""
    limit: int | None = Field(None, ge=0)
    """The first N in key order."""
    indices: tuple[int, ...] | None = None
    """A curated set (a SceneJob's manifest or inline samples): only these sample indices."""
    variants: tuple[str, ...] | None = None
    """A curated set: only these variants (photorealistic, stylized, default)."""
    within: dict[str, tuple[SampleIdStr, ...]] | None = None
    """A stage whose units come from several named inputs (the difix export's sources and their
    scenes): per input name, only these units; an input left out gives all of its units."""


class StageConfig(ContractModel):
    """What one stage's Pods are told (identical for all its shards)."""

    contract: Literal[1] = CONTRACT_VERSION
    resource: ResourceRef
    pipeline: str
    run_uri: str
    """The resource's output root (progress reports, summaries)."""
    stage: str
    family: str
    config_hash: str
    base_hash: str | None = None
    """The config hash without the re-run token (`spec.rerun`): equal to `config_hash` when no token
    applies, and then a sample committed under a token on this base is reused (genfab.storage.markers)."""
    input_uris: tuple[str, ...] = ()
    output_uri: str
    output_layout: str = ""
    """Where outputs go, relative to the run root (`{sample}/gaussians/`, `data/stage_2/{id}_albedo.png`)."""
    shard_size: int = 1
    batch_size: int | None = None
    """Samples per model call (the stage's own default when None)."""
    offload: Offload | None = None
    """How a model stage's diffusers pipelines share GPU memory (the stage's default when None)."""
    upstream: tuple[StageRef, ...] = ()
    ancestors: tuple[StageRef, ...] = ()
    """Every stage upstream of this one, transitively (later stages read earlier outputs too)."""
    selection: Selection = Selection()
    config: dict[str, Any] = Field(default_factory=dict)
    """The stage's settings (camelCase); validated by the stage against its declared settings model."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Run modes that do not change what a finished sample contains (retry-only, ...)."""
    stream: StreamSource | None = None
    """The upstream stage whose shards this one takes as they finish: a shard's samples are what the
    upstream shards it maps onto committed (their final reports; genfab.contract.streams). None: the
    samples are the stage's whole sorted list, sliced per shard."""

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "stage config") -> StageConfig:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(document)"
            if first["loc"] == ("contract",):
                raise ContractError(f"{source}: contract version {first.get('input')!r} is not {CONTRACT_VERSION}; "
                                    "the operator and the stage image disagree") from None
            raise ContractError(f"{source}: {where}: {first['msg']}"
                                + (f" ({exc.error_count() - 1} more)" if exc.error_count() > 1 else "")) from None

    def shard_env(self, index: int, shards: int) -> dict[str, str]:
        """Environment of one shard's process (the Pod spec sets the same names)."""
        shard_bounds(0, index, shards)  # validates index/shards
        return {
            ENV_INDEX: str(index),
            ENV_SHARDS: str(shards),
            ENV_STAGE: self.stage,
            ENV_INPUT_URIS: " ".join(self.input_uris),
            ENV_OUTPUT_URI: self.output_uri,
            ENV_RUN_URI: self.run_uri,
        }

    def known_stages(self) -> tuple[StageRef, ...]:
        """Upstream stages first, then the other ancestors."""
        names = {u.name for u in self.upstream}
        return (*self.upstream, *(a for a in self.ancestors if a.name not in names))


def layout_dir(layout: str) -> str:
    """The one fixed directory a layout writes into (`data/stage_1/{id}...` -> `data/stage_1`).

    Layouts that list several places (`difix/data.json, meta/`) or start with a per-sample part
    (`{sample}/...`) write under the output root itself.
    """
    depth, top_level_comma = 0, False
    for ch in layout:
        depth += (ch == "{") - (ch == "}")
        top_level_comma |= ch == "," and depth == 0
    if top_level_comma:
        return ""
    head = layout.split("{", 1)[0]
    return head.rsplit("/", 1)[0] if "/" in head else ""


def sample_subdir(layout: str) -> str:
    """The folder a per-sample layout writes inside each sample's folder
    (`{sample}/scenes/gaussians/` -> `scenes/gaussians/`; `{sample}/` -> ``)."""
    parts = layout.split("/")
    while parts and "{" in parts[0]:
        parts.pop(0)
    rest = "/".join(parts).strip("/")
    return f"{rest}/" if rest else ""
