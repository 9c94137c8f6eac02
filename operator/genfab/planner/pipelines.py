"""Per-pipeline decisions: which catalog stages are enabled, their typed configs and sample counts.

Each function returns one `Draft` per catalog stage, in catalog order; `build.plan` turns drafts
into the final DAG (rewiring around disabled stages, custom stages, resources, shards, hashes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genfab.api.base import GenfabModel
from genfab.api.datasetjob import DatasetJobSpec
from genfab.api.resources import DatasetJob, Resource, SceneJob, TuningRun
from genfab.api.scenejob import SceneJobSpec, VistaDreamConfig, WorldExplorerConfig
from genfab.planner.scene_samples import expand_samples

INPUT = "input"
"""Inventory key of the job input's sample count (resolved by listing storage at the edge)."""


@dataclass
class Draft:
    name: str
    config: dict[str, Any]
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
    selection: dict[str, Any] = field(default_factory=dict)
    """Which input files are samples (`ids`, `limit`, `suffixes`); see `PlannedStage.selection`."""


@dataclass(frozen=True)
class PipelineDrafts:
    pipeline: str
    output_uri: str
    drafts: list[Draft]
    external_refs: tuple[str, ...] = ()


def _dump(model: GenfabModel | None) -> dict[str, Any]:
    return model.to_yaml_dict() if model is not None else {}


def _pick(model: GenfabModel, *names: str) -> dict[str, Any]:
    data = model.to_yaml_dict()
    return {n: data[n] for n in names if n in data}


def _capped(count: int | None, cap: int | None) -> int | None:
    if count is None:
        return None
    return min(count, cap) if cap is not None else count


