"""genfab's FluxFill core: diffusers' `FluxFillPipeline` components driven by genfab's own loop.

Why not `FluxFillPipeline.__call__`:
- the prompt is fixed per job (the seed fills with ""), so its T5-XXL and CLIP embeddings are encoded
  once at load and the text encoders (about 10 GB in bf16) leave the GPU: the coarse stage then has
  room for the depth model and the scene beside the transformer;
- the transformer's speed options (`speed.apply`: compilation, CUDA graphs, attention kernel, FP8,
  first-block cache) need control of each step: diffusers 0.42's fill pipeline opens no cache
  context (the first-block cache refuses to run) and cannot mark CUDA-graph step boundaries.

With every option off the loop is the pipeline's, step for step: the same helpers prepare the noise,
the mask and the masked-image latents from the same generator, the same scheduler steps them, the
same VAE decodes (tests compare the two on the tiny model).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.stages.flux import ALIGN, speed
from genfab.stages.flux.speed import Applied, RuntimeOptions, apply
from genfab.stages.models.placement import Placement

MAX_SEQUENCE = 512
"""T5 tokens of the prompt (FLUX.1-dev's limit)."""


@dataclass(frozen=True)
class Filled:
    image: torch.Tensor
    """(1, 3, H, W) float32 in [0, 1], on the CPU."""
    latents: torch.Tensor
    """The final packed latents (float32, CPU): the benchmark's deviation measure."""


@dataclass(frozen=True)
class Prompt:
    """A prompt's T5 and CLIP embeddings, encoded once per job (the prompt is fixed per job)."""

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
    """The prompt is encoded: free the text encoders' memory (the GPU's, or the host's under offload)."""
    for name in ("text_encoder", "text_encoder_2"):
        if getattr(pipe, name, None) is not None:
            pipe.register_modules(**{name: None})
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class FluxFillCore:
    """Fills the masked part of images with a `FluxFillPipeline`'s transformer, VAE and scheduler and
    one encoded prompt; the transformer gets `options` applied in place."""

    def __init__(self, pipe: Any, placement: Placement, options: RuntimeOptions, prompt: Prompt) -> None:
        self.pipe = pipe
        self.device: torch.device = placement.device
        self.prompt = prompt
        self.transformer: Any = pipe.transformer
        self.denoiser, self.applied = apply(self.transformer, options, self.device, placement.offload)
        if self.applied.compiled and speed.VAE_NORMS:
            speed.compile_group_norms(pipe.vae)
            self.applied.options.append("vae-group-norms-compiled")

    @torch.inference_mode()
    def fill(self, image: torch.Tensor, mask: torch.Tensor, steps: int, guidance: float,
             generator: torch.Generator) -> Filled:
        """`image` (1, 3, H, W) in [0, 1], `mask` (1, 1, H, W), 1 = paint; H and W multiples of ALIGN."""
        from diffusers.pipelines.flux.pipeline_flux_fill import calculate_shift, retrieve_timesteps

        pipe, device = self.pipe, self.device
        height, width = image.shape[-2:]
        if height % ALIGN or width % ALIGN:
            raise ValueError(f"FluxFill needs sides that are multiples of {ALIGN}, got {width}x{height}")
        dtype = self.prompt.embeds.dtype
        init = pipe.image_processor.preprocess(image, height=height, width=width).to(torch.float32)
        config = pipe.scheduler.config
        mu = calculate_shift((height // pipe.vae_scale_factor // 2) * (width // pipe.vae_scale_factor // 2),
                             config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                             config.get("base_shift", 0.5), config.get("max_shift", 1.15))
        sigmas = np.linspace(1.0, 1 / steps, steps).tolist()
        timesteps, _ = retrieve_timesteps(pipe.scheduler, steps, device, sigmas=sigmas, mu=mu)
        channels = pipe.vae.config.latent_channels
        latents, image_ids = self._initial_noise(channels, height, width, dtype, generator)
        mask_image = pipe.mask_processor.preprocess(mask, height=height, width=width)
        masked = (init * (1 - mask_image)).to(device=device, dtype=dtype)
        mask_latents, masked_latents = pipe.prepare_mask_latents(mask_image, masked, 1, channels, 1, height, width,
                                                                 dtype, device, generator)
        condition = torch.cat((masked_latents, mask_latents), dim=-1)
        strength = (torch.full([1], guidance, device=device, dtype=torch.float32)
                    if self.transformer.config.guidance_embeds else None)
        latents = self._denoise(latents, condition, image_ids, timesteps, strength)
        return Filled(self._decode(latents, height, width), latents.float().cpu())

    def _initial_noise(self, channels: int, height: int, width: int, dtype: torch.dtype, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pipeline's `prepare_latents` at strength 1, without its VAE pass: it encodes the whole
        image, samples that latent, then scales it by 1 - sigma = 0 (a fill starts from pure noise).
        The sample's draw is made here too, so the noise that follows is the pipeline's, number for
        number (the CPU tests compare the two)."""
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipe
        shape = (1, channels, 2 * (height // (pipe.vae_scale_factor * 2)), 2 * (width // (pipe.vae_scale_factor * 2)))
        randn_tensor(shape, generator=generator, device=self.device, dtype=pipe.vae.dtype)  # the skipped sample
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        image_ids = pipe._prepare_latent_image_ids(1, shape[2] // 2, shape[3] // 2, self.device, dtype)
        return pipe._pack_latents(noise, 1, channels, shape[2], shape[3]), image_ids

    def _denoise(self, latents: torch.Tensor, condition: torch.Tensor, image_ids: torch.Tensor,
                 timesteps: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        if self.applied.cache:  # a fresh cache per fill: no residuals carried over from the last image
            self.transformer._reset_stateful_cache()
        with self.transformer.cache_context("fill") if self.applied.cache else nullcontext():
            for t in timesteps:
                if self.applied.cudagraphs:
                    torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
                noise = self.denoiser(hidden_states=torch.cat((latents, condition), dim=2),
                                      timestep=t.expand(latents.shape[0]).to(latents.dtype) / 1000, guidance=guidance,
                                      pooled_projections=self.prompt.pooled, encoder_hidden_states=self.prompt.embeds,
                                      txt_ids=self.prompt.text_ids, img_ids=image_ids, return_dict=False)[0]
                latents = self.pipe.scheduler.step(noise, t, latents, return_dict=False)[0]
        return latents

    def _decode(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        pipe = self.pipe
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        decoded = pipe.vae.decode(latents, return_dict=False)[0]
        picture: torch.Tensor = pipe.image_processor.postprocess(decoded, output_type="pt")
        return picture.float().cpu()


class FluxFill:
    """The stages' fill: uint8 RGB and a boolean mask in, the filled uint8 RGB out; unmasked pixels
    are the input's exactly (the VAE round trip would otherwise blur the whole picture)."""

    def __init__(self, path: Path, placement: Placement, steps: int, guidance: float, options: RuntimeOptions,
                 prompt: str = "") -> None:
        from diffusers import FluxFillPipeline

        pipe: Any = FluxFillPipeline.from_pretrained(path, dtype=placement.dtype)  # type: ignore[no-untyped-call]
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
        out = self.core.fill(image, mask_t, self.steps, self.guidance, generator).image[0]
        filled = (out.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        return np.where(mask[..., None], filled, rgb)
