"""What both SceneJob pipelines share: the job input, the `gaussians` stage and its settings."""

from __future__ import annotations

from typing import Any

from genfab.api.base import GenfabModel
from genfab.api.gaussians import GaussiansConfig
from genfab.api.pipeline import INPUT, Draft, DraftRequest, StageDecl
from genfab.api.scene_samples import expand_samples
from genfab.api.scenejob import CuratedSample, RefinementParameters, SceneInput, SceneJobBase, TuningRunRef
from genfab.contract.paths import ref_uri


class InputSettings(GenfabModel):
    """A first stage's view of the job input (its form is part of what the stage reads)."""

    input: SceneInput


class GaussiansSettings(GenfabModel):
    """The `gaussians` stage: 3DGS training, optionally refined with a DiFix checkpoint."""

    gaussians: GaussiansConfig
    refinement: RefinementParameters | None = None
    checkpoint: str | None = None
    """The DiFix checkpoint refinement uses, resolved at plan time (a `tuningRunRef`'s checkpoint, or
    `checkpointUri`); None: the base model. Hashed, so another checkpoint re-runs the 3DGS work."""


SHARD = 8
"""Scenes per Pod of worldexplorer's scaffold and expansion and of every vistadream stage: a Pod's first
scene carries the process's start, its models' load and torch.compile's warm-up (worldexplorer's SEVA:
128.6 s a Pod; vistadream's FLUX fill loaded twice, 30.5 s and 29.0 s, and Depth Pro 17.8 s, at production
size on an H200: benchmarks/results/), which a shard of 8 pays once instead of 8 times. `shardSize: 1` (the
spec's or a stage's) trades that for one Pod per scene."""

GAUSSIANS = "genfab.stages.gaussians.stage:GAUSSIANS"
"""3DGS training of posed views (transforms.json or COLMAP scenes)."""


def gaussians_stage(description: str, settings: type[GenfabModel], upstream: str, output: str,
                    implementation: str | None = GAUSSIANS, refuses: Any = None, shard_size: int = 1) -> StageDecl:
    """The `gaussians` stage as both scene pipelines declare it (vistadream's reads its own frames)."""
    return StageDecl("gaussians", family="scene", description=description, settings=settings,
                     implementation=implementation,
                     memory="32Gi", shard_size=shard_size, upstream=(upstream,), output=output, refuses=refuses,
                     cuda=True,
                     revision=1)  # 1: simple_trainer's RMS initial scales, SH interval scaled to `steps`


def gaussians_draft(spec: SceneJobBase, req: DraftRequest, settings: GaussiansSettings, samples: int | None
                    ) -> Draft:
    """Its draft: one Pod trains `scenesPerPod` scenes together (multi-scene packing), so that is
    its shard size; with refinement, the checkpoint is part of its settings (or it waits for it)."""
    n = spec.gaussians.scenes_per_pod
    checkpoint, waits_for = refinement_checkpoint(spec, req)
    return Draft("gaussians", settings.model_copy(update={"checkpoint": checkpoint}), samples,
                 shard_size=n if n > 1 else None, input_uris=waits_for)


def scene_input_without_prompts(spec: SceneJobBase) -> SceneInput:
    """The job input as a pipeline without prompts reads it: inline samples' `prompt`, `scaffold.prompts`,
    `scaffold.theme` and `expansion` (worldexplorer's alone) left out, so editing them re-runs none of
    its stages."""
    inp = spec.input
    if inp.samples is None:
        return inp

    def images_only(sample: CuratedSample) -> CuratedSample:
        hints = sample.scaffold.model_copy(update={"prompts": None, "theme": None}) if sample.scaffold else None
        return sample.model_copy(update={"prompt": None, "scaffold": hints, "expansion": None})

    return inp.model_copy(update={"samples": [images_only(s) for s in inp.samples]})


def curated_selection(spec: SceneJobBase) -> dict[str, Any]:
    """Which samples of a curated set the first stage takes (the contract's `Selection`: not hashed, so
    a committed sample is reused whatever `indices` and `variants` the next run asks for)."""
    return {"indices": spec.indices, "variants": spec.variants}


def scene_input(req: DraftRequest) -> tuple[int | None, tuple[str, ...]]:
    """(samples, input URIs) of a SceneJob's input: one image, inline samples or a manifest."""
    spec: SceneJobBase = req.spec
    inp = spec.input
    if inp.image is not None:
        return 1, (inp.image,)
    if inp.samples is not None:
        return len(expand_samples(inp.samples, indices=spec.indices, variants=spec.variants)), (inp.dataset_uri or "",)
    return req.inventory.get(INPUT), (inp.manifest or "",)


def refinement_parameters(spec: SceneJobBase) -> RefinementParameters | None:
    """What refinement does (its checkpoint is resolved separately, into the settings' `checkpoint`)."""
    return RefinementParameters.part_of(spec.refinement) if spec.refinement is not None else None


def refinement_refs(spec: SceneJobBase) -> tuple[str, ...]:
    """The TuningRun whose checkpoint the scenes wait for."""
    ref = spec.refinement.tuning_run_ref if spec.refinement is not None else None
    return (f"TuningRun/{ref.name}",) if ref is not None else ()


def checkpoint_ref(ref: TuningRunRef) -> str:
    """The `ref:` input naming a TuningRun's checkpoint: `model_<step>.pkl`, or `latest`."""
    name = f"model_{ref.step}.pkl" if ref.step is not None else LATEST
    return ref_uri("TuningRun", ref.name, f"checkpoints/{name}")


LATEST = "latest"


def refinement_checkpoint(spec: SceneJobBase, req: DraftRequest) -> tuple[str | None, tuple[str, ...]]:
    """(the checkpoint refinement uses, inputs the gaussians stage waits for): `checkpointUri`; a
    `tuningRunRef` the executor resolved (`DraftRequest.references`), else a `ref:` input that holds
    the stage until the run has it; None for the base model."""
    r = spec.refinement
    if r is None or (r.tuning_run_ref is None and r.checkpoint_uri is None):
        return None, ()
    if r.checkpoint_uri is not None:
        return r.checkpoint_uri, ()
    assert r.tuning_run_ref is not None
    found = req.references.get(f"TuningRun/{r.tuning_run_ref.name}")
    return (found, ()) if found else (None, (checkpoint_ref(r.tuning_run_ref),))

