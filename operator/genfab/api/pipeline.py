"""Pipeline units: each pipeline is declared once, and everything else derives from it.

A `Pipeline` holds the resource kind it belongs to, the value that selects it (`type: relighting`,
`pipeline: vistadream`, `trainer: difix`), its spec block, its stages (`StageDecl`: name, image
family, implementation, default resources, shard size, output layout, settings model, upstream)
and `drafts`, the pure function from a spec to one `Draft` per stage. From the registered
pipelines come the kinds' spec models (the selector's allowed values, the block fields and their
CEL rules, so the CRDs), the planner's DAGs, the stage registry, the image families in use and
what `genfab plan` says runs today.

Built-in pipelines are the modules of `genfab.api.pipelines` that define `PIPELINE`. Other packages
add theirs through the entry-point group `genfab.pipelines` (a module with `PIPELINE`), and
development code through `GENFAB_PIPELINES` (comma-separated module names). A pipeline module must
not import `genfab.api.resources`: the kinds are built from the registry.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model
from pydantic.alias_generators import to_camel

from genfab.api.base import GenfabModel, Rule, at_most_one
from genfab.api.common import stage_rules
from genfab.api.families import FAMILIES
from genfab.api.fidelity import LabComparison
from genfab.api.quality import Figure
from genfab.contract.names import ENV_PIPELINES

ENTRY_POINT_GROUP = "genfab.pipelines"
BUILTIN_PACKAGE = "genfab.api.pipelines"


@dataclass(frozen=True)
class ManualGate:
    """A person's step between a stage and the next: every sample the stage committed must hold the
    `required` files (under its folder of the stage's output) before any downstream stage starts.
    Until then the resource carries condition `condition` listing the samples and where to choose
    from, and no downstream Pod exists; the operator polls storage and goes on by itself, the local
    runner stops (exit 3) and goes on when run again."""

    condition: str
    """Condition type set while samples wait (e.g. `AwaitingSelection`)."""
    required: tuple[str, ...]
    """Files relative to a sample's stage folder (e.g. `final/001.png`)."""
    candidates: str
    """Folder relative to a sample's stage folder a person chooses from."""
    how: str
    """One line: how to satisfy the gate; `{output}` and `{file}` stand for the run's output and the
    resource's file (filled where known: the operator knows no file)."""


@dataclass(frozen=True)
class StageDecl:
    """One stage of a pipeline, in DAG order."""

    name: str
    _: KW_ONLY
    family: str
    """Image family (see genfab.api.families)."""
    description: str
    settings: type[BaseModel]
    """What the stage receives: the validated model of its mounted config (torch-free)."""
    implementation: str | None = None
    """`module:Class` (a `Stage` class) or `module:NAME` (a `SampleStage`) of the built-in implementation;
    None: not implemented in genfab yet (a custom stage with the same name supplies it)."""
    gpus: int = 1
    cpu: str = "4"
    memory: str = "32Gi"
    shard_size: int = 8
    upstream: tuple[str, ...] = ()
    """Stages this one consumes; empty for the first stage (reads the job input)."""
    output: str = ""
    """Output layout relative to the resource's output root (`{sample}` is a sample's folder)."""
    singleton: bool = False
    """The stage works on the whole sample set at once (one shard, whatever the shard size)."""
    barrier: bool = False
    """The stage needs every sample of its upstream stage at once (a folder that must hold exactly its
    current samples, a file summing up the whole set): it starts only after its upstream finished, where
    it could otherwise take the upstream's shards as they finish (`PlannedStage.streams_from`)."""
    refuses: Callable[[Any], str | None] | None = None
    """Given the stage's settings, why the built-in implementation cannot run them (one line saying
    what to set), or None: such a stage needs a custom stage of its name, like an unimplemented one."""
    model_fit: Callable[[Any, Mapping[str, str]], str | None] | None = None
    """Given the stage's settings and the diffusers pipeline class (`model_index.json`'s `_class_name`)
    of each model the executor could read in the model location, why its models do not fit each other
    (one line naming the fixes), or None: such a run is refused before any stage starts
    (`sequencing.preflight.fit_refusal`); where the location cannot be read, the stage says it at its
    start."""
    tenant_code: Callable[[Any], tuple[str, str] | None] | None = None
    """Given the stage's settings, (the field, what runs) when they make this built-in stage run code
    the resource chose rather than genfab's images' (Zero123++'s pipeline.py from the model location),
    or None. Such a stage is the tenant's code like a custom stage: with
    `stages.customStageCredentials: false` it gets no storage credentials and is refused where it would
    need them (`operator.policy.tenant_image_errors`, `operator.builders`)."""
    manual_gate: Callable[[Any], ManualGate | None] | None = None
    """Given the stage's settings, the person's step its samples wait for before downstream stages
    run (worldexplorer's manual selection), or None."""
    units: str | None = None
    """`module:function` listing the stage's units when they are not the input's files or its
    upstream's samples: a first stage whose job input is not a folder of files (the difix export:
    one unit per source scene), or a stage that fans out (reference-object's scenes: perspective x
    prompt x iteration; `genfab.inventory.upstream_succeeded` gives what upstream committed).
    `function(cfg, open_fn) -> list[SampleRef]`, imported when the units are resolved (both
    executors and the stage Pods), so it must not import torch. None: the input's files (or a
    curated set) are the units of a first stage, the samples every upstream committed of others."""
    extra: str | None = None
    """The `genfab[...]` extra that installs what the implementation imports (default: its family's,
    which names the image that holds the same)."""
    cuda: bool = False
    """The built-in implementation cannot run without a CUDA GPU (gsplat's kernels): `genfab run`
    refuses, before anything starts, a run that selects it on a machine without one."""
    gang: bool = False
    """The shards are the nodes of one process group (distributed training): they start together,
    and when one fails or is lost the whole group restarts (from its latest checkpoint), one retry
    for the group. The operator gives the group a headless Service and node 0's address."""
    revision: int = 0
    """Raised when the built-in implementation's outputs change for the same settings (a fix to what
    it writes): part of the stage's config hash when above 0, so committed samples made before the
    fix are made again (and, through the upstream hashes, everything downstream), never reused."""


def cpu_stage(name: str, description: str, settings: type[BaseModel], upstream: tuple[str, ...], output: str,
              implementation: str | None = None, shard: int = 64, singleton: bool = False,
              revision: int = 0, barrier: bool = False) -> StageDecl:
    """A CPU stage of the `cv` family with CPU-sized defaults."""
    return StageDecl(name, family="cv", description=description, settings=settings, implementation=implementation,
                     gpus=0, cpu="2", memory="4Gi", shard_size=shard, upstream=upstream, output=output,
                     singleton=singleton, revision=revision, barrier=barrier)


@dataclass
class Draft:
    """A stage as one spec wants it: its settings, whether and how it runs."""

    name: str
    settings: BaseModel
    """An instance of the stage's `StageDecl.settings` model."""
    samples: int | None
    enabled: bool = True
    run: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    extra_upstream: tuple[str, ...] = ()
    input_uris: tuple[str, ...] = ()
    """Inputs beyond upstream outputs (job inputs, checkpoints, prompt files)."""
    shards: int | None = None
    """Fixed shard count (distributed training: one index per node), overriding shard sizes."""
    gpus: int | None = None
    """GPUs per Pod decided by the spec itself (e.g. `gpusPerNode`); explicit resources still win."""
    shard_size: int | None = None
    """Samples per shard decided by the spec itself (3DGS `scenesPerPod`); explicit sizes still win."""
    selection: dict[str, Any] = field(default_factory=dict)
    """Which input files are samples (`ids`, `limit`); see `genfab.contract.Selection`."""
    image: str | None = None
    """The stage's image when the spec names one for it (worldexplorer's SEVA and VGGT images);
    `stages.<name>.image` still wins, the family's image is the default."""


@dataclass(frozen=True)
class PipelineDrafts:
    output_uri: str
    drafts: list[Draft]
    external_refs: tuple[str, ...] = ()
    """Other resources the plan waits for, as `Kind/name`."""


INPUT = "input"
"""Inventory key of the job input's sample count (resolved by listing storage at the edge)."""


@dataclass(frozen=True)
class DraftRequest:
    """What `Pipeline.drafts` gets."""

    name: str
    """The resource's name."""
    spec: Any
    """The kind's spec."""
    block: Any
    """The pipeline's block (its defaults when the spec leaves it out), or None."""
    inventory: Mapping[str, int]
    """Sample counts only a listing can know (`{INPUT: n}`); empty when nothing was listed."""
    references: Mapping[str, str] = field(default_factory=dict)
    """What other resources resolved to, where the plan depends on it (`TuningRun/name` -> the URI of
    the checkpoint a SceneJob's refinement uses); empty when the executor has not resolved them."""
    execution: str | None = None
    """The execution folder the executor chose and keeps (`Pipeline.execution`), or None before it
    has chosen (a plan shown by `genfab plan`: the folder reads `{new}` or `{last}`)."""


Drafts = Callable[[DraftRequest], PipelineDrafts]


@dataclass(frozen=True)
class SharedWorker:
    """Stages of a pipeline that load the same models and may run in one warm worker, which loads each of
    them once (vistadream's outpaint and coarse both load the FLUX fill; depth and coarse the depth
    model). `holder` loads every shared model itself, so the group needs no more GPU memory than the
    holder alone: wherever the holder runs, the group fits. The plan decides (`genfab.planner.sharing`)."""

    stages: tuple[str, ...]
    holder: str
    models: str
    """What the members share, for `genfab plan` (`the FLUX fill (outpaint, coarse) and ...`)."""
    differs: Callable[[Mapping[str, Mapping[str, Any]]], str | None] | None = None
    """Given each member's stage config, why their models are not the same ones (nothing to share: they
    run apart), or None."""


@dataclass(frozen=True)
class Pipeline:
    name: str
    """Unique over all kinds (`relighting`, `tuning-difix`); the stage config's `pipeline`."""
    kind: str
    """SceneJob, DatasetJob or TuningRun."""
    value: str
    """The selector value that picks this pipeline (`relighting`; `difix` for a TuningRun)."""
    description: str
    stages: tuple[StageDecl, ...]
    drafts: Drafts
    block: str | None = None
    """The spec field holding the pipeline's settings (its Python name; camelCase in YAML through the
    alias generator); None: the kind's own fields suffice."""
    block_model: type[GenfabModel] | None = None
    figures: tuple[Figure, ...] = ()
    """The quality figures its samples carry (`genfab.api.quality`), which its `quality` bounds may name."""
    position: int = 100
    """Order among the kind's pipelines (the selector's allowed values, the docs)."""
    lab: LabComparison | None = None
    """The pipeline next to the lab's code (`genfab.api.fidelity`): the page's table, and the notes on
    defaults that differ from the lab's that `genfab validate`, `plan` and `run` print."""
    shared_workers: tuple[SharedWorker, ...] = ()
    """Stages that may share one warm worker (their models loaded once for all of them)."""
    execution: Callable[[Any], str | None] | None = None
    """For a pipeline whose output folder the executor chooses once (reference-object's
    `executionMode` new/last): the block -> the choice to make (`new`, `last`), or None when the
    spec names the folder. Executors keep the choice (status `execution`) and plan with it."""

    @property
    def block_alias(self) -> str | None:
        """The block's name in YAML, CEL and messages."""
        return to_camel(self.block) if self.block else None

    def stage(self, name: str) -> StageDecl:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}")

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    @property
    def unimplemented(self) -> tuple[str, ...]:
        """Stages genfab has no implementation for yet (they run only as custom stages)."""
        return tuple(s.name for s in self.stages if s.implementation is None)

    @property
    def runs_today(self) -> bool:
        return not self.unimplemented

    def block_of(self, spec: Any) -> Any:
        """The spec's block for this pipeline, or the block's defaults when it is left out."""
        if self.block is None or self.block_model is None:
            return None
        value = getattr(spec, self.block)
        return value if value is not None else self.block_model()

    def check(self) -> None:
        """Declaration errors a pipeline author should see at once."""
        names = self.stage_names
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline {self.name!r} declares a stage twice: {names}")
        for s in self.stages:
            if s.family not in FAMILIES:
                raise ValueError(f"pipeline {self.name!r} stage {s.name!r}: unknown family {s.family!r} "
                                 f"(families: {', '.join(FAMILIES)})")
            unknown = [u for u in s.upstream if u not in names[:names.index(s.name)]]
            if unknown:
                raise ValueError(f"pipeline {self.name!r} stage {s.name!r}: upstream {unknown} is not an earlier stage")
            if s.implementation is not None and ":" not in s.implementation:
                raise ValueError(f"pipeline {self.name!r} stage {s.name!r}: implementation "
                                 f"{s.implementation!r} must be `module:Class` or `module:NAME`")
        if (self.block is None) != (self.block_model is None):
            raise ValueError(f"pipeline {self.name!r}: `block` and `block_model` go together")


