"""SceneJob pipeline `vistadream` (the lab's vistadream script): outpaint -> depth -> gaussians -> coarse -> render."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genfab.api.base import GenfabModel
from genfab.api.gaussians import SplatConfig
from genfab.api.lab.vistadream import COMPARISON as LAB
from genfab.api.pipeline import Draft, DraftRequest, Pipeline, PipelineDrafts, SharedWorker, StageDecl
from genfab.api.pipelines._scene import (
    SHARD,
    InputSettings,
    curated_selection,
    gaussians_stage,
    refinement_parameters,
    scene_input,
    scene_input_without_prompts,
)
from genfab.api.quality import VISTADREAM
from genfab.api.scenejob import (
    RefinementParameters,
    SceneJobBase,
    VistaCoarse,
    VistaDepth,
    VistaDreamConfig,
    VistaFlux,
    VistaTrajectory,
)

STAGES = "genfab.stages.vistadream"


class OutpaintSettings(InputSettings):
    """`outpaint`: the input fitted to `maxResolution`, a border of `expansionPercent`, one FluxFill."""

    max_resolution: int
    """`vistadream.maxResolution`."""
    expansion_percent: float
    """`vistadream.expansionPercent`."""
    flux: VistaFlux


class DepthSettings(InputSettings):
    """`depth`: one depth pass on the (outpainted) image."""

    max_resolution: int
    """`vistadream.maxResolution` (without outpainting this stage fits the input itself)."""
    depth: VistaDepth


class VistaGaussiansSettings(GenfabModel):
    """vistadream's `gaussians`: the Gaussian scene from the depth frames, `initIterations` steps. It
    grows a scene rather than running the 3DGS trainer, so of the `gaussians` block it reads the part
    every Gaussian scene reads (`SplatConfig`); `refinement` is there for the refusal (and for a custom
    `gaussians` stage that replaces it)."""

    gaussians: SplatConfig
    init_iterations: int
    """`vistadream.initIterations`."""
    refinement: RefinementParameters | None = None


def depth_image(depth: VistaDepth) -> str | None:
    """The image of the stages that run the depth model (depth, coarse): MoGe's when it is the backend."""
    return depth.moge_image if depth.depth_backend == "moge" else None


def moge_refusal(settings: DepthSettings | CoarseSettings) -> str | None:
    """`StageDecl.refuses` of the stages that load the depth model: MoGe asked for without its image."""
    if settings.depth.depth_backend == "moge" and settings.depth.moge_image is None:
        return ("vistadream.depthBackend moge runs MoGe, research code that is not a package: set "
                "vistadream.mogeImage to a MoGe stage image (built from images/moge/Dockerfile), or set "
                "vistadream.depthBackend: depth-pro")
    return None


def no_refinement_here(settings: VistaGaussiansSettings) -> str | None:
    """`StageDecl.refuses`: vistadream's gaussians stage does no DiFix refinement (Difix3D+ schedules it
    in a long 3DGS training; vistadream grows its scene by short ones)."""
    if settings.refinement is not None:
        return ("refinement runs in worldexplorer's gaussians stage; vistadream's grows its scene by short "
                "trainings (initIterations, coarseIterations), where Difix3D+'s fixSteps schedule has nothing to "
                "attach to: leave spec.refinement out, or replace the stage with a custom stage")
    return None


class CoarseSettings(GenfabModel):
    """`coarse`: select poses along the trajectory, inpaint, align depth, add splats and train."""

    gaussians: SplatConfig
    trajectory: VistaTrajectory
    coarse: VistaCoarse
    flux: VistaFlux
    depth: VistaDepth


class RenderSettings(GenfabModel):
    """`render`: the final trajectory video, the PLY and the Rerun recording."""

    gaussians: SplatConfig
    trajectory: VistaTrajectory
    render_frames: int
    """`vistadream.renderFrames`."""
    ply_name: str
    """`vistadream.plyName`."""


