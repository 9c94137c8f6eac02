"""genfab's FluxFill core: diffusers' `FluxFillPipeline` components under genfab's loop (`core`).

The fill's prompt is fixed per job (the seed fills with ""): it is encoded once at load and the text
encoders leave the GPU. With every speed option off the fill is `FluxFillPipeline.__call__`'s, step for
step: the same helpers prepare the noise, the mask and the masked-image latents from the same
generator (tests compare the two on the tiny model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.api.scenejob import FluxRuntime
from genfab.stages.flux import ALIGN
from genfab.stages.flux.core import FluxCore, Picture, Prompt, release_text_encoders, to_uint8
from genfab.stages.flux.speed import Applied
from genfab.stages.models.placement import Placement


class FluxFillCore(FluxCore):
    """Fills the masked part of images with a `FluxFillPipeline`'s components and one encoded prompt."""

    def __init__(self, pipe: Any, placement: Placement, options: FluxRuntime, prompt: Prompt) -> None:
        super().__init__(pipe, placement, options)
        self.prompt = prompt

    @torch.inference_mode()
    def fill(self, image: torch.Tensor, mask: torch.Tensor, steps: int, guidance: float,
             generator: torch.Generator) -> Picture:
        """`image` (1, 3, H, W) in [0, 1], `mask` (1, 1, H, W), 1 = paint; H and W multiples of ALIGN."""
        pipe, device = self.pipe, self.device
        height, width = image.shape[-2:]
        if height % ALIGN or width % ALIGN:
            raise ValueError(f"FluxFill needs sides that are multiples of {ALIGN}, got {width}x{height}")
        dtype = self.prompt.embeds.dtype
        init = pipe.image_processor.preprocess(image, height=height, width=width).to(torch.float32)
        timesteps = self.timesteps(height, width, steps)
        channels = pipe.vae.config.latent_channels
        latents, image_ids = self._initial_noise(channels, height, width, dtype, generator)
        mask_image = pipe.mask_processor.preprocess(mask, height=height, width=width)
        masked = (init * (1 - mask_image)).to(device=device, dtype=dtype)
        mask_latents, masked_latents = pipe.prepare_mask_latents(mask_image, masked, 1, channels, 1, height, width,
                                                                 dtype, device, generator)
        condition = torch.cat((masked_latents, mask_latents), dim=-1)
        latents = self.denoise(latents, condition, image_ids, timesteps, self.guidance(guidance), self.prompt)
        return self.decode(latents, height, width)

    def _initial_noise(self, channels: int, height: int, width: int, dtype: torch.dtype, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pipeline's `prepare_latents` at strength 1, without its VAE pass: it encodes the whole
        image, samples that latent, then scales it by 1 - sigma = 0 (a fill starts from pure noise).
        The sample's draw is made here too, so the noise that follows is the pipeline's, number for
        number (the CPU tests compare the two)."""
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipe
        shape = self.latent_shape(channels, height, width)
        randn_tensor(shape, generator=generator, device=self.device, dtype=pipe.vae.dtype)  # the skipped sample
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        image_ids = pipe._prepare_latent_image_ids(1, shape[2] // 2, shape[3] // 2, self.device, dtype)
        return pipe._pack_latents(noise, 1, channels, shape[2], shape[3]), image_ids


class FluxFill:
    """The stages' fill: uint8 RGB and a boolean mask in, the filled uint8 RGB out; unmasked pixels
    are the input's exactly (the VAE round trip would otherwise blur the whole picture)."""

    def __init__(self, path: Path, placement: Placement, steps: int, guidance: float, options: FluxRuntime,
                 prompt: str = "") -> None:
        from diffusers import FluxFillPipeline

        pipe: Any = FluxFillPipeline.from_pretrained(path, dtype=placement.dtype)  # type: ignore[no-untyped-call]
        self._setup(pipe, placement, steps, guidance, options, prompt)

    @classmethod
    def from_pipeline(cls, pipe: Any, placement: Placement, steps: int, guidance: float, options: FluxRuntime,
                      prompt: str = "") -> FluxFill:
        """The fill around a pipeline already in memory (benchmarks build production-size ones with random
        weights; nothing can be downloaded there)."""
        fill = cls.__new__(cls)
        fill._setup(pipe, placement, steps, guidance, options, prompt)
        return fill

    def _setup(self, pipe: Any, placement: Placement, steps: int, guidance: float, options: FluxRuntime,
               prompt: str) -> None:
        pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance = steps, guidance
        if placement.offload == "none":
            # Text encoders first, alone: encode, free them, then the transformer. The GPU never holds
            # T5-XXL and the transformer together (about 9 GiB less at the peak).
            for name in ("text_encoder", "text_encoder_2"):
                getattr(pipe, name).to(placement.device)
            encoded = Prompt.encode(pipe, prompt, placement.device)
            release_text_encoders(pipe)
            pipe = placement.place(pipe)
        else:  # the offload hooks move each component when it runs
            pipe = placement.place(pipe)
            encoded = Prompt.encode(pipe, prompt, placement.device)
            release_text_encoders(pipe)
        self.core = FluxFillCore(pipe, placement, options, encoded)

    @property
    def applied(self) -> Applied:
        return self.core.applied

    def __call__(self, rgb: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
        """`rgb` (H, W, 3) uint8 with H and W multiples of 32, `mask` (H, W) bool: True = paint."""
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
        mask_t = torch.from_numpy(mask.astype(np.float32))[None, None]
        generator = torch.Generator(device="cpu").manual_seed(seed)
        filled = to_uint8(self.core.fill(image, mask_t, self.steps, self.guidance, generator).image)
        return np.where(mask[..., None], filled, rgb)
