"""DiFix as Difix3D trains it: SD-Turbo's UNet and VAE run as a single-step image-to-image model.

1. The VAE encoder maps the degraded view (and the reference view) to latents, keeping the input of
   each down block.
2. The UNet predicts the noise of the latents at one fixed timestep (199), conditioned on the prompt;
   the clean latents follow in closed form (the one-step DDPM update).
3. The VAE decoder, with a LoRA adapter and 1x1 skip convolutions from the encoder's activations,
   decodes them back to an image.

With a reference view every self-attention of the UNet attends over both views' tokens (Difix3D's
`mv_unet`, here an attention processor around diffusers' SDPA processor). Parameter names, the LoRA
adapter name (`vae_skip`), its target modules and the checkpoint keys are Difix3D's, so checkpoints
go both ways between this trainer and the lab's tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTER = "vae_skip"
LORA_SUFFIXES = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out",
                 "skip_conv_1", "skip_conv_2", "skip_conv_3", "skip_conv_4", "to_k", "to_q", "to_v", "to_out.0")
"""Difix3D's VAE decoder LoRA targets: every decoder module whose name ends with one of these."""
SKIP_INIT = 1e-5
"""Difix3D starts the skip convolutions near zero, so training begins at the plain VAE."""


class Views:
    """How many views each image of the batch has (1: no reference, 2: with one), read by the
    UNet's self-attention processors during a forward."""

    def __init__(self) -> None:
        self.count = 1


