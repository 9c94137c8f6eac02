"""Stage `gaussians` of vistadream (the lab's vistadream `_initialize`, the end): the Gaussian scene from the
depth stage's frames, trained `initIterations` steps. Writes, under `{sample}/gaussians/`:
`scene.ply` (3DGS PLY), `frames.npz` (the frames it was trained on, for `coarse` and `render`),
`preview.png` (the input view next to its render) and `metrics.json`."""

from __future__ import annotations

import json
import time

import numpy as np

from genfab.api.pipelines.vistadream import VistaGaussiansSettings
from genfab.stages.common.imaging import encode_png, psnr, to_uint8
from genfab.stages.models.cuda import require_cuda
from genfab.stages.runtime import Sample, SampleError, Stage, StageContext
from genfab.stages.scene.growing import scene_scale
from genfab.stages.scene.io import read_frames, stage_prefix, write_scene


class InitStage(Stage[VistaGaussiansSettings]):
    name = "gaussians"

    def setup(self, ctx: StageContext) -> None:
        from genfab.stages.gaussians.core import TrainSettings, seed_everything

        self.train_settings = TrainSettings.of(self.settings.gaussians)
        self.ctx = ctx
        seed_everything(self.train_settings.seed)
        self.device = require_cuda(ctx)

    def process(self, sample: Sample) -> None:
        from genfab.stages.scene.growing import GrowingScene

        frames = read_frames(sample, "depth")
        started = time.perf_counter()
        scene = GrowingScene(self.train_settings, self.device, scene_scale(frames[0].dpt), freeze_trained=True)
        added = {frame.name: scene.add_frame(frame) for frame in frames}
        if not len(scene):
            raise SampleError("NoGaussians", f"no pixel of {', '.join(added)} has a confident depth off its edges "
                                             "(inpaint_wo_edge is empty): the depth model saw no surface to start from")
        stats = scene.train(self.settings.init_iterations)
        seconds = time.perf_counter() - started
        prefix = stage_prefix(sample.id, self.name)
        counts = write_scene(sample, prefix, scene.export(), scene.frames)
        first = frames[0]
        view = scene.render(first.cam_T_world, first.intrinsic, first.width, first.height)
        sample.write(prefix + "preview.png", encode_png(np.concatenate([first.rgb, to_uint8(view.rgb)], axis=1)))
        metrics = {**counts, "added_splats": added, **stats, "seconds": round(seconds, 3),
                   "input_view_psnr": round(psnr(view.rgb, first.rgb / 255.0), 3)}
        sample.write(prefix + "metrics.json", json.dumps(metrics, indent=2).encode())
        sample.params.update(splats=counts["splats"], inputViewPsnr=metrics["input_view_psnr"],
                             quality={"inputViewPsnr": metrics["input_view_psnr"], "gaussians": counts["splats"]})