# -- the registry
_REGISTRY: dict[str, Pipeline] = {}
_LOADED = False


def register(pipeline: Pipeline) -> None:
    pipeline.check()
    known = _REGISTRY.get(pipeline.name)
    if known is not None and known is not pipeline:
        raise ValueError(f"two pipelines are named {pipeline.name!r}")
    clash = next((p for p in _REGISTRY.values() if p.kind == pipeline.kind and p.value == pipeline.value
                  and p is not pipeline), None)
    if clash is not None:
        raise ValueError(f"pipelines {clash.name!r} and {pipeline.name!r} are both {pipeline.kind} {pipeline.value!r}")
    _REGISTRY[pipeline.name] = pipeline


def _register_module(name: str) -> None:
    module = importlib.import_module(name)
    found = getattr(module, "PIPELINE", None)
    if not isinstance(found, Pipeline):
        raise ValueError(f"pipeline module {name!r} defines no `PIPELINE`")
    register(found)


def _modules() -> Iterator[str]:
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield f"{BUILTIN_PACKAGE}.{info.name}"
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        yield ep.value.partition(":")[0]
    yield from (m.strip() for m in os.environ.get(ENV_PIPELINES, "").split(",") if m.strip())


def pipelines() -> dict[str, Pipeline]:
    """Every registered pipeline by name (built-ins, entry points, `GENFAB_PIPELINES`)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in _modules():
            _register_module(module)
    return dict(_REGISTRY)


def of_kind(kind: str) -> list[Pipeline]:
    return sorted((p for p in pipelines().values() if p.kind == kind), key=lambda p: (p.position, p.name))


def selected(kind: str, spec: Any) -> Pipeline:
    """The pipeline a spec of `kind` selects."""
    value = getattr(spec, KIND_SHAPES[kind].selector)
    return next(p for p in of_kind(kind) if p.value == value)


def used_families() -> tuple[str, ...]:
    """Image families at least one registered stage runs in, in the families table's order."""
    used = {s.family for p in pipelines().values() for s in p.stages}
    return tuple(f for f in FAMILIES if f in used)


