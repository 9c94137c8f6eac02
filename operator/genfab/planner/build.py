"""`plan()`: a resource (plus what is known about its inputs) -> an ordered stage DAG. Pure.

The resource's pipeline (genfab.api.pipeline) turns its spec into one draft per declared stage;
this module turns the drafts into the DAG: disabled stages rewired around, custom stages added,
resources, shards and config hashes settled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from genfab.api.base import GenfabModel, LoadedModel, hashed_values, model_refs
from genfab.api.common import CommonSpec, CustomStage, StageResources
from genfab.api.families import CUSTOM_FAMILY
from genfab.api.pipeline import Draft, DraftRequest, Pipeline, StageDecl, selected
from genfab.api.resources import Resource
from genfab.contract import layout_dir, shard_count, too_many_shards
from genfab.contract.paths import join_uri
from genfab.planner.hashing import config_hash, hash_parts
from genfab.planner.model import ENDPOINT, UNREAD, Plan, PlannedStage, Resources
from genfab.planner.sharing import with_shared_workers
from genfab.planner.streaming import stream_source

CUSTOM_DEFAULTS = StageDecl("custom", family="cv", description="custom stage", settings=GenfabModel, gpus=1, cpu="4",
                            memory="16Gi", shard_size=8)


def _resources(base: StageDecl, spec: CommonSpec, name: str, custom: CustomStage | None,
               gpus: int | None) -> Resources:
    layers: list[StageResources] = [spec.resources]
    if custom is not None and custom.resources is not None:
        layers.append(custom.resources)
    if name in spec.stages:
        layers.append(spec.stages[name])
    values: dict[str, Any] = {
        "gpus": gpus if gpus is not None else base.gpus, "cpu": base.cpu, "memory": base.memory,
        "ephemeral_storage": None, "node_selector": {}, "tolerations": (), "priority_class_name": None,
    }
    for layer in layers:
        if layer.gpus is not None:
            values["gpus"] = layer.gpus
        if layer.cpu is not None:
            values["cpu"] = layer.cpu
        if layer.memory is not None:
            values["memory"] = layer.memory
        if layer.ephemeral_storage is not None:
            values["ephemeral_storage"] = layer.ephemeral_storage
        if layer.node_selector is not None:
            values["node_selector"] = {**values["node_selector"], **layer.node_selector}
        if layer.tolerations is not None:
            values["tolerations"] = tuple(t.to_yaml_dict() for t in layer.tolerations)
        if layer.priority_class_name is not None:
            values["priority_class_name"] = layer.priority_class_name
    return Resources(**values)


def _shard_size(base: StageDecl, spec: CommonSpec, name: str, custom: CustomStage | None,
                draft: Draft | None) -> int:
    override = spec.stages.get(name)
    if override is not None and override.shard_size is not None:
        return override.shard_size
    if custom is not None and custom.shard_size is not None:
        return custom.shard_size
    if spec.shard_size is not None:
        return spec.shard_size
    if draft is not None and draft.shard_size is not None:
        return draft.shard_size
    return base.shard_size


class PlanError(ValueError):
    """The spec is valid field by field but does not form a DAG."""


def _topological(order: list[str], upstream: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Stable topological order: keeps `order` wherever the dependencies allow."""
    done: list[str] = []
    pending = list(order)
    while pending:
        ready = next((n for n in pending if all(u in done for u in upstream[n])), None)
        if ready is None:
            raise PlanError(f"customStages: `after` forms a cycle among {pending}")
        done.append(ready)
        pending.remove(ready)
    return done


def _checked_drafts(pipeline: Pipeline, drafts: list[Draft]) -> dict[str, Draft]:
    """The pipeline's drafts, one per declared stage in order, each with its declared settings."""
    if [d.name for d in drafts] != list(pipeline.stage_names):
        raise AssertionError(f"pipeline {pipeline.name!r}: drafts {[d.name for d in drafts]} do not match its "
                             f"stages {list(pipeline.stage_names)}")
    for d in drafts:
        declared = pipeline.stage(d.name).settings
        if not isinstance(d.settings, declared):
            raise AssertionError(f"pipeline {pipeline.name!r} stage {d.name!r}: settings are a "
                                 f"{type(d.settings).__name__}, not its declared {declared.__name__}")
    return {d.name: d for d in drafts}


