"""What both SceneJob pipelines share: the job input, the `gaussians` stage and its settings."""

from __future__ import annotations

from typing import Any

from genfab.api.base import GenfabModel
from genfab.api.gaussians import GaussiansConfig
from genfab.api.pipeline import INPUT, Draft, DraftRequest, StageDecl
from genfab.api.scene_samples import expand_samples
from genfab.api.scenejob import Refinement, SceneInput, SceneJobBase


class InputSettings(GenfabModel):
    """A first stage's view of the job input (its form is part of what the stage reads)."""

    input: SceneInput


class GaussiansSettings(GenfabModel):
    """The `gaussians` stage: 3DGS training, optionally refined with a DiFix checkpoint."""

    gaussians: GaussiansConfig
    refinement: Refinement | None = None


GAUSSIANS = "genfab.stages.gaussians.stage:GaussiansStage"
"""3DGS training of posed views (transforms.json or COLMAP scenes)."""


def gaussians_stage(description: str, settings: type[GaussiansSettings], upstream: str, output: str,
                    implementation: str | None = GAUSSIANS) -> StageDecl:
    """The `gaussians` stage as both scene pipelines declare it (vistadream's reads its own frames)."""
    return StageDecl("gaussians", "scene", description, settings, implementation,
                     memory="32Gi", shard_size=1, upstream=(upstream,), output=output)


def gaussians_draft(spec: SceneJobBase, settings: GaussiansSettings, samples: int | None) -> Draft:
    """Its draft: one Pod trains `scenesPerPod` scenes together (multi-scene packing), so that is
    its shard size."""
    n = spec.gaussians.scenes_per_pod
    return Draft("gaussians", settings, samples, shard_size=n if n > 1 else None)


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


def refinement_refs(spec: SceneJobBase) -> tuple[str, ...]:
    """The TuningRun whose checkpoint the scenes wait for."""
    ref = spec.refinement.tuning_run_ref if spec.refinement is not None else None
    return (f"TuningRun/{ref.name}",) if ref is not None else ()