# -- kinds: their spec models are built from the registered pipelines
@dataclass(frozen=True)
class KindShape:
    """How a kind selects its pipeline."""

    selector: str
    """The spec field whose value picks the pipeline."""
    doc: str
    blocks_required: bool
    """True: the selected pipeline's block must be set (DatasetJob); False: it is optional and its
    defaults apply (SceneJob)."""
    default: str | None = None
    """Selector default (TuningRun's `trainer`)."""

    @property
    def selector_alias(self) -> str:
        return to_camel(self.selector)


KIND_SHAPES: dict[str, KindShape] = {
    "SceneJob": KindShape("pipeline", "The scene pipeline.", blocks_required=False),
    "DatasetJob": KindShape("type", "The dataset pipeline; exactly its settings block must be set.",
                            blocks_required=True),
    "TuningRun": KindShape("trainer", "The trainer.", blocks_required=False, default="difix"),
}


def runs_note(p: Pipeline) -> str:
    """What the API docs, the CRD and `genfab plan` say about whether a pipeline runs today."""
    if p.runs_today:
        return "runs today"
    return (f"not implemented yet: stage(s) {', '.join(p.unimplemented)} run only as customStages "
            "of the same name")


def _selector_doc(shape: KindShape, found: list[Pipeline]) -> str:
    return shape.doc + " " + "; ".join(f"`{p.value}`: {p.description} ({runs_note(p)})" for p in found) + "."


