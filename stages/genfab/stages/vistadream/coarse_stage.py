"""Stage `coarse` (the lab's vistadream `_coarse`): grow the scene with inpainted views along the trajectory.

Per attempt (up to `nFrames`): render the hole mask of every pose of the dense trajectory
(`nFrames x coarseDenseMultiplier` poses, each view `coarseMargin` pixels larger on every side), pick
one with the selection policy, fill its holes with FluxFill, predict its depth, align that depth to
the rendered one (affine + smooth connection), recompute the masks, add the new Gaussians and train
`coarseIterations` steps (the new view's Gaussians only, as the lab's `GS_Train_Tool`: the scene's
earlier Gaussians stay as their own training left them). The inpainter, the depth model and the scene
live in this one Pod.

Writes, under `{sample}/coarse/`: `scene.ply`, `frames.npz` (with the added views),
`coarse_summary.json` (the seed's `[COARSE] Summary`, and `[COARSE][DIAG]` when selection stopped)
and `views/<k>.png` (each added view: the render with its holes, and the fill)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from genfab.api.pipelines.vistadream import CoarseSettings
from genfab.stages.common.imaging import encode_png, to_uint8
from genfab.stages.flux import ALIGN
from genfab.stages.models.base import Held, hold, model_params
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import Sample, SampleStage, StageContext
from genfab.stages.scene.align import align_depth
from genfab.stages.scene.frames import Frame, masks_from_depth
from genfab.stages.scene.growing import scene_scale
from genfab.stages.scene.io import read_frames, read_splats, stage_prefix, write_scene
from genfab.stages.vistadream.depth_stage import load_depth_model
from genfab.stages.vistadream.outpaint_stage import load_fill
from genfab.stages.vistadream.selection import AddedFrame, CoarseSummary, Policy, hint, select_next
from genfab.stages.vistadream.trajectory import scene_extent, trajectory

if TYPE_CHECKING:
    from genfab.stages.flux.fill import FluxFill
    from genfab.stages.gaussians.core import TrainSettings
    from genfab.stages.scene.depth import DepthPredictor
    from genfab.stages.scene.growing import GrowingScene

NAME = "coarse"  # the stage's name in the pipeline, and its output folder per sample
log = logging.getLogger("genfab.stages")


class Fill(Protocol):
    """FluxFill's call (`genfab.stages.flux.fill.FluxFill`): uint8 RGB, holes (True = paint), seed."""

    def __call__(self, rgb: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray: ...


def view_geometry(frame: Frame, margin: int) -> tuple[np.ndarray, int, int]:
    """(K, width, height) of candidate views: the reference frame's width and height each grown by
    `margin` pixels once, as the lab's `pose_to_frame` does (rounded up to FluxFill's 32-pixel grid when
    the sum is off it), principal point moved to the new centre."""
    width = ALIGN * -(-(frame.width + margin) // ALIGN)
    height = ALIGN * -(-(frame.height + margin) // ALIGN)
    K = np.array(frame.intrinsic, dtype=np.float64, copy=True)
    K[0, 2] += (width - frame.width) / 2
    K[1, 2] += (height - frame.height) / 2
    return K, width, height


INITIAL_FRAMES = 2
"""The input and outpainting views the scene holds before coarse expansion (`nFrames` counts them)."""

@dataclass(frozen=True)
class View:
    """The candidate views' camera: intrinsics and size (every pose of the trajectory shares them)."""

    K: np.ndarray
    width: int
    height: int


def expand(scene: GrowingScene, poses: np.ndarray, view: View, policy: Policy, attempts: int, iterations: int,
           fill: Fill, predict: DepthPredictor, seed: int) -> tuple[CoarseSummary, list[np.ndarray]]:
    """The seed's coarse loop on a scene in memory (`poses`: (N, 4, 4) world-to-camera): per attempt,
    the hole ratio of every pose, the policy's choice, then fill, depth, alignment, masks, new
    Gaussians and `iterations` of training. Returns the summary and, per added view, the render with
    its holes beside the fill."""
    from genfab.stages.scene.growing import HOLE_ALPHA

    summary = CoarseSummary(attempts=attempts)
    selected: list[int] = []
    views: list[np.ndarray] = []
    for attempt in range(attempts):
        ratios = scene.hole_ratios(poses, view.K, view.width, view.height)
        choice = select_next(ratios, selected, policy)
        if choice.index is None:
            assert choice.diagnosis is not None
            summary.diagnosis, summary.hint = choice.diagnosis, hint(choice.diagnosis, policy)
            break
        selected.append(choice.index)
        pose = poses[choice.index]
        rendered_view = scene.render(pose, view.K, view.width, view.height)
        holes = rendered_view.alpha < HOLE_ALPHA
        rendered = to_uint8(rendered_view.rgb)
        filled = fill(rendered, holes, seed=seed + 1 + attempt)
        result = predict(filled)
        depth = align_depth(rendered_view.depth, result.depth, holes)
        wo_edge, conf = masks_from_depth(depth, holes, result.confidence)
        added = scene.add_frame(Frame(f"coarse_{attempt:02d}", filled, depth, holes, wo_edge, conf, view.K, pose))
        scene.train(iterations)
        summary.frames.append(AddedFrame(choice.index, round(float(choice.ratio or 0.0), 5), int(holes.sum()),
                                         int(wo_edge.sum()), added, choice.fallback))
        views.append(np.concatenate([rendered, filled], axis=1))
    return summary, views


@dataclass(frozen=True)
class Expander:
    """What a coarse worker calls: the FLUX fill and the depth model (a shared worker's, with outpaint and
    depth), the 3DGS settings and the GPU."""

    fill: FluxFill
    predict: DepthPredictor
    train: TrainSettings
    device: Any


Coarse = Held[CoarseSettings, Expander]


def load(settings: CoarseSettings, ctx: StageContext) -> Coarse:
    from genfab.stages.gaussians.core import TrainSettings

    return hold(settings, ctx, lambda models, s: Expander(load_fill(models, s.flux), load_depth_model(models, s.depth),
                                                         TrainSettings.of(s.gaussians), require_cuda(ctx)),
                require_gpu=True)


def expand_scene(held: Coarse, sample: Sample) -> None:
    from genfab.stages.scene.growing import GrowingScene

    s, c, t = held.settings, held.settings.coarse, held.settings.trajectory
    frames = read_frames(sample, "gaussians")
    scene = GrowingScene(held.model.train, held.model.device, scene_scale(frames[0].dpt), freeze_trained=True)
    scene.load(read_splats(sample, "gaussians"), frames)
    reference = next((f for f in frames if f.name == "outpaint"), frames[0])
    K, width, height = view_geometry(reference, c.coarse_margin)
    extent = scene_extent(frames[0].dpt, frames[0].intrinsic, t.traj_max_percentage)
    poses = trajectory(t.traj_type, c.n_frames * c.coarse_dense_multiplier, extent, t.traj_forward_ratio,
                       t.traj_backward_ratio)
    policy = Policy(c.coarse_min_inpaint_ratio, c.coarse_max_inpaint_ratio, c.coarse_adjacent_exclusion,
                    c.coarse_fallback_mode)
    prefix = stage_prefix(sample.id, NAME)
    started = time.perf_counter()
    # nFrames counts the scene's frames after expansion, the input and outpainting views among them: the
    # lab's script adds `n_frames - 2` (`for frame_idx in range(self.config.n_frames - 2)`)
    attempts = max(c.n_frames - INITIAL_FRAMES, 0)
    summary, views = expand(scene, poses, View(K, width, height), policy, attempts, c.coarse_iterations,
                            held.model.fill, held.model.predict, sample.seed(s.flux.seed))
    for attempt, picture in enumerate(views):
        sample.write_later(f"{prefix}views/{attempt:02d}.png", partial(encode_png, picture))
    summary.scene_frames = summary.gaussian_frames = len(scene.frames)
    summary.total_splats = len(scene)
    if c.coarse_print_summary:
        for line in summary.lines():
            log.info(line)
    counts = write_scene(sample, prefix, scene.export(), scene.frames)
    sample.write(prefix + "coarse_summary.json",
                 json.dumps({**summary.to_dict(), "status": summary.status(),
                             "seconds": round(time.perf_counter() - started, 3), "scene": counts},
                            indent=2).encode())
    sample.notes.append(summary.status())  # the stage's status message: tune from it without the logs
    sample.params.update(coarse=summary.status(), selectedExtraFrames=len(summary.frames),
                         quality={"coarseFrames": len(summary.frames)},
                         fluxRuntime=held.model.fill.applied.options, **model_params(held.models))


COARSE = SampleStage(NAME, load, expand_scene)