class MultiViewAttention:
    """Self-attention over the tokens of all views of one image: `(b v) n d -> b (v n) d` around the
    wrapped processor (diffusers' SDPA processor), Difix3D's reference-view attention."""

    def __init__(self, inner: Any, views: Views) -> None:
        self.inner = inner
        self.views = views

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, **kwargs: Any
                 ) -> torch.Tensor:
        v = self.views.count
        if v == 1 or encoder_hidden_states is not None or hidden_states.ndim != 3:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        bv, n, d = hidden_states.shape
        out = self.inner(attn, hidden_states.reshape(bv // v, v * n, d), None, attention_mask, temb, **kwargs)
        return out.reshape(bv, n, d)


def decoder_lora_targets(vae: nn.Module) -> list[str]:
    """Full names of the decoder modules Difix3D puts its LoRA on."""
    return [name for name, _ in vae.named_modules()
            if "decoder" in name and any(name.endswith(s) for s in LORA_SUFFIXES)]


def add_skip_convs(vae: Any) -> None:
    """1x1 convolutions from the encoder's down-block inputs to the decoder's up-block inputs
    (`decoder.skip_conv_<i>`; SD's VAE: 512->512, 256->512, 128->512, 128->256)."""
    widths = list(vae.config.block_out_channels)
    down_inputs = [widths[0], *widths[:-1]]         # what enters each encoder down block
    rev = widths[::-1]
    up_inputs = [rev[0], *rev[:-1]]                  # what enters each decoder up block
    for i, (c_in, c_out) in enumerate(zip(down_inputs[::-1], up_inputs, strict=True), start=1):
        conv = nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)
        nn.init.constant_(conv.weight, SKIP_INIT)
        setattr(vae.decoder, f"skip_conv_{i}", conv)


def one_step_x0(z: torch.Tensor, pred: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The clean latents from one model output at a timestep with cumulative alpha `alpha_bar`: the
    DDPM update with a single inference step (its noise term has zero variance there)."""
    a = alpha_bar.to(z.dtype)
    if prediction_type == "epsilon":
        return (z - (1 - a).sqrt() * pred) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * z - (1 - a).sqrt() * pred
    if prediction_type == "sample":
        return pred
    raise ValueError(f"unsupported scheduler prediction_type {prediction_type!r}")


class DifixNet(nn.Module):
    """The trainable DiFix model: `forward(x [B, V, 3, H, W] in [-1, 1], prompt_embeds [B, L, C])`."""

    def __init__(self, unet: Any, vae: Any, alpha_bar: torch.Tensor, prediction_type: str, timestep: int,
                 lora_rank: int, lora_targets: list[str]) -> None:
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.views = Views()
        self.alpha_bar: torch.Tensor
        self.timesteps: torch.Tensor
        self.register_buffer("alpha_bar", alpha_bar.float().reshape(()), persistent=False)
        self.register_buffer("timesteps", torch.tensor([timestep], dtype=torch.long), persistent=False)
        self.prediction_type = prediction_type
        self.lora_rank = lora_rank
        self.lora_targets = lora_targets
        procs = unet.attn_processors
        unet.set_attn_processor({name: MultiViewAttention(p, self.views) if ".attn1." in name else p
                                 for name, p in procs.items()})
        self.vae.encoder.requires_grad_(False)
        if getattr(self.vae, "quant_conv", None) is not None:
            self.vae.quant_conv.requires_grad_(False)

    # -- which parameters train
    def difix3d_order(self) -> list[nn.Parameter]:
        """The parameter list Difix3D's `train_difix.py` gives AdamW: the UNet, the VAE's `vae_skip`
        LoRA, then each skip convolution's parameters. The skip convolutions carry LoRA themselves,
        so their 8 LoRA tensors appear twice (torch warns, and will refuse); checkpoints' optimizer
        state is laid out over this list (`difix_checkpoints`)."""
        params = list(self.unet.parameters())
        params += [p for n, p in self.vae.named_parameters() if "lora" in n and ADAPTER in n]
        for i in range(1, len(self.vae.decoder.up_blocks) + 1):
            params += list(getattr(self.vae.decoder, f"skip_conv_{i}").parameters())
        return params

    def trainable(self) -> list[nn.Parameter]:
        """Difix3D's order without its repeats (each parameter once, where it first appears)."""
        unique: dict[int, nn.Parameter] = {}
        for p in self.difix3d_order():
            unique.setdefault(id(p), p)
        return list(unique.values())

    def set_train(self) -> None:
        self.train()
        self.unet.requires_grad_(True)
        for p in self.trainable():
            p.requires_grad_(True)

    # -- the forward
    def encode(self, x: torch.Tensor, noise: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Latents (sampled with `noise`, else the mean) and the encoder's down-block inputs."""
        enc = self.vae.encoder
        h = enc.conv_in(x)
        skips = []
        for block in enc.down_blocks:
            skips.append(h)
            h = block(h)
        h = enc.conv_out(enc.conv_act(enc.conv_norm_out(enc.mid_block(h))))
        if getattr(self.vae, "quant_conv", None) is not None:
            h = self.vae.quant_conv(h)
        mean, logvar = h.chunk(2, dim=1)
        z = mean if noise is None else mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * noise.to(mean.dtype)
        return z * self.vae.config.scaling_factor, skips

    def decode(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        dec = self.vae.decoder
        z = z / self.vae.config.scaling_factor
        if getattr(self.vae, "post_quant_conv", None) is not None:
            z = self.vae.post_quant_conv(z)
        h = dec.mid_block(dec.conv_in(z), None)
        for i, block in enumerate(dec.up_blocks):
            skip = getattr(dec, f"skip_conv_{i + 1}")
            h = h + skip(skips[-1 - i])
            h = block(h, None)
        return dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))

    def forward(self, x: torch.Tensor, prompt_embeds: torch.Tensor, noise: torch.Tensor | None = None
                ) -> torch.Tensor:
        b, v = x.shape[:2]
        flat = x.flatten(0, 1)                                       # [B*V, 3, H, W]
        z, skips = self.encode(flat, None if noise is None else noise.flatten(0, 1))
        cond = prompt_embeds.repeat_interleave(v, dim=0)             # [B*V, L, C]
        self.views.count = v
        pred = self.unet(z, self.timesteps.expand(z.shape[0]), encoder_hidden_states=cond).sample
        z0 = one_step_x0(z, pred, self.alpha_bar, self.prediction_type)
        out = self.decode(z0, skips).clamp(-1, 1)
        return out.unflatten(0, (b, v))

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return self.vae.config.latent_channels, height // factor, width // factor


@dataclass
class PromptEncoder:
    """The frozen CLIP text encoder, run once per distinct prompt (the prompts of a DiFix dataset are
    a handful of strings, so their embeddings are cached instead of encoded every step)."""

    tokenizer: Any
    text_encoder: Any
    cache: dict[str, torch.Tensor]

    @torch.no_grad()
    def __call__(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing:
            ids = self.tokenizer(missing, max_length=self.tokenizer.model_max_length, padding="max_length",
                                 truncation=True, return_tensors="pt").input_ids
            enc = self.text_encoder(ids.to(self.text_encoder.device))[0]
            for p, e in zip(missing, enc, strict=True):
                self.cache[p] = e.float()
        return torch.stack([self.cache[p] for p in prompts]).to(device)


def _skip_weights(vae_dir: Path) -> dict[str, torch.Tensor]:
    """`decoder.skip_conv_*` weights a DiFix base model's VAE ships (nvidia/difix_ref), if any."""
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for path in sorted(vae_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                if "skip_conv" in key:
                    found[key] = fh.get_tensor(key)
    return found


def load_difix(base: Path, timestep: int, lora_rank: int, device: torch.device | str = "cpu",
               encoder_dtype: torch.dtype = torch.float32) -> tuple[DifixNet, PromptEncoder]:
    """DiFix from a base model folder in the diffusers layout (`unet/`, `vae/`, `text_encoder/`,
    `tokenizer/`, `scheduler/`): the UNet and VAE load with `from_pretrained`; the skip convolutions
    come from the VAE's weights when the base model is a DiFix (nvidia/difix_ref), else start at
    Difix3D's initial value; the decoder LoRA is new (Difix3D's rank and targets)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import AutoTokenizer, CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    add_skip_convs(vae)
    shipped = _skip_weights(base / "vae")
    if shipped:
        vae.load_state_dict({**vae.state_dict(), **shipped})
    targets = decoder_lora_targets(vae)
    vae.add_adapter(LoraConfig(r=lora_rank, init_lora_weights="gaussian", target_modules=targets),
                    adapter_name=ADAPTER)
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    if not 0 <= timestep < len(scheduler.alphas_cumprod):
        raise ValueError(f"timestep {timestep} is outside the scheduler's {len(scheduler.alphas_cumprod)} steps")
    net = DifixNet(unet, vae, scheduler.alphas_cumprod[timestep], scheduler.config.prediction_type, timestep,
                   lora_rank, targets).to(device)
    tokenizer = AutoTokenizer.from_pretrained(base, subfolder="tokenizer")
    text_encoder: Any = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", dtype=encoder_dtype)
    text_encoder.to(device)
    text_encoder.requires_grad_(False)
    return net, PromptEncoder(tokenizer, text_encoder, {})
