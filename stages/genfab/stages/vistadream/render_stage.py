"""Stage `render` (the lab's vistadream `_render_splats`): the final trajectory, the PLY and the recording.

The trajectory has `min(renderFrames, 25 x frames in the scene)` poses of `trajType`, seen through
the input camera. Writes, under `{sample}/render/`: `video.mp4` (RGB) and `depth.mp4` (coloured
depth, one colour scale for the whole trajectory), the 3DGS PLY at `plyName`, `scene.rrd` (the Rerun
recording: see `recording`) and `summary.json` (frames, Gaussians, render settings, and coarse
expansion's summary when it ran)."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genfab.api.pipelines.vistadream import RenderSettings
from genfab.stages.common.imaging import depth_preview, inverse_depth_bounds, to_uint8
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import Sample, SampleStage, StageContext
from genfab.stages.scene.growing import scene_scale
from genfab.stages.scene.io import read_frames, read_splats, stage_prefix
from genfab.stages.vistadream.trajectory import scene_extent, trajectory

if TYPE_CHECKING:
    from genfab.stages.gaussians.core import TrainSettings

NAME = "render"  # the stage's name in the pipeline, and its output folder per sample

log = logging.getLogger("genfab.stages")
FRAMES_PER_VIEW = 25


def render_count(render_frames: int, scene_frames: int) -> int:
    """The lab's `_render_splats` rule: up to `renderFrames`, 25 per frame of a scene of three frames or
    more; a scene of one or two frames (no coarse views) renders all `renderFrames`."""
    return min(render_frames, FRAMES_PER_VIEW * scene_frames if scene_frames > 2 else render_frames)


@dataclass(frozen=True)
class Renderer:
    """What a worker of the stage holds: the render settings, the 3DGS settings, the GPU and the stage whose
    scene it renders."""

    settings: RenderSettings
    train: TrainSettings
    device: Any
    upstream: str
    """coarse, or gaussians when coarse expansion is off."""


def load(settings: RenderSettings, ctx: StageContext) -> Renderer:
    from genfab.stages.gaussians.core import TrainSettings

    return Renderer(settings, TrainSettings.of(settings.gaussians), require_cuda(ctx), ctx.upstream[0].name)


def render(renderer: Renderer, sample: Sample) -> None:
    from genfab.stages.gaussians.ply import non_finite_rows, write_ply
    from genfab.stages.gaussians.stage import ply_key, write_video
    from genfab.stages.scene.growing import GrowingScene
    from genfab.stages.vistadream.recording import TrajectoryView, write_recording

    s, t = renderer.settings, renderer.settings.trajectory
    started = time.perf_counter()
    frames = read_frames(sample, renderer.upstream)
    splats = read_splats(sample, renderer.upstream)
    scene = GrowingScene(renderer.train, renderer.device, scene_scale(frames[0].dpt), freeze_trained=True)
    scene.load(splats, frames)
    camera = frames[0]
    extent = scene_extent(camera.dpt, camera.intrinsic, t.traj_max_percentage)
    poses = trajectory(t.traj_type, render_count(s.render_frames, len(frames)), extent, t.traj_forward_ratio,
                       t.traj_backward_ratio)
    views = []
    for pose in poses:
        r = scene.render(pose, camera.intrinsic, camera.width, camera.height)
        views.append(TrajectoryView(pose, camera.intrinsic, to_uint8(r.rgb), r.depth))
    # Everything written here is encoded off the stage's thread (`Sample.write_file_later`): the two
    # videos, the PLY and the recording encode side by side while the next scene renders.
    local = sample.scratch
    prefix = stage_prefix(sample.id, NAME)
    outputs: dict[str, str] = {}
    notes = []
    if importlib.util.find_spec("cv2") is not None:
        rgb = [v.rgb for v in views]
        sample.write_file_later(prefix + "video.mp4", local / "video.mp4", lambda path: write_video(path, rgb))
        outputs["video"] = prefix + "video.mp4"
        depths = [v.depth for v in views]
        bounds = inverse_depth_bounds(depths)
        sample.write_file_later(prefix + "depth.mp4", local / "depth.mp4", lambda path: write_video(
            path, [depth_preview(d, bounds) for d in depths]))
        outputs["depthVideo"] = prefix + "depth.mp4"
    else:
        notes.append("no videos: opencv is not installed in this image (genfab[scene] has it)")
        log.warning(notes[-1])
    dropped = non_finite_rows(splats)
    sample.write_file_later(prefix + ply_key(s.ply_name), local / "scene.ply", lambda path: write_ply(path, splats))
    outputs["ply"] = prefix + ply_key(s.ply_name)
    if importlib.util.find_spec("rerun") is not None:  # genfab[scene] installs it; say so if an image lacks it
        sample.write_file_later(prefix + "scene.rrd", local / "scene.rrd", lambda path: write_recording(
            path, frames, splats.means, splats.sh0, views))
        outputs["recording"] = prefix + "scene.rrd"
    else:
        notes.append("no Rerun recording: rerun-sdk is not installed in this image (genfab[scene] has it)")
        log.warning(notes[-1])
    summary: dict[str, Any] = {
        "sample": sample.id, "frames": [f.name for f in frames], "splats": len(splats) - dropped,
        "renderFrames": len(views), "trajType": t.traj_type, "coverage": round(coverage(views), 4),
        "outputs": outputs, "notes": notes,
        "seconds": round(time.perf_counter() - started, 3)}
    if renderer.upstream == "coarse":
        coarse = json.loads(sample.read_upstream(stage_prefix(sample.id, "coarse") + "coarse_summary.json"))
        summary["coarse"] = coarse
    sample.write(prefix + "summary.json", json.dumps(summary, indent=2).encode())
    sample.params.update(splats=summary["splats"], renderFrames=len(views),
                         **({"coarse": summary["coarse"].get("status")} if "coarse" in summary else {}))

RENDER = SampleStage(NAME, load, render)


def coverage(views: list[Any]) -> float:
    """Mean fraction of rendered pixels with depth along the trajectory (how much of it the scene covers)."""
    return float(np.mean([(v.depth > 0).mean() for v in views])) if views else 0.0
