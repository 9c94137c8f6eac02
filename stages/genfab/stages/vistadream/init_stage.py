"""Stage `gaussians` of vistadream (seed 001 `_initialize`, the end): the Gaussian scene from the
depth stage's frames, trained `initIterations` steps. Writes, under `{sample}/gaussians/`:
`scene.ply` (3DGS PLY), `frames.npz` (the frames it was trained on, for `coarse` and `render`),
`preview.png` (the input view next to its render) and `metrics.json`."""

from __future__ import annotations

import json
import time

import numpy as np

from genfab.api.pipelines.vistadream import VistaGaussiansSettings
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import Sample, Stage, StageContext
from genfab.stages.vistadream.images import encode_png
from genfab.stages.vistadream.scene_io import read_frames, stage_prefix, to_uint8, write_scene


def scene_scale(depth: np.ndarray) -> float:
    """The scene's scale for the means' learning rate: the median depth of the first view."""
    valid = depth[depth > 0]
    return float(np.median(valid)) if valid.size else 1.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


class InitStage(Stage[VistaGaussiansSettings]):
    name = "gaussians"

    def setup(self, ctx: StageContext) -> None:
        from genfab.stages.gaussians.train import TrainSettings, seed_everything

        self.train_settings = TrainSettings.of(self.settings.gaussians)
        self.ctx = ctx
        seed_everything(self.train_settings.seed)
        self.device = require_cuda(ctx)

    def process(self, sample: Sample) -> None:
        from genfab.stages.vistadream.scene import VistaScene

        frames = read_frames(sample, "depth")
        started = time.perf_counter()
        scene = VistaScene(self.train_settings, self.device, scene_scale(frames[0].dpt))
        added = {frame.name: scene.add_frame(frame) for frame in frames}
        stats = scene.train(self.settings.init_iterations)
        seconds = time.perf_counter() - started
        prefix = stage_prefix(sample.id, self.name)
        counts = write_scene(sample, prefix, scene.export(), scene.frames, self.ctx.workdir)
        first = frames[0]
        view = scene.render(first.cam_T_world, first.intrinsic, first.width, first.height)
        sample.write(prefix + "preview.png", encode_png(np.concatenate([first.rgb, to_uint8(view.rgb)], axis=1)))
        metrics = {**counts, "added_splats": added, **stats, "seconds": round(seconds, 3),
                   "input_view_psnr": round(psnr(view.rgb, first.rgb / 255.0), 3)}
        sample.write(prefix + "metrics.json", json.dumps(metrics, indent=2).encode())
        sample.params.update(splats=counts["splats"], inputViewPsnr=metrics["input_view_psnr"])
