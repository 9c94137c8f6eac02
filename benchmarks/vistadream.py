"""FluxFill at production size: diffusers' eager `FluxFillPipeline.__call__` against genfab's fill core.

The components are FLUX.1-Fill-dev's architecture (12B transformer, T5-XXL, CLIP-L, the 16-channel
VAE) with random bf16 weights built directly on the GPU (no weights can be downloaded here), so the
timings and memory are the real model's and the pictures mean nothing. One process, one GPU, the
same canvas, mask, seed, steps and guidance for every variant:

- `eager`: `FluxFillPipeline.__call__` as diffusers ships it (the baseline);
- genfab variants, each on top of the previous where it says so: `prompt-cache` (the empty prompt's
  T5 and CLIP embeddings encoded once and reused, as the fill core does for every view of a job),
  `fbc` (+ diffusers' first-block cache: changes the output, reported for its deviation) and
  `compile` (prompt cache + `torch.compile` of the transformer).

Reported per variant: seconds per image (mean of the timed runs after a warm-up), the ratio to eager,
peak GPU memory, and the deviation from eager: PSNR of the decoded images and cosine similarity of
the final latents.

    python benchmarks/vistadream.py --steps 50 --size 1024 --runs 2 [--variants eager,prompt-cache,fbc,compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np
import torch

T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
          "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "pad_token_id": 0, "eos_token_id": 1,
          "decoder_start_token_id": 0}
CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
          "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu",
          "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}
FILL_TRANSFORMER = {"patch_size": 1, "in_channels": 384, "out_channels": 64, "num_layers": 19, "num_single_layers": 38,
                    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
                    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
FLUX_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2, "latent_channels": 16, "norm_num_groups": 32, "sample_size": 1024,
            "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False, "use_post_quant_conv": False}


def build_pipeline(device: torch.device) -> Any:
    """FLUX.1-Fill-dev's architecture with random bf16 weights, made on the GPU (seconds, not minutes)."""
    import tempfile
    from pathlib import Path

    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from scripts.tiny_models import clip_vocab, t5_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        transformer = FluxTransformer2DModel(**FILL_TRANSFORMER)
        vae = AutoencoderKL(**FLUX_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L))
        text_encoder_2 = T5EncoderModel(T5Config(**T5_XXL))
    torch.set_default_dtype(previous)
    tokens = Path(tempfile.mkdtemp())
    clip_vocab(tokens / "clip")
    t5_tokenizer(tokens / "t5")
    tokenizer = CLIPTokenizer(str(tokens / "clip/vocab.json"), str(tokens / "clip/merges.txt"), model_max_length=77)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxFillPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                            text_encoder_2=text_encoder_2, tokenizer_2=T5TokenizerFast.from_pretrained(tokens / "t5"),
                            transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inputs(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth canvas with its centre kept and a 10 % border to fill (the outpainting case)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([xx, yy, (xx + yy) / 2])[None].to(device)
    mask = torch.ones(1, 1, size, size, device=device)
    border = size // 10
    mask[..., border:-border, border:-border] = 0
    return image, mask


def run(pipe: Any, image: torch.Tensor, mask: torch.Tensor, steps: int, guidance: float, **extra: Any
        ) -> tuple[np.ndarray, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}

    def keep(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        captured["latents"] = kwargs["latents"]
        return kwargs

    size = image.shape[-1]
    out = pipe(image=image, mask_image=mask, height=size, width=size, num_inference_steps=steps,
               guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(0), output_type="np",
               max_sequence_length=512, callback_on_step_end=keep, **extra).images[0]
    return out, captured["latents"].float().flatten()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    result = fn()  # warm-up (compilation, autotuning, allocator)
    torch.cuda.synchronize()
    seconds = []
    for _ in range(runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return float(np.mean(seconds)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--guidance", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--variants", default="eager,prompt-cache,fbc,compile",
                        help="in this order: fbc runs uncompiled, compile last (it replaces the transformer)")
    parser.add_argument("--fbc-threshold", type=float, default=0.12)
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    device = torch.device("cuda")
    started = time.perf_counter()
    pipe = build_pipeline(device)
    build_seconds = time.perf_counter() - started
    image, mask = inputs(args.size, device)
    results: dict[str, dict[str, Any]] = {}
    baseline: tuple[np.ndarray, torch.Tensor] | None = None
    embeds: dict[str, Any] = {}
    for variant in args.variants.split(","):
        extra: dict[str, Any] = {"prompt": ""}
        if variant != "eager":
            if not embeds:
                prompt_embeds, pooled, _ = pipe.encode_prompt("", prompt_2=None, device=device, max_sequence_length=512)
                embeds = {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled}
            extra = dict(embeds)
        if variant == "fbc":  # changes the output: measured for its deviation, off in genfab by default
            from diffusers.hooks import FirstBlockCacheConfig

            pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=args.fbc_threshold))
        if variant == "compile":
            pipe.transformer = torch.compile(pipe.transformer, mode=args.compile_mode, fullgraph=False)
        torch.cuda.reset_peak_memory_stats()
        seconds, (picture, latents) = timed(lambda extra=extra: run(pipe, image, mask, args.steps, args.guidance,
                                                                    **extra), args.runs)
        peak = torch.cuda.max_memory_allocated() / 2**30
        row: dict[str, Any] = {"seconds": round(seconds, 3), "peak_gib": round(peak, 2)}
        if baseline is None:
            baseline = (picture, latents)
        else:
            row["psnr_vs_eager"] = round(psnr(picture, baseline[0]), 2)
            row["latent_cosine"] = round(float(torch.nn.functional.cosine_similarity(latents, baseline[1], dim=0)), 6)
        results[variant] = row
        print(variant, json.dumps(row), flush=True)
        if variant == "fbc":
            pipe.transformer.disable_cache()
    eager = results.get("eager", {}).get("seconds")
    lines = [f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, diffusers {version('diffusers')}, "
             f"transformers {version('transformers')}, Python {platform.python_version()}; {args.size}², "
             f"{args.steps} steps, guidance {args.guidance}, {args.runs} timed runs after a warm-up; components "
             f"built in {build_seconds:.1f} s", "",
             "| variant | s / image | vs eager | peak GiB | PSNR vs eager | latent cosine |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in results.items():
        ratio = f"{row['seconds'] / eager:.2f}x" if eager else "-"
        lines.append(f"| {name} | {row['seconds']:.2f} | {ratio} | {row['peak_gib']:.1f} | "
                     f"{row.get('psnr_vs_eager', '-')} | {row.get('latent_cosine', '-')} |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "table": lines}, fh, indent=2)


if __name__ == "__main__":
    main()