def join_uri(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        if p:
            out += "/" + p.strip("/")
    return out


def scene_drafts(job: SceneJob, inventory: Mapping[str, int]) -> PipelineDrafts:
    spec: SceneJobSpec = job.spec
    inp = spec.input
    if inp.image is not None:
        samples: int | None = 1
        input_uris: tuple[str, ...] = (inp.image,)
    elif inp.samples is not None:
        samples = len(expand_samples(inp.samples, indices=spec.indices, variants=spec.variants))
        input_uris = (inp.dataset_uri or "",)
    else:
        samples = inventory.get(INPUT)
        input_uris = (inp.manifest or "",)
    # The input form itself (inline samples, manifest URI) is part of what the first stage reads.
    input_cfg = _pick(inp, "image", "manifest", "samples", "datasetUri")
    refs: tuple[str, ...] = ()
    gaussians_cfg: dict[str, Any] = {"gaussians": _dump(spec.gaussians)}
    if spec.refinement is not None:
        gaussians_cfg["refinement"] = _dump(spec.refinement)
        if spec.refinement.tuning_run_ref is not None:
            refs = (f"TuningRun/{spec.refinement.tuning_run_ref.name}",)

    if spec.pipeline == "worldexplorer":
        we = spec.worldexplorer or WorldExplorerConfig()
        drafts = [
            Draft("scaffold", {"input": input_cfg, "scaffold": _dump(we.scaffold)}, samples,
                  input_uris=input_uris),
            Draft("expansion", {"expansion": _dump(we.expansion)}, samples),
            Draft("gaussians", gaussians_cfg, samples),
        ]
    else:
        vd = spec.vistadream or VistaDreamConfig()
        outpaint = vd.stage != "no-outpaint"
        traj = _pick(vd, "nFrames", "trajType", "trajForwardRatio", "trajBackwardRatio", "trajMaxPercentage")
        drafts = [
            Draft("outpaint", {"input": input_cfg, **_pick(vd, "expansionPercent", "maxResolution")},
                  samples, enabled=outpaint, input_uris=input_uris),
            # Without outpainting, depth reads the input directly (the first enabled stage gets it).
            Draft("depth", {"input": input_cfg, **_pick(vd, "maxResolution")}, samples,
                  input_uris=() if outpaint else input_uris),
            Draft("gaussians", {**gaussians_cfg, **_pick(vd, "initIterations")}, samples),
            Draft("coarse", {**traj, **{k: v for k, v in vd.to_yaml_dict().items() if k.startswith("coarse")}},
                  samples, enabled=vd.stage == "coarse"),
            Draft("render", {**traj, **_pick(vd, "renderFrames", "plyName")}, samples),
        ]
    return PipelineDrafts(spec.pipeline, spec.output, drafts, refs)


def dataset_drafts(job: DatasetJob, inventory: Mapping[str, int]) -> PipelineDrafts:
    spec: DatasetJobSpec = job.spec
    if spec.relighting is not None:
        rl = spec.relighting
        listed = len(rl.input.sample_ids) if rl.input.sample_ids is not None else inventory.get(INPUT)
        n = _capped(listed, rl.num_samples)
        caption = rl.captioning.enabled
        selection = {"ids": rl.input.sample_ids, "limit": rl.num_samples}
        return PipelineDrafts("relighting", spec.output, [
            Draft("segment", {"segmentation": _dump(rl.segmentation), "seed": rl.seed}, n,
                  input_uris=(rl.input.uri,), selection=selection),
            Draft("albedo", {"albedo": _dump(rl.albedo), "seed": rl.seed}, n),
            Draft("degrade", {"degradation": _dump(rl.degradation), "seed": rl.seed}, n),
            Draft("recombine", {}, n),
            Draft("caption", {"captioning": _dump(rl.captioning)}, n, enabled=caption),
            # organize copies the original input next to the results: the job input is its input too.
            Draft("organize", {"captions": caption}, n, extra_upstream=("caption",) if caption else (),
                  input_uris=(rl.input.uri,), selection=selection),
        ])
    if spec.reference_object is not None:
        ro = spec.reference_object
        sc = ro.scenes
        perspectives = ro.perspectives.count()
        generated = perspectives * sc.num_prompts * sc.num_iterations
        qwen = ro.qwen_augmentation
        annotated = generated * (1 + qwen.count) if qwen.enabled else generated
        retry_only = ro.retry.retry_failed or ro.retry.retry_failed_qwen_augmentations

        def step_run(step: int, name: str) -> bool:
            if retry_only:
                return (name == "scenes" and ro.retry.retry_failed) or (
                    name == "qwen-augmentation" and ro.retry.retry_failed_qwen_augmentations)
            return step >= ro.start_from_step

        extra = {"objectName": ro.object_name, "seed": ro.seed}
        drafts = [
            Draft("white-background", {**extra, "modelPath": sc.model_path}, 1, input_uris=(ro.input_image,)),
            Draft("perspectives", {"perspectives": _dump(ro.perspectives), "modelPath": sc.model_path},
                  perspectives),
            Draft("prompts", {**extra, **_pick(sc, "numPrompts", "llmModel", "systemPromptUri",
                                                "projectInfoUri")}, 1,
                  options={"llmEndpoint": sc.llm_endpoint}),
            Draft("scenes", {**extra, **_pick(sc, "numIterations", "modelPath")}, generated,
                  options={"maxRetries": ro.retry.max_retries, "retryFailedOnly": ro.retry.retry_failed}),
            Draft("qwen-augmentation", {**extra, "qwenAugmentation": _dump(qwen), "modelPath": sc.model_path},
                  generated * qwen.count, enabled=qwen.enabled,
                  options={"retryFailedOnly": ro.retry.retry_failed_qwen_augmentations}),
            Draft("annotation", {"objectName": ro.object_name, "annotation": _dump(ro.annotation)}, annotated,
                  enabled=ro.annotation.enabled, input_uris=(ro.input_image, ro.input_mask or ""),
                  extra_upstream=("qwen-augmentation",) if qwen.enabled else ()),
            Draft("cv-augmentation", {"cvAugmentation": _dump(ro.cv_augmentation), "seed": ro.seed},
                  annotated * ro.cv_augmentation.count, enabled=ro.cv_augmentation.enabled),
        ]
        for step, d in enumerate(drafts, start=1):
            d.run = step_run(step, d.name)
            d.input_uris = tuple(u for u in d.input_uris if u)
        root = join_uri(spec.output, ro.execution_name or job.metadata.name)
        return PipelineDrafts("reference-object", root, drafts)
    assert spec.difix is not None
    dx = spec.difix
    scenes = [len(s.scenes) if s.scenes is not None else None for s in dx.sources]
    exported = None if None in scenes else sum(s for s in scenes if s is not None)
    exported = exported if exported is not None else inventory.get(INPUT)
    sources = [{**s.to_yaml_dict(), "groupBy": s.effective_group_by()} for s in dx.sources]
    return PipelineDrafts("difix", spec.output, [
        Draft("export", {"sources": sources, "referenceView": _dump(dx.reference_view),
                         "imageFormat": dx.image_format}, exported,
              input_uris=tuple(s.uri for s in dx.sources)),
        Draft("split", {"split": _dump(dx.split)}, 1),
        Draft("adapter", {"prompt": dx.prompt}, 1),
    ])


def tuning_drafts(job: TuningRun, inventory: Mapping[str, int]) -> PipelineDrafts:
    spec = job.spec
    refs: tuple[str, ...] = ()
    if spec.dataset.dataset_job_ref is not None:
        refs = (f"DatasetJob/{spec.dataset.dataset_job_ref}",)
        data_uri = f"ref:DatasetJob/{spec.dataset.dataset_job_ref}/difix/data.json"
    else:
        data_uri = spec.dataset.data_json_uri or ""
    config = {
        "trainer": spec.trainer,
        "baseModel": spec.base_model,
        "runName": spec.run_name,
        "hyperparameters": _dump(spec.hyperparameters),
        "gpusPerNode": spec.gpus_per_node,
        "nodes": spec.nodes,
    }
    root = join_uri(spec.output, "tuning_runs", spec.run_name)
    return PipelineDrafts("tuning-difix", root, [Draft("train", config, spec.nodes, input_uris=(data_uri,),
                                                                shards=spec.nodes, gpus=spec.gpus_per_node)],
                          refs)


def drafts_for(resource: Resource, inventory: Mapping[str, int]) -> PipelineDrafts:
    if isinstance(resource, SceneJob):
        return scene_drafts(resource, inventory)
    if isinstance(resource, DatasetJob):
        return dataset_drafts(resource, inventory)
    return tuning_drafts(resource, inventory)
