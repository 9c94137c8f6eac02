"""Stage `outpaint` (the lab's vistadream `_initialize`, first half): the input fitted to `maxResolution`
(`process_image`), a border of `expansionPercent` added (`add_border_and_mask`) and filled once by
FluxFill. Writes, under `{sample}/outpaint/`: `input.png` (the fitted input), `outpaint.png` (the
filled canvas), `mask.png` (255 = painted border) and `canvas.json` (where the input sits)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from genfab.api.pipelines.vistadream import OutpaintSettings
from genfab.api.scenejob import VistaFlux
from genfab.stages.common.imaging import decode_rgb, encode_png
from genfab.stages.models.base import Held, ModelSet, hold, model_params
from genfab.stages.runtime import Sample, SampleStage, StageContext
from genfab.stages.vistadream.canvas import add_border_and_mask, process_image

if TYPE_CHECKING:
    from genfab.stages.flux.fill import FluxFill

OUTPAINT_VIEW = 0
"""The view number the outpainting's seed derives from (coarse views are 1, 2, ...)."""


def load_fill(models: ModelSet, f: VistaFlux) -> FluxFill:
    """The fill of outpaint and coarse: one model a shared worker's two stages load once (`share`)."""
    from genfab.stages.flux.fill import FluxFill

    return models.load("inpainter", f.flux_fill_model,
                       lambda path, placement: FluxFill(path, placement, f.flux_steps, f.flux_guidance,
                                                        f.flux_runtime, f.flux_prompt),
                       share=f.model_dump_json())


Fill = Held[OutpaintSettings, "FluxFill"]
"""What a worker of the stage holds: its settings and the FLUX fill."""


def load(settings: OutpaintSettings, ctx: StageContext) -> Fill:
    return hold(settings, ctx, lambda models, s: load_fill(models, s.flux))


def outpaint(f: Fill, sample: Sample) -> None:
    s = f.settings
    rgb = process_image(decode_rgb(sample.read_source()), s.max_resolution)
    image, border, canvas = add_border_and_mask(rgb, s.expansion_percent)
    started = time.perf_counter()
    filled = f.model(image, border, seed=sample.seed(s.flux.seed) + OUTPAINT_VIEW)
    sample.timings["fillSeconds"] = round(time.perf_counter() - started, 3)
    prefix = f.ctx.sample_prefix(sample.id)
    sample.write(prefix + "input.png", encode_png(rgb))
    sample.write(prefix + "outpaint.png", encode_png(filled))
    sample.write(prefix + "mask.png", encode_png(border))
    sample.write(prefix + "canvas.json", json.dumps(asdict(canvas), indent=2).encode())
    sample.params.update(canvas=[canvas.width, canvas.height], input=[canvas.input_width, canvas.input_height],
                         fluxRuntime=f.model.applied.options, **model_params(f.models))


OUTPAINT = SampleStage("outpaint", load, outpaint, made_by=lambda f: f"flux-fill:{f.settings.flux.flux_fill_model}")
