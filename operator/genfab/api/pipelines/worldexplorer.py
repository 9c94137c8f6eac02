"""SceneJob pipeline `worldexplorer` (the lab's worldexplorer script): scaffold -> expansion -> gaussians."""

from __future__ import annotations

from typing import Literal

from genfab.api.base import GenfabModel
from genfab.api.lab.worldexplorer import COMPARISON as LAB
from genfab.api.pipeline import Draft, DraftRequest, ManualGate, Pipeline, PipelineDrafts, StageDecl
from genfab.api.pipelines._scene import (
    SHARD,
    GaussiansSettings,
    InputSettings,
    curated_selection,
    gaussians_draft,
    gaussians_stage,
    refinement_parameters,
    refinement_refs,
    scene_input,
)
from genfab.api.quality import WORLDEXPLORER
from genfab.api.scenejob import (
    ExpansionConfig,
    ScaffoldConfig,
    ScaffoldFillConfig,
    SceneJobBase,
    SevaConfig,
    SevaModelConfig,
    VggtConfig,
    WorldExplorerConfig,
)

SAMPLE = "{variant}/index_{index:04d}"
"""A sample's folder (its id)."""

class ScaffoldSettings(InputSettings):
    """Stage 1 `scaffold`."""

    scaffold: ScaffoldConfig
    seva: SevaConfig


class ExpansionSettings(GenfabModel):
    """Stage 2 `expansion`: its own block, the part of the scaffold's it shares (FluxFill, depth model,
    field of view, seed) and the research images it may run."""

    expansion: ExpansionConfig
    scaffold: ScaffoldFillConfig
    seva: SevaModelConfig
    vggt: VggtConfig

    def frames_method(self) -> Literal["seva", "walk"]:
        """`expansion.method`; unset means the lab's worldexplorer script's: SEVA."""
        return self.expansion.method or "seva"

    def geometry_method(self) -> Literal["vggt", "scene"]:
        """`expansion.geometry`; unset means the lab's worldexplorer script's VGGT on the SEVA path, and the
        scene's own aligned depth with genfab's walk (which the user named)."""
        return self.expansion.geometry or ("vggt" if self.frames_method() == "seva" else "scene")


def scaffold_image(block: WorldExplorerConfig) -> str | None:
    """The scaffold's stage image: SEVA's for `single_image`, else the family's."""
    return block.seva.image if block.scaffold.method == "single_image" else None


def expansion_image(settings: ExpansionSettings) -> str | None:
    """The expansion's stage image: the one with SEVA (frames) and/or VGGT (geometry) when they run
    (one image when both are set: `WorldExplorerConfig`'s rule), else the family's (walk, scene)."""
    return ((settings.vggt.image if settings.geometry_method() == "vggt" else None)
            or (settings.seva.image if settings.frames_method() == "seva" else None))


def expansion_refusal(settings: ExpansionSettings) -> str | None:
    """The lab's worldexplorer script's research methods (the meaning of unset) without their stage image: one
    line naming both fixes."""
    e = settings.expansion
    if settings.frames_method() == "seva" and settings.seva.image is None:
        asked = "seva" if e.method else "unset (the lab's worldexplorer script's SEVA)"
        return (f"worldexplorer.expansion.method {asked} runs SEVA (Stable Virtual Camera), research code that is "
                "not a package: set worldexplorer.seva.image to a SEVA stage image (built from "
                "images/seva/Dockerfile), or set worldexplorer.expansion.method: walk (genfab's FluxFill walk)")
    if settings.geometry_method() == "vggt" and settings.vggt.image is None:
        asked = "vggt" if e.geometry else "unset (the lab's worldexplorer script's VGGT on the SEVA path)"
        return (f"worldexplorer.expansion.geometry {asked} runs VGGT, research code that is not a package: set "
                "worldexplorer.vggt.image to a VGGT stage image (built from images/vggt/Dockerfile), or set "
                "worldexplorer.expansion.geometry: scene (the scene's own aligned depth)")
    return None


SCAFFOLD_DIR = "scaffold/"
"""The scaffold's folder in each sample's folder (the gate's candidates and final views are under it)."""
GAP_VIEWS = ("001", "003", "005", "007")
"""The scaffold's in-between views (inpainted from their neighbours), the ones a person chooses."""
AWAITING_SELECTION = "AwaitingSelection"


