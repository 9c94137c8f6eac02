"""SceneJob pipeline `vistadream` (seed 001): outpaint -> depth -> gaussians -> coarse -> render."""

from __future__ import annotations

from genfab.api.pipeline import Draft, DraftRequest, Pipeline, PipelineDrafts, StageDecl, fill, picked, settings_model
from genfab.api.pipelines._scene import (
    GaussiansSettings,
    InputSettings,
    curated_selection,
    gaussians_draft,
    gaussians_stage,
    no_refinement_here,
    refinement_refs,
    scene_input,
)
from genfab.api.scenejob import SceneJobBase, VistaDreamConfig

STAGES = "genfab.stages.vistadream"
TRAJECTORY = ("n_frames", "traj_type", "traj_forward_ratio", "traj_backward_ratio", "traj_max_percentage")
COARSE = tuple(n for n in VistaDreamConfig.model_fields if n.startswith("coarse_"))

FLUX = ("flux_fill_model", "flux_steps", "flux_guidance", "flux_prompt", "flux_runtime", "seed")
DEPTH = ("depth_backend", "depth_pro_model", "depth_anything_model", "focal_prior_fov")

OutpaintSettings = settings_model("OutpaintSettings", "Flux-Fill outpainting of the input.", InputSettings,
                                  **picked(VistaDreamConfig, "expansion_percent", "max_resolution", *FLUX))
DepthSettings = settings_model("DepthSettings", "One depth pass on the (outpainted) image.", InputSettings,
                               **picked(VistaDreamConfig, "max_resolution", *DEPTH))
VistaGaussiansSettings = settings_model("VistaGaussiansSettings", "Initialise the Gaussian scene, then train.",
                                        GaussiansSettings, **picked(VistaDreamConfig, "init_iterations"))
CoarseSettings = settings_model("CoarseSettings", "Coarse expansion along the trajectory.", GaussiansSettings,
                                **picked(VistaDreamConfig, *TRAJECTORY, *COARSE, *FLUX, *DEPTH))
RenderSettings = settings_model("RenderSettings", "The final trajectory video and PLY.", GaussiansSettings,
                                **picked(VistaDreamConfig, *TRAJECTORY, "render_frames", "ply_name"))


def drafts(req: DraftRequest) -> PipelineDrafts:
    spec: SceneJobBase = req.spec
    vd: VistaDreamConfig = req.block
    samples, input_uris = scene_input(req)
    outpaint = vd.stage != "no-outpaint"
    return PipelineDrafts(spec.output, [
        Draft("outpaint", fill(OutpaintSettings, vd, input=spec.input), samples, enabled=outpaint,
              input_uris=input_uris, selection=curated_selection(spec)),
        # Without outpainting, depth reads the input directly (the first enabled stage gets it).
        Draft("depth", fill(DepthSettings, vd, input=spec.input), samples, input_uris=() if outpaint else input_uris,
              selection={} if outpaint else curated_selection(spec)),
        gaussians_draft(spec, req, fill(VistaGaussiansSettings, vd, gaussians=spec.gaussians,  # type: ignore[arg-type]
                                        refinement=spec.refinement), samples),
        Draft("coarse", fill(CoarseSettings, vd, gaussians=spec.gaussians, refinement=spec.refinement), samples,
              enabled=vd.stage == "coarse"),
        Draft("render", fill(RenderSettings, vd, gaussians=spec.gaussians, refinement=spec.refinement), samples),
    ], refinement_refs(spec))


PIPELINE = Pipeline(
    name="vistadream", kind="SceneJob", value="vistadream",
    description="seed 001: single image -> outpaint -> depth -> Gaussian scene -> coarse expansion -> render",
    position=1, block="vistadream", block_model=VistaDreamConfig, drafts=drafts,
    stages=(
        StageDecl("outpaint", "diffusion", "Flux-Fill outpainting of the border (expansionPercent)", OutpaintSettings,
                  f"{STAGES}.outpaint_stage:OutpaintStage", memory="48Gi", shard_size=1,
                  output="{sample}/outpaint/"),
        StageDecl("depth", "segment", "One depth pass on the outpainted image (metric depth, K) -> the seed's frames",
                  DepthSettings, f"{STAGES}.depth_stage:DepthStage", memory="16Gi", shard_size=4,
                  upstream=("outpaint",), output="{sample}/depth/"),
        gaussians_stage("Initialise the Gaussian scene from input + outpaint frames, train",
                        VistaGaussiansSettings, "depth", "{sample}/gaussians/",  # type: ignore[arg-type]
                        implementation=f"{STAGES}.init_stage:InitStage", refuses=no_refinement_here),
        StageDecl("coarse", "scene", "Coarse expansion: select poses, inpaint, align depth, add and train splats",
                  CoarseSettings, f"{STAGES}.coarse_stage:CoarseStage", memory="64Gi", shard_size=1,
                  upstream=("gaussians",), output="{sample}/coarse/"),
        StageDecl("render", "scene", "Render the final trajectory videos, export the PLY and the Rerun recording",
                  RenderSettings, f"{STAGES}.render_stage:RenderStage", memory="16Gi", shard_size=1,
                  upstream=("coarse",), output="{sample}/render/"),
    ),
)
