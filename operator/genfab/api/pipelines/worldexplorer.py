"""SceneJob pipeline `worldexplorer` (seed 000): scaffold -> expansion -> gaussians."""

from __future__ import annotations

from genfab.api.base import GenfabModel
from genfab.api.pipeline import Draft, DraftRequest, Pipeline, PipelineDrafts, StageDecl
from genfab.api.pipelines._scene import (
    GaussiansSettings,
    InputSettings,
    curated_selection,
    gaussians_draft,
    gaussians_stage,
    refinement_refs,
    scene_input,
)
from genfab.api.scenejob import ExpansionConfig, ScaffoldConfig, SceneJobBase, WorldExplorerConfig

SAMPLE = "{variant}/index_{index:04d}"
"""A sample's folder (its id)."""


class ScaffoldSettings(InputSettings):
    """Stage 1 `scaffold`."""

    scaffold: ScaffoldConfig


class ExpansionSettings(GenfabModel):
    """Stage 2 `expansion`."""

    expansion: ExpansionConfig


def scaffold_refusal(settings: ScaffoldSettings) -> str | None:
    """Why genfab's built-in `scaffold` cannot run these settings (one line saying what to set), or None."""
    s = settings.scaffold
    if s.method == "single_image":
        return ("worldexplorer.scaffold.method single_image runs SEVA (Stable Virtual Camera), research code that is "
                "not a package: add a customStages entry named `scaffold` with a SEVA stage image, or set "
                "worldexplorer.scaffold.method: scaffold_gen")
    if s.selection == "manual":
        return ("worldexplorer.scaffold.selection manual (a person picks the in-between views in storage) is not "
                "built yet: use fast or automatic")
    return None


def drafts(req: DraftRequest) -> PipelineDrafts:
    spec: SceneJobBase = req.spec
    block: WorldExplorerConfig = req.block
    samples, input_uris = scene_input(req)
    return PipelineDrafts(spec.output, [
        Draft("scaffold", ScaffoldSettings(input=spec.input, scaffold=block.scaffold), samples, input_uris=input_uris,
              selection=curated_selection(spec)),
        Draft("expansion", ExpansionSettings(expansion=block.expansion), samples),
        gaussians_draft(spec, GaussiansSettings(gaussians=spec.gaussians, refinement=spec.refinement), samples),
    ], refinement_refs(spec))


PIPELINE = Pipeline(
    name="worldexplorer", kind="SceneJob", value="worldexplorer",
    description="seed 000: image/prompt -> 8-view 360° scaffold -> trajectory + geometry -> 3DGS",
    position=0, block="worldexplorer", block_model=WorldExplorerConfig, drafts=drafts,
    stages=(
        StageDecl("scaffold", "diffusion", "Stage 1: 8-view 360° scaffold (000-007) from the image (SEVA) or "
                  "from prompts (FLUX + inpainting)", ScaffoldSettings,
                  "genfab.stages.worldexplorer.scaffold_stage:ScaffoldStage", memory="64Gi", shard_size=1,
                  output=f"{SAMPLE}/scaffold/", refuses=scaffold_refusal),
        StageDecl("expansion", "scene", "Stage 2: trajectory generation + VGGT geometry (no 3DGS)", ExpansionSettings,
                  memory="64Gi", shard_size=1, upstream=("scaffold",), output=f"{SAMPLE}/scenes/"),
        gaussians_stage("Stage 3: 3D Gaussian Splatting training and PLY export", GaussiansSettings, "expansion",
                        f"{SAMPLE}/scenes/gaussians/"),
    ),
)
