"""Stage `gaussians` of vistadream (the lab's vistadream `_initialize`, the end): the Gaussian scene from the
depth stage's frames, trained `initIterations` steps. Writes, under `{sample}/gaussians/`:
`scene.ply` (3DGS PLY), `frames.npz` (the frames it was trained on, for `coarse` and `render`),
`preview.png` (the input view next to its render) and `metrics.json`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genfab.api.pipelines.vistadream import VistaGaussiansSettings
from genfab.stages.common.imaging import encode_png, psnr, to_uint8
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import Sample, SampleError, SampleStage, StageContext
from genfab.stages.scene.growing import scene_scale
from genfab.stages.scene.io import read_frames, stage_prefix, write_scene

if TYPE_CHECKING:
    from genfab.stages.gaussians.core import TrainSettings

NAME = "gaussians"  # the stage's name in the pipeline, and its output folder per sample


@dataclass(frozen=True)
class Trainer:
    """What a worker of the stage holds: the 3DGS settings, the GPU and the steps a scene is trained."""

    train: TrainSettings
    device: Any
    iterations: int


def load(settings: VistaGaussiansSettings, ctx: StageContext) -> Trainer:
    from genfab.stages.gaussians.core import TrainSettings, seed_everything

    train = TrainSettings.of(settings.gaussians)
    seed_everything(train.seed)
    return Trainer(train, require_cuda(ctx), settings.init_iterations)


def initialise(trainer: Trainer, sample: Sample) -> None:
    from genfab.stages.scene.growing import GrowingScene

    frames = read_frames(sample, "depth")
    started = time.perf_counter()
    scene = GrowingScene(trainer.train, trainer.device, scene_scale(frames[0].dpt), freeze_trained=True)
    added = {frame.name: scene.add_frame(frame) for frame in frames}
    if not len(scene):
        raise SampleError("NoGaussians", f"no pixel of {', '.join(added)} is off a depth edge (with a confident "
                                         "depth, in the outpaint frame): inpaint_wo_edge is empty, the depth model "
                                         "saw no surface to start from")
    stats = scene.train(trainer.iterations)
    seconds = time.perf_counter() - started
    prefix = stage_prefix(sample.id, NAME)
    counts = write_scene(sample, prefix, scene.export(), scene.frames)
    first = frames[0]
    view = scene.render(first.cam_T_world, first.intrinsic, first.width, first.height)
    sample.write(prefix + "preview.png", encode_png(np.concatenate([first.rgb, to_uint8(view.rgb)], axis=1)))
    metrics = {**counts, "added_splats": added, **stats, "seconds": round(seconds, 3),
               "input_view_psnr": round(psnr(view.rgb, first.rgb / 255.0), 3)}
    sample.write(prefix + "metrics.json", json.dumps(metrics, indent=2).encode())
    sample.params.update(splats=counts["splats"], inputViewPsnr=metrics["input_view_psnr"],
                         quality={"inputViewPsnr": metrics["input_view_psnr"], "gaussians": counts["splats"]})

INIT = SampleStage(NAME, load, initialise)