def drafts(req: DraftRequest) -> PipelineDrafts:
    spec: SceneJobBase = req.spec
    vd: VistaDreamConfig = req.block
    samples, input_uris = scene_input(req)
    outpaint = vd.stage != "no-outpaint"
    read_input = scene_input_without_prompts(spec)
    flux, depth = VistaFlux.part_of(vd), VistaDepth.part_of(vd)
    trajectory, splat = VistaTrajectory.part_of(vd), SplatConfig.part_of(spec.gaussians)
    return PipelineDrafts(spec.output, [
        Draft("outpaint", OutpaintSettings(input=read_input, max_resolution=vd.max_resolution,
                                           expansion_percent=vd.expansion_percent, flux=flux),
              samples, enabled=outpaint,
              input_uris=input_uris, selection=curated_selection(spec)),
        # Without outpainting, depth reads the input directly (the first enabled stage gets it).
        Draft("depth", DepthSettings(input=read_input, max_resolution=vd.max_resolution, depth=depth), samples,
              input_uris=() if outpaint else input_uris,
              selection={} if outpaint else curated_selection(spec), image=depth_image(depth)),
        Draft("gaussians", VistaGaussiansSettings(gaussians=splat, init_iterations=vd.init_iterations,
                                                  refinement=refinement_parameters(spec)), samples),
        Draft("coarse", CoarseSettings(gaussians=splat, trajectory=trajectory, coarse=VistaCoarse.part_of(vd),
                                       flux=flux, depth=depth), samples, enabled=vd.stage == "coarse",
              image=depth_image(depth)),
        Draft("render", RenderSettings(gaussians=splat, trajectory=trajectory, render_frames=vd.render_frames,
                                       ply_name=vd.ply_name), samples),
    ])


SHARED_MODELS = {"outpaint": "flux", "depth": "depth"}
"""What each member of vistadream's shared worker loads that coarse loads too: its config's block naming it."""


def shared_models_differ(configs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """`SharedWorker.differs`: a member whose fill or depth settings are not coarse's shares nothing."""
    coarse = configs.get("coarse", {})
    for name, block in SHARED_MODELS.items():
        if name in configs and configs[name].get(block) != coarse.get(block):
            return f"{name}'s {block} settings are not coarse's"
    return None


PIPELINE = Pipeline(
    lab=LAB,
    name="vistadream", kind="SceneJob", value="vistadream",
    description="single image -> outpaint -> depth -> Gaussian scene -> coarse expansion -> render",
    position=1, block="vistadream", block_model=VistaDreamConfig, drafts=drafts,
    figures=VISTADREAM,
    shared_workers=(SharedWorker(("outpaint", "depth", "coarse"), holder="coarse",
                                 models="the FLUX fill (outpaint, coarse) and the depth model (depth, coarse)",
                                 differs=shared_models_differ),),
    stages=(
        StageDecl("outpaint", family="diffusion", description="Flux-Fill outpainting of the border (expansionPercent)",
                  settings=OutpaintSettings,
                  implementation=f"{STAGES}.outpaint_stage:OUTPAINT", memory="48Gi", shard_size=SHARD,
                  output="{sample}/outpaint/"),
        StageDecl("depth", family="segment", description="One depth pass on the outpainted image (metric depth, K) -> "
                  "the lab's script's frames",
                  settings=DepthSettings, implementation=f"{STAGES}.depth_stage:DEPTH", memory="16Gi",
                  shard_size=SHARD,
                  upstream=("outpaint",), output="{sample}/depth/", refuses=moge_refusal,
                  revision=1),  # 1: the input frame's splats ignore the confidence, as the lab's _initialize
        # Its initial scene trains `initIterations` (100) steps, about a second: the Pod's start is most of
        # a scene's time there, so it takes a shard of scenes too (worldexplorer's 3DGS takes one).
        gaussians_stage("Initialise the Gaussian scene from input + outpaint frames, train",
                        VistaGaussiansSettings, "depth", "{sample}/gaussians/",
                        implementation=f"{STAGES}.init_stage:INIT", refuses=no_refinement_here, shard_size=SHARD),
        StageDecl("coarse", family="scene",
                  description="Coarse expansion: select poses, inpaint, align depth, add and train splats",
                  settings=CoarseSettings, implementation=f"{STAGES}.coarse_stage:COARSE", memory="64Gi",
                  shard_size=SHARD,
                  upstream=("gaussians",), output="{sample}/coarse/", cuda=True, refuses=moge_refusal,
                  # 1: each training moves only its view's Gaussians (the lab's GS_Train_Tool); 2: candidate
                  # views grow by coarseMargin once, as the lab's pose_to_frame does
                  revision=2),
        StageDecl("render", family="scene",
                  description="Render the final trajectory videos, export the PLY and the Rerun recording",
                  settings=RenderSettings, implementation=f"{STAGES}.render_stage:RENDER", memory="16Gi",
                  shard_size=SHARD,
                  upstream=("coarse",), output="{sample}/render/", cuda=True,
                  revision=1),  # 1: a scene of one or two frames renders renderFrames, as the lab's script does
    ),
)