def stage_models(refs: list[LoadedModel], identities: Mapping[str, str] | None) -> dict[str, str]:
    """Model id -> identity for every model a stage's settings load (`model_refs` of them: the
    `genfab.api.base.MODEL` fields)."""
    return {m.id: f"{ENDPOINT}{m.id}" if m.endpoint else (identities or {}).get(m.id, UNREAD)
            for m in refs}


def plan(resource: Resource, inventory: Mapping[str, int] | None = None,
         references: Mapping[str, str] | None = None, models: Mapping[str, str] | None = None,
         execution: str | None = None) -> Plan:
    """Expand a validated resource into its stage DAG.

    `inventory` carries sample counts only I/O can know (e.g. `{"input": 120}` after listing the
    input prefix or reading a manifest); without it such stages have `samples=None`. `references`
    carries what other resources resolved to (see `DraftRequest.references`). `models` carries the
    identities the executor read from the model location (`genfab.inventory.model_identity`, for the
    ids `model_ids_of` lists); a model it lacks is hashed as `unread`. `execution` is the output
    folder the executor chose (`Pipeline.execution`).
    """
    spec: CommonSpec = resource.spec
    pipeline = selected(resource.kind, spec)
    pd = pipeline.drafts(DraftRequest(resource.metadata.name, spec, pipeline.block_of(spec), inventory or {},
                                      references or {}, execution))
    drafts = _checked_drafts(pipeline, pd.drafts)
    catalog = {s.name: s for s in pipeline.stages}
    customs = {c.name: c for c in spec.custom_stages}

    # Disabled stages drop out; their consumers read what the disabled stage would have read.
    upstream: dict[str, tuple[str, ...]] = {}
    for d in pd.drafts:
        inputs: list[str] = []
        for u in (*catalog[d.name].upstream, *d.extra_upstream):
            inputs.extend(upstream.get(u, ()) if not drafts[u].enabled else (u,))
        upstream[d.name] = tuple(dict.fromkeys(inputs))
    order: list[str] = [d.name for d in pd.drafts if d.enabled]
    upstream = {n: upstream[n] for n in order}
    last = order[-1]
    for c in spec.custom_stages:
        if c.name not in drafts:
            upstream[c.name] = tuple(c.after) or (last,)
            order.append(c.name)
            last = c.name if not c.after else last
    order = _topological(order, upstream)

    selected_stages = set(spec.only_stages) if spec.only_stages is not None else None

    def runs(name: str) -> bool:
        draft = drafts.get(name)
        return (draft.run if draft is not None else True) and (selected_stages is None or name in selected_stages)

    rerun = spec.rerun
    forced = set(rerun.stages or [n for n in order if runs(n)]) if rerun is not None else set()
    for name in order:  # what consumes a re-run stage's outputs is made again with them
        if forced.intersection(upstream[name]):
            forced.add(name)
    stages: list[PlannedStage] = []
    hashes: dict[str, str] = {}
    samples_of: dict[str, int | None] = {}
    for name in order:
        draft = drafts.get(name)
        custom = customs.get(name)
        override = spec.stages.get(name)
        base = catalog.get(name, CUSTOM_DEFAULTS)
        config = draft.settings.model_dump(by_alias=True, exclude_none=True, mode="json") if draft is not None else {}
        hashed = hashed_values(draft.settings) if draft is not None else {}
        if custom is not None:
            config = {**config, "custom": custom.config} if draft is not None else dict(custom.config)
            hashed = {**hashed, "custom": custom.config} if draft is not None else dict(custom.config)
        ups = upstream[name]
        samples = draft.samples if draft is not None else (samples_of[ups[0]] if ups else None)
        samples_of[name] = samples
        layout = base.output if draft is not None else f"{name}/"
        output_uri = join_uri(pd.output_uri, layout_dir(layout))
        input_uris = tuple(draft.input_uris if draft is not None else ()) + tuple(
            next(s.output_uri for s in stages if s.name == u) for u in ups
        )
        if custom is not None:
            family, image, implementation = CUSTOM_FAMILY, custom.image, None
            command, args = tuple(custom.command), tuple(custom.args)
            env = tuple((e.name, e.value) for e in custom.env)
        else:
            family, implementation = base.family, base.implementation
            image = ((override.image if override is not None else None) or (draft.image if draft is not None else None)
                     or getattr(spec.images, family))
            command, args, env = (), (), ()
        unsupported = (base.refuses(draft.settings) or "") if custom is None and base.refuses and draft else ""
        if unsupported:
            implementation = None
        shard_size = _shard_size(base, spec, name, custom, draft)
        fixed = draft.shards if draft is not None and draft.shards is not None else (1 if base.singleton else None)
        shards = fixed if fixed is not None else (shard_count(samples, shard_size) if samples is not None else None)
        too_many = too_many_shards(name, samples, shard_size, shards) if samples is not None and shards else None
        if too_many is not None:
            raise PlanError(too_many)
        refs = model_refs(draft.settings) if draft is not None else []
        loaded = stage_models(refs, models)
        parts = hash_parts(
            name=name, family=family, image=image, command=command, args=args, env=env, config=hashed,
            input_uris=input_uris, upstream_hashes={u: hashes[u] for u in ups}, models=loaded,
            rerun=rerun.token if rerun is not None and name in forced else None,
            revision=base.revision if custom is None else 0,
        )
        digest = config_hash(parts)
        # Downstream hashes take the base (token-free) hash: the token reaches them as their own part.
        base_hash = hashes[name] = config_hash({**parts, "rerun": ""})
        run = runs(name)
        stages.append(PlannedStage(
            name=name, family=family, description=base.description if draft is not None else "custom stage",
            upstream=ups, config=config, options=dict(draft.options) if draft is not None else {},
            resources=_resources(base, spec, name, custom, draft.gpus if draft is not None else None),
            input_uris=input_uris, output_uri=output_uri, output_layout=layout, samples=samples,
            shard_size=shard_size, shards=shards, fixed_shards=fixed, config_hash=digest, run=run,
            selection={k: v for k, v in draft.selection.items() if v is not None} if draft is not None else {},
            image=image, implementation=implementation, unsupported=unsupported,
            manual_gate=base.manual_gate(draft.settings) if base.manual_gate and draft is not None else None,
            gang=base.gang if draft is not None else False, command=command, args=args, env=env,
            replaces=custom is not None and draft is not None,
            required_models=tuple(m.id for m in refs if not (m.endpoint or m.optional))
            if draft is not None and custom is None else (),
            cuda=base.cuda and implementation is not None and custom is None,
            batch_size=override.batch_size if override is not None else None,
            offload=override.offload if override is not None else None,
            progress_deadline_seconds=(override.progress_deadline_seconds if override is not None else None)
            or spec.progress_deadline_seconds,
            active_deadline_seconds=override.active_deadline_seconds if override is not None else None,
            hash_parts=parts, models=loaded, rerun=name in forced, base_hash=base_hash,
        ))
    by_name = {s.name: s for s in stages}
    stages = [replace(s, streams_from=(up,)) if (up := stream_source(s, None if s.name in customs else catalog.get(
        s.name), by_name)) else s for s in stages]
    stages = with_shared_workers(stages, pipeline.shared_workers)
    return Plan(
        kind=resource.kind, name=resource.metadata.name, namespace=resource.metadata.namespace,
        pipeline=pipeline.name, output_uri=pd.output_uri, stages=tuple(stages), external_refs=pd.external_refs,
        execution=execution if pipeline.execution is not None and pipeline.execution(pipeline.block_of(spec)) else None,
    )