def _required_block(selector: str, block: str, value: str) -> Callable[[Any], bool]:
    return lambda m: (getattr(m, selector) == value) == (getattr(m, block) is not None)


def _optional_block(selector: str, block: str, value: str) -> Callable[[Any], bool]:
    return lambda m: getattr(m, selector) == value or getattr(m, block) is None


def _block_rules(shape: KindShape, found: list[Pipeline]) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    attr, selector = shape.selector, shape.selector_alias
    for p in found:
        if p.block is None or p.block_alias is None:
            continue
        block, block_attr, value = p.block_alias, p.block, p.value
        if shape.blocks_required:
            rules.append(Rule(
                f"(self.{selector} == '{value}') == has(self.{block})",
                f"{selector} {value} needs the `{block}` block, and other {selector}s must not set it",
                block, _required_block(attr, block_attr, value)))
        else:
            rules.append(Rule(
                f"self.{selector} == '{value}' || !has(self.{block})",
                f"`{block}` settings need {selector} {value}",
                block, _optional_block(attr, block_attr, value)))
    optional = [p.block_alias for p in found if p.block_alias is not None]
    if not shape.blocks_required and len(optional) > 1:
        rules.append(at_most_one(*optional))
    return tuple(rules)


def kind_spec(kind: str, base: type[GenfabModel]) -> type[GenfabModel]:
    """The spec model of `kind`: `base` plus the selector and one field per pipeline block, with
    the rules that tie them together and check every stage name against the selected pipeline."""
    shape = KIND_SHAPES[kind]
    found = of_kind(kind)
    if not found:
        raise ValueError(f"no pipeline is registered for kind {kind}")
    selector_type: Any = Literal[tuple(p.value for p in found)]
    fields: dict[str, Any] = {
        shape.selector: (selector_type, Field(... if shape.default is None else shape.default,
                                              description=_selector_doc(shape, found))),
    }
    for p in found:
        if p.block is not None and p.block_model is not None:
            doc = f"Settings of {shape.selector_alias} {p.value} ({runs_note(p)}). {p.block_model.__doc__ or ''}"
            fields[p.block] = (p.block_model | None, Field(None, description=doc.strip()))
    model: type[GenfabModel] = create_model(
        base.__name__.removesuffix("Base") + "Spec", __base__=base, __doc__=base.__doc__, **fields)
    model.rules = (*base.rules, *_block_rules(shape, found),
                   *stage_rules(shape.selector, {p.value: list(p.stage_names) for p in found}))
    return model


def tenant_code(pipeline: str, name: str, config: dict[str, Any]) -> tuple[str, str] | None:
    """(the field, what runs) when built-in stage `name` of `pipeline` runs code its resource chose,
    given its planned settings (`StageDecl.tenant_code`); None otherwise."""
    found = pipelines().get(pipeline)
    if found is None or name not in found.stage_names:
        return None
    decl = found.stage(name)
    if decl.tenant_code is None or decl.settings is None:
        return None
    return decl.tenant_code(decl.settings.model_validate(config))