def candidate_key(gap: str, k: int) -> str:
    """Candidate `k` of in-between view `gap`, relative to a sample's scaffold folder."""
    return f"candidates/{gap}_{k:02d}.png"


def final_key(view: str) -> str:
    """A final scaffold view (what the expansion reads), relative to a sample's scaffold folder."""
    return f"final/{view}.png"


def selection_gate(settings: ScaffoldSettings) -> ManualGate | None:
    """`selection: manual`: the expansion waits until every sample's final/ holds the four chosen
    in-between views."""
    if settings.scaffold.selection != "manual":
        return None
    return ManualGate(AWAITING_SELECTION, tuple(final_key(g) for g in GAP_VIEWS), "candidates/",
                      "choose in a browser with `genfab review {output}`, or run "
                      "`genfab select {file} --sample ID --gap 001 --candidate K`, or copy the chosen "
                      "candidates/<view>_<k>.png to final/<view>.png")


def scaffold_refusal(settings: ScaffoldSettings) -> str | None:
    """Why genfab's built-in `scaffold` cannot run these settings (one line saying what to set), or None."""
    if settings.scaffold.method == "single_image" and settings.seva.image is None:
        return ("worldexplorer.scaffold.method single_image runs SEVA (Stable Virtual Camera), research code that is "
                "not a package: set worldexplorer.seva.image to a SEVA stage image (built from "
                "images/seva/Dockerfile), or set worldexplorer.scaffold.method: scaffold_gen")
    return None


def drafts(req: DraftRequest) -> PipelineDrafts:
    spec: SceneJobBase = req.spec
    block: WorldExplorerConfig = req.block
    samples, input_uris = scene_input(req)
    expansion = ExpansionSettings(expansion=block.expansion, scaffold=ScaffoldFillConfig.part_of(block.scaffold),
                                  seva=SevaModelConfig.part_of(block.seva), vggt=block.vggt)
    return PipelineDrafts(spec.output, [
        Draft("scaffold", ScaffoldSettings(input=spec.input, scaffold=block.scaffold, seva=block.seva), samples,
              input_uris=input_uris, selection=curated_selection(spec), image=scaffold_image(block)),
        Draft("expansion", expansion, samples, image=expansion_image(expansion)),
        gaussians_draft(spec, req, GaussiansSettings(gaussians=spec.gaussians, refinement=refinement_parameters(spec)),
                        samples),
    ], refinement_refs(spec))


PIPELINE = Pipeline(
    lab=LAB,
    name="worldexplorer", kind="SceneJob", value="worldexplorer",
    description="image/prompt -> 8-view 360° scaffold -> trajectory + geometry -> 3DGS",
    position=0, block="worldexplorer", block_model=WorldExplorerConfig, drafts=drafts, figures=WORLDEXPLORER,
    stages=(
        StageDecl("scaffold", family="diffusion",
                  description="Stage 1: 8-view 360° scaffold (000-007) from the image (SEVA) or "
                  "from prompts (FLUX + inpainting)", settings=ScaffoldSettings,
                  implementation="genfab.stages.worldexplorer.scaffold_stage:SCAFFOLD", memory="64Gi",
                  shard_size=SHARD,
                  output=f"{SAMPLE}/{SCAFFOLD_DIR}", refuses=scaffold_refusal, manual_gate=selection_gate),
        StageDecl("expansion", family="scene",
                  description="Stage 2: frames along a trajectory through the scaffold + their geometry, "
                  "as img2trajvid/ (no 3DGS)", settings=ExpansionSettings,
                  implementation="genfab.stages.worldexplorer.expansion_stage:EXPANSION",
                  memory="64Gi", shard_size=SHARD, upstream=("scaffold",), output=f"{SAMPLE}/scenes/", cuda=True,
                  refuses=expansion_refusal),
        gaussians_stage("Stage 3: 3D Gaussian Splatting training and PLY export", GaussiansSettings, "expansion",
                        f"{SAMPLE}/scenes/gaussians/"),
    ),
)
