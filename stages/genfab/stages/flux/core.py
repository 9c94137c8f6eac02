"""What genfab's FLUX cores share: diffusers' pipeline components driven by genfab's own denoising loop.

Why not the pipelines' `__call__`:
- a prompt's T5-XXL and CLIP embeddings are encoded once (`Prompt`) and reused across images; the fill
  stages then free the text encoders (about 10 GB in bf16), which leaves room for the depth model and
  the scene beside the transformer;
- the transformer's speed options (`speed.apply`: compilation, CUDA graphs, attention kernel, FP8,
  first-block cache) need control of each step: diffusers 0.42's fill pipeline opens no cache
  context (the first-block cache refuses to run), and no pipeline marks CUDA-graph step boundaries.

With every option off the loop is the pipeline's, step for step: the same timesteps and shift, the
same scheduler, the same transformer inputs, the same VAE decoding (the CPU tests compare the cores
with `FluxPipeline` and `FluxFillPipeline` on tiny models).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genfab.api.scenejob import FluxRuntime
from genfab.stages.common.imaging import to_uint8 as float_to_uint8
from genfab.stages.flux import speed
from genfab.stages.flux.speed import apply
from genfab.stages.models.placement import Placement

MAX_SEQUENCE = 512
"""T5 tokens of a prompt (FLUX.1-dev's limit)."""


@dataclass(frozen=True)
class Picture:
    image: torch.Tensor
    """(1, 3, H, W) float32 in [0, 1], on the CPU."""
    latents: torch.Tensor
    """The final packed latents (float32, CPU): the benchmarks' deviation measure."""


@dataclass(frozen=True)
class Prompt:
    """A prompt's T5 and CLIP embeddings, encoded once."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor

    @classmethod
    @torch.inference_mode()
    def encode(cls, pipe: Any, prompt: str, device: torch.device) -> Prompt:
        embeds, pooled, text_ids = pipe.encode_prompt(prompt, prompt_2=None, device=device,
                                                      max_sequence_length=MAX_SEQUENCE)
        return cls(embeds, pooled, text_ids)


def release_text_encoders(pipe: Any) -> None:
    """The prompts are encoded: free the text encoders' memory (the GPU's, or the host's under offload)."""
    for name in ("text_encoder", "text_encoder_2"):
        if getattr(pipe, name, None) is not None:
            pipe.register_modules(**{name: None})
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class FluxCore:
    """A FLUX pipeline's transformer, VAE and scheduler under genfab's loop; the transformer gets
    `options` applied in place (with compilation, the VAE's group norms are compiled too)."""

    def __init__(self, pipe: Any, placement: Placement, options: FluxRuntime) -> None:
        self.pipe = pipe
        self.device: torch.device = placement.device
        self.transformer: Any = pipe.transformer
        self.denoiser, self.applied = apply(self.transformer, options, self.device, placement.offload)
        if self.applied.compiled and speed.VAE_NORMS:
            speed.compile_group_norms(pipe.vae)
            self.applied.options.append("vae-group-norms-compiled")

    def timesteps(self, height: int, width: int, steps: int) -> torch.Tensor:
        """The pipelines' schedule: `steps` sigmas from 1 to 1/steps, shifted by the image's token count."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        pipe = self.pipe
        config = pipe.scheduler.config
        tokens = (height // pipe.vae_scale_factor // 2) * (width // pipe.vae_scale_factor // 2)
        mu = calculate_shift(tokens, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                             config.get("base_shift", 0.5), config.get("max_shift", 1.15))
        sigmas = np.linspace(1.0, 1 / steps, steps).tolist()
        timesteps: torch.Tensor = retrieve_timesteps(pipe.scheduler, steps, self.device, sigmas=sigmas, mu=mu)[0]
        return timesteps

    def latent_shape(self, channels: int, height: int, width: int) -> tuple[int, int, int, int]:
        scale = self.pipe.vae_scale_factor * 2
        return 1, channels, 2 * (height // scale), 2 * (width // scale)

    def guidance(self, scale: float) -> torch.Tensor | None:
        """The distilled guidance input (FLUX.1-dev and Fill-dev embed it; others take none)."""
        if not self.transformer.config.guidance_embeds:
            return None
        return torch.full([1], scale, device=self.device, dtype=torch.float32)

    def denoise(self, latents: torch.Tensor, condition: torch.Tensor | None, image_ids: torch.Tensor,
                timesteps: torch.Tensor, guidance: torch.Tensor | None, prompt: Prompt) -> torch.Tensor:
        """The denoising loop; `condition` (packed, per token) is concatenated to the latents' channels
        at every step (the fill's masked image and mask), None for text to image."""
        if self.applied.cache:  # a fresh cache per image: no residuals carried over from the last one
            self.transformer._reset_stateful_cache()
        self.pipe.scheduler.set_begin_index(0)  # the step index without a device-to-host lookup per step
        with self.transformer.cache_context("image") if self.applied.cache else nullcontext():
            for t in timesteps:
                if self.applied.cudagraphs:
                    torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
                hidden = latents if condition is None else torch.cat((latents, condition), dim=2)
                timestep = t.expand(latents.shape[0]).to(latents.dtype) / 1000
                noise = self.denoiser(hidden_states=hidden, timestep=timestep, guidance=guidance,
                                      pooled_projections=prompt.pooled, encoder_hidden_states=prompt.embeds,
                                      txt_ids=prompt.text_ids, img_ids=image_ids, return_dict=False)[0]
                latents = self.pipe.scheduler.step(noise, t, latents, return_dict=False)[0]
        return latents

    def decode(self, latents: torch.Tensor, height: int, width: int) -> Picture:
        pipe = self.pipe
        unpacked = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        unpacked = unpacked / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        decoded = pipe.vae.decode(unpacked, return_dict=False)[0]
        picture: torch.Tensor = pipe.image_processor.postprocess(decoded, output_type="pt")
        return Picture(picture.float().cpu(), latents.float().cpu())


def to_uint8(picture: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded."""
    return float_to_uint8(picture[0].permute(1, 2, 0).numpy())
