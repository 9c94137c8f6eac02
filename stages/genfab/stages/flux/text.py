"""genfab's FLUX text-to-image core: diffusers' `FluxPipeline` components (FLUX.1-dev) under genfab's
loop (`core`), with the same speed options as the fill. Worldexplorer's scaffold generates its
cardinal views with it.

With every speed option off an image is `FluxPipeline.__call__`'s (one prompt, no true CFG), step for
step: the same noise from the same generator, the same schedule and decoding (the CPU test compares
the two on the tiny model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.api.scenejob import FluxRuntime
from genfab.stages.flux import ALIGN
from genfab.stages.flux.core import FluxCore, Picture, Prompt, to_uint8
from genfab.stages.flux.speed import Applied
from genfab.stages.models.placement import Placement


class FluxTextCore(FluxCore):
    """Generates images from encoded prompts with a `FluxPipeline`'s components."""

    @torch.inference_mode()
    def generate(self, prompt: Prompt, height: int, width: int, steps: int, guidance: float,
                 generator: torch.Generator) -> Picture:
        from diffusers.utils.torch_utils import randn_tensor

        if height % ALIGN or width % ALIGN:
            raise ValueError(f"FLUX needs sides that are multiples of {ALIGN}, got {width}x{height}")
        pipe = self.pipe
        channels = self.transformer.config.in_channels // 4
        shape = self.latent_shape(channels, height, width)
        dtype = prompt.embeds.dtype
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        latents = pipe._pack_latents(noise, 1, channels, shape[2], shape[3])
        image_ids = pipe._prepare_latent_image_ids(1, shape[2] // 2, shape[3] // 2, self.device, dtype)
        timesteps = self.timesteps(height, width, steps)
        latents = self.denoise(latents, None, image_ids, timesteps, self.guidance(guidance), prompt)
        return self.decode(latents, height, width)


class FluxText:
    """The stages' text to image: a prompt in, (H, W, 3) uint8 out. The text encoders stay loaded
    (each sample brings its own prompts); prompts already seen are not encoded again."""

    def __init__(self, path: Path, placement: Placement, steps: int, guidance: float,
                 options: FluxRuntime) -> None:
        from diffusers import FluxPipeline

        pipe: Any = FluxPipeline.from_pretrained(path, dtype=placement.dtype)  # type: ignore[no-untyped-call]
        self._setup(pipe, placement, steps, guidance, options)

    @classmethod
    def from_pipeline(cls, pipe: Any, placement: Placement, steps: int, guidance: float,
                      options: FluxRuntime) -> FluxText:
        """Text to image around a pipeline already in memory (benchmarks: production size, random weights)."""
        text = cls.__new__(cls)
        text._setup(pipe, placement, steps, guidance, options)
        return text

    def _setup(self, pipe: Any, placement: Placement, steps: int, guidance: float, options: FluxRuntime) -> None:
        pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance = steps, guidance
        self.core = FluxTextCore(placement.place(pipe), placement, options)
        self.prompts: dict[str, Prompt] = {}

    @property
    def applied(self) -> Applied:
        return self.core.applied

    def encode(self, prompt: str) -> Prompt:
        if prompt not in self.prompts:
            self.prompts[prompt] = Prompt.encode(self.core.pipe, prompt, self.core.device)
        return self.prompts[prompt]

    def __call__(self, prompt: str, height: int, width: int, seed: int) -> np.ndarray:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        picture = self.core.generate(self.encode(prompt), height, width, self.steps, self.guidance, generator)
        return to_uint8(picture.image)
