"""Stage `depth` (the lab's vistadream `_initialize`, second half): one depth pass on the outpainted canvas (or,
with `stage: no-outpaint`, on the fitted input), metric depth and intrinsics from Depth Pro (or Depth
Anything V2 with a focal prior), and the seed's frames built from it: `input` (+ `outpaint`). Writes,
under `{sample}/depth/`: `frames.npz` (every frame's rgb, dpt, masks, intrinsic, cam_T_world),
`depth.png` (a colour preview) and `depth.json` (field of view and where it came from). MoGe
(`depthBackend: moge`) gives scale-invariant depth, its own K and a mask (`dpt_conf_mask`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from genfab.api.pipelines.vistadream import DepthSettings
from genfab.api.scenejob import VistaDepth
from genfab.stages.common.imaging import decode_png, decode_rgb, depth_preview, encode_png
from genfab.stages.models.base import Held, ModelSet, hold, model_params
from genfab.stages.runtime import Sample, SampleError, SampleStage, StageContext
from genfab.stages.scene.frames import frames_to_npz, input_only_frames
from genfab.stages.vistadream.canvas import Canvas, outpaint_frames, process_image

if TYPE_CHECKING:
    from genfab.stages.scene.depth import DepthPredictor

Depth = Held[DepthSettings, "DepthPredictor"]
"""What a worker of the stage holds: its settings and the depth backend's predictor."""


def load_depth_model(models: ModelSet, s: VistaDepth) -> DepthPredictor:
    """The configured depth backend, loaded once per shard (also used by `coarse`: a shared worker's two
    stages load it once, `share`)."""
    from genfab.stages.scene.depth import DepthAnythingV2, DepthPro

    share = s.model_dump_json()

    if s.depth_backend == "moge":
        from genfab.stages.scene.moge_adapter import MARKERS, MoGe

        return models.load("depth", s.moge_model, lambda path, placement: MoGe(path, placement, s.focal_prior_fov),
                           MARKERS, share=share)
    if s.depth_backend == "depth-pro":
        return models.load("depth", s.depth_pro_model,
                           lambda path, placement: DepthPro(path, placement, s.focal_prior_fov), share=share)
    return models.load("depth", s.depth_anything_model,
                       lambda path, placement: DepthAnythingV2(path, placement, s.focal_prior_fov), share=share)


def depth_model(s: VistaDepth) -> str:
    """The model id the configured backend loads."""
    return {"moge": s.moge_model, "depth-pro": s.depth_pro_model}.get(s.depth_backend, s.depth_anything_model)


def depth_range(depth: Any) -> list[float]:
    valid = depth[depth > 0]
    return [float(valid.min()), float(valid.max())] if valid.size else [0.0, 0.0]


def load(settings: DepthSettings, ctx: StageContext) -> Depth:
    return hold(settings, ctx, lambda models, s: load_depth_model(models, s.depth))


def made_by(d: Depth) -> str:
    return f"{d.settings.depth.depth_backend}:{depth_model(d.settings.depth)}"


def estimate(d: Depth, sample: Sample) -> None:
    if d.ctx.upstream:  # else `stage: no-outpaint`: the stage reads the job input itself
        prefix = f"{sample.id}/outpaint/"
        rgb = decode_png(sample.read_upstream(prefix + "outpaint.png"))
        border = decode_png(sample.read_upstream(prefix + "mask.png")) > 127
        try:
            canvas = Canvas(**json.loads(sample.read_upstream(prefix + "canvas.json")))
        except (TypeError, ValueError) as exc:
            raise SampleError("BadUpstream", f"{prefix}canvas.json: {exc}") from None
        result = d.model(rgb)
        frames = outpaint_frames(rgb, border, canvas, result.depth, result.K, result.confidence)
    else:
        rgb = process_image(decode_rgb(sample.read_source()), d.settings.max_resolution)
        result = d.model(rgb)
        frames = input_only_frames(rgb, result.depth, result.K, result.confidence)
    out = d.ctx.sample_prefix(sample.id)
    sample.write(out + "frames.npz", frames_to_npz(frames))
    sample.write(out + "depth.png", encode_png(depth_preview(result.depth)))
    settings = d.settings.depth
    model = depth_model(settings)
    # MoGe gives a mask (dpt_conf_mask is then MoGe's); Depth Pro and Depth Anything V2 give none, and
    # dpt_conf_mask then means "valid depth" (depth > 0).
    confidence = "model" if result.confidence is not None else "valid depth (the backend has no confidence)"
    info = {"fovDegrees": result.fov_degrees, "fovSource": result.fov_source, "K": result.K.tolist(),
            "frames": [f.name for f in frames], "backend": settings.depth_backend, "model": model,
            "dptConfMask": confidence, "depthRange": depth_range(result.depth)}
    sample.write(out + "depth.json", json.dumps(info, indent=2).encode())
    sample.params.update(fovDegrees=result.fov_degrees, fovSource=result.fov_source, frames=info["frames"],
                         dptConfMask=confidence, **model_params(d.models))


DEPTH = SampleStage("depth", load, estimate, made_by=made_by)
