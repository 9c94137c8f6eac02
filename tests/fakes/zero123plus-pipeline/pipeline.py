"""Stand-in for Zero123++'s diffusers custom pipeline (the `pipeline.py` of sudo-ai/zero123plus-pipeline,
which its authors publish and genfab loads from the model location with `custom_pipeline=`): the same
class name, constructor (its eight components and `ramping_coefficients`) and call (a PIL image in;
`.images[0]` a 640 x 960 grid of six views, 3 rows x 2 columns, at its default size). What it computes
is not Zero123++: each view is the condition image resized to the tile with its top rows painted the
grey `40 x` the view's index, so a test knows which view landed where. A run on it is never a Zero123++
run. The GPU tier runs the real pipeline.py
(tests/gpu/test_zero123_gpu.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

BAND = 4
"""Rows at the top of each view painted with its index's grey."""


class Zero123PlusPipeline(DiffusionPipeline):
    def __init__(self, vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any, vision_encoder: Any,
                 feature_extractor_clip: Any, feature_extractor_vae: Any,
                 ramping_coefficients: list[float] | None = None, safety_checker: Any = None) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                              safety_checker=None, vision_encoder=vision_encoder,
                              feature_extractor_clip=feature_extractor_clip,
                              feature_extractor_vae=feature_extractor_vae)
        self.register_to_config(ramping_coefficients=ramping_coefficients)

    def __call__(self, image: Image.Image, prompt: str = "", *args: Any, guidance_scale: float = 4.0,
                 width: int = 640, height: int = 960, num_inference_steps: int = 28, **kwargs: Any
                 ) -> ImagePipelineOutput:
        tile = np.asarray(image.convert("RGB").resize((width // 2, height // 3)))
        views = []
        for index in range(6):
            view = tile.copy()
            view[:BAND] = 40 * index
            views.append(view)
        grid = np.concatenate([np.concatenate(views[row * 2:row * 2 + 2], axis=1) for row in range(3)], axis=0)
        return ImagePipelineOutput(images=[Image.fromarray(grid)])
