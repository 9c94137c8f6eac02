"""FluxFill at production size: diffusers' eager `FluxFillPipeline.__call__` against genfab's fill core.

The components are FLUX.1-Fill-dev's architecture (12B transformer, T5-XXL, CLIP-L, the 16-channel
VAE) with random bf16 weights built directly on the GPU (no weights can be downloaded here), so the
timings and memory are the real model's and the pictures mean nothing. One process, one GPU, the
same canvas, mask, seed, steps and guidance for every variant.

- `eager`: `FluxFillPipeline.__call__` as diffusers ships it (the baseline; it encodes the prompt
  each call, as a user's script does).
- genfab variants: `genfab.stages.flux.fill.FluxFillCore` (the code the vistadream stages run) with
  the `fluxRuntime` options named by `+`-joined tokens: `core` (no option), `blocks` / `full`
  (`compile`; `blocks` captures each step as a CUDA graph, `nograph` leaves that out), `cudnn`
  (`attention: _native_cudnn`), `fp8` / `fp8t` (`fp8: rowwise` / `tensorwise`),
  `fbc<threshold>` (`firstBlockCache`), `tanhgelu` (without the GELU's sigmoid form) and `inductor0`
  (FP8 blocks without genfab's inductor options: `speed.FP8_INDUCTOR`), `unfused` (FP8 without the
  one-pass quantisation of the GELU-fed layers: `speed.FUSED_MLP`), `rope0` (diffusers' query/key norm and
  rotation, not `speed.FUSED_ROPE`'s one pass), `vaenorm0` (eager VAE group norms),
  and the stage's memory modes `offload-model` / `offload-group` (run these last: the pipeline stays
  offloaded). Each variant gets a fresh transformer with the same random weights (the options change
  it in place); the prompt is encoded once and the text encoders are freed, as in the stages.

Reported per variant: seconds per image (mean of the timed runs after a warm-up), the ratio to eager,
the warm-up's extra seconds (compilation, autotuning), peak GPU memory, and the deviation from eager:
PSNR of the decoded images and cosine similarity of the final latents.

    python benchmarks/vistadream.py --steps 50 --size 1024 --runs 2 --variants eager,core,blocks,fp8+blocks
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from genfab.api.scenejob import FluxRuntime
from genfab.stages.flux.core import Prompt
from genfab.stages.flux.speed import EAGER

T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
          "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "pad_token_id": 0, "eos_token_id": 1,
          "decoder_start_token_id": 0}
CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
          "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu",
          "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}
FILL_TRANSFORMER = {"patch_size": 1, "in_channels": 384, "out_channels": 64, "num_layers": 19, "num_single_layers": 38,
                    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
                    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
TEXT_TRANSFORMER = {**FILL_TRANSFORMER, "in_channels": 64, "out_channels": None}
"""FLUX.1-dev's: the packed latent alone (16 channels x 4)."""
FLUX_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2, "latent_channels": 16, "norm_num_groups": 32, "sample_size": 1024,
            "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False, "use_post_quant_conv": False}


@dataclass(frozen=True)
class Task:
    """What is benchmarked: FluxFill's outpainting (vistadream, worldexplorer's gaps) or FLUX.1-dev's
    text to image (worldexplorer's cardinal views)."""

    name: str
    transformer: dict[str, Any]
    pipeline: str
    """The diffusers pipeline class: the eager baseline and the components' layout."""
    guidance: float
    prompt: str


FILL = Task("fill", FILL_TRANSFORMER, "FluxFillPipeline", 30.0, "")
TEXT = Task("text", TEXT_TRANSFORMER, "FluxPipeline", 3.5, "a kitchen of a rustic farmhouse, eye level")


def random_transformer(device: torch.device, task: Task = FILL) -> Any:
    """The task's FLUX transformer with random bf16 weights, the same ones on every call."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        transformer = FluxTransformer2DModel(**task.transformer)
    torch.set_default_dtype(previous)
    return transformer.eval()


def build_pipeline(device: torch.device, task: Task = FILL) -> Any:
    """The task's FLUX architecture with random bf16 weights, made on the GPU (seconds, not minutes)."""
    import tempfile

    import diffusers
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from scripts.tiny_models import clip_vocab, t5_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    transformer = random_transformer(device, task)
    torch.manual_seed(1)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
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
    pipe = getattr(diffusers, task.pipeline)(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
        tokenizer_2=T5TokenizerFast.from_pretrained(tokens / "t5"), transformer=transformer)
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


EXPERIMENTS = {
    "nograph": "`compile: blocks` without its step CUDA graph (to show what the graph brings)",
    "cdt": "inductor's coordinate-descent tuning of the generated kernels",
    "vae": "the VAE's encoder and decoder compiled too (stays on for later variants)",
    "tanhgelu": "the compiled transformer keeps diffusers' tanh GELU (not `speed.REWRITE_GELU`'s sigmoid form)",
    "inductor0": "FP8 blocks compiled without genfab's inductor options (`speed.FP8_INDUCTOR`)",
    "unfused": "FP8 without the one-pass quantisation of the GELU-fed layers (`speed.FUSED_MLP`)",
    "vaenorm0": "compiled transformer, eager VAE group norms (not `speed.VAE_NORMS`)",
    "rope0": "compiled transformer with diffusers' query/key norm and rotation (not `speed.FUSED_ROPE`)",
}


@dataclass(frozen=True)
class Variant:
    name: str
    options: FluxRuntime
    offload: str = "none"
    experiments: frozenset[str] = frozenset()
    """Tokens of `EXPERIMENTS`: changes to genfab's fixed choices, to show what each brings."""

    @classmethod
    def parse(cls, name: str) -> Variant:
        options, offload, experiments = EAGER, "none", set()
        for token in name.split("+"):
            if token in ("blocks", "full"):
                options = options.model_copy(update={"compile": token})
            elif token == "cudnn":
                options = options.model_copy(update={"attention": "_native_cudnn"})
            elif token in ("fp8", "fp8t"):
                options = options.model_copy(update={"fp8": "rowwise" if token == "fp8" else "tensorwise"})
            elif token.startswith("fbc"):
                options = options.model_copy(update={"first_block_cache": float(token[3:])})
            elif token.startswith("offload-"):
                offload = token.removeprefix("offload-")
            elif token in EXPERIMENTS:
                experiments.add(token)
            elif token not in ("core", "eager"):
                raise SystemExit(f"unknown variant token {token!r} in {name!r}")
        return cls(name, options, offload, frozenset(experiments))


def eager_text(pipe: Any, prompt: str, size: int, steps: int, guidance: float) -> tuple[torch.Tensor, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}

    def keep(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        captured["latents"] = kwargs["latents"]
        return kwargs

    out = pipe(prompt=prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
               generator=torch.Generator("cpu").manual_seed(0), output_type="pt", max_sequence_length=512,
               callback_on_step_end=keep).images
    return out.float().cpu(), captured["latents"].float().cpu().flatten()


def eager_fill(pipe: Any, image: torch.Tensor, mask: torch.Tensor, steps: int, guidance: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}

    def keep(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        captured["latents"] = kwargs["latents"]
        return kwargs

    size = image.shape[-1]
    out = pipe(prompt="", image=image, mask_image=mask, height=size, width=size, num_inference_steps=steps,
               guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(0), output_type="pt",
               max_sequence_length=512, callback_on_step_end=keep).images
    return out.float().cpu(), captured["latents"].float().cpu().flatten()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any, Any]:
    """(mean seconds of the timed runs, the warm-up's seconds, the warm-up's result, the last result)."""
    torch.cuda.synchronize()
    started = time.perf_counter()
    first = result = fn()  # warm-up (compilation, autotuning, allocator)
    torch.cuda.synchronize()
    warmup = time.perf_counter() - started
    seconds = []
    for _ in range(runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return sum(seconds) / len(seconds), warmup, first, result


def measure(variant: Variant, pipe: Any, image: torch.Tensor, mask: torch.Tensor, args: argparse.Namespace,
            prompt: Prompt | None, device: torch.device, task: Task = FILL) -> tuple[dict[str, Any], Any]:
    """One variant: returns its row and its (image, latents)."""
    from genfab.stages.flux.fill import FluxFillCore
    from genfab.stages.flux.text import FluxTextCore
    from genfab.stages.models.placement import Placement

    torch.cuda.reset_peak_memory_stats()
    if variant.name == "eager" and task is TEXT:
        fill: Callable[[], Any] = lambda: eager_text(pipe, task.prompt, args.size, args.steps, args.guidance)  # noqa: E731
    elif variant.name == "eager":
        fill = lambda: eager_fill(pipe, image, mask, args.steps, args.guidance)  # noqa: E731
    else:
        assert prompt is not None
        placement = Placement(device, torch.bfloat16, variant.offload)  # type: ignore[arg-type]
        if variant.offload != "none":
            pipe.to("cpu")
            placement.place(pipe)
        from genfab.stages.flux import graph, speed

        # Each variant compiles its own transformer; dynamo's per-function recompilation limit would
        # otherwise run later variants' blocks eagerly without a word (seen as 9-16 s fills).
        torch._dynamo.reset()
        experiments = variant.experiments
        torch._inductor.config.coordinate_descent_tuning = "cdt" in experiments
        if "vae" in experiments:
            pipe.vae.encoder.compile()
            pipe.vae.decoder.compile()
        defaults = (graph.wanted, speed.REWRITE_GELU, speed.FP8_INDUCTOR, speed.FUSED_MLP, speed.VAE_NORMS,
                    speed.FUSED_ROPE)
        if "nograph" in experiments:
            graph.wanted = lambda *_: False  # type: ignore[assignment]
        speed.REWRITE_GELU = "tanhgelu" not in experiments
        if "inductor0" in experiments:
            speed.FP8_INDUCTOR = {}
        speed.FUSED_MLP = "unfused" not in experiments
        speed.VAE_NORMS = "vaenorm0" not in experiments
        speed.FUSED_ROPE = "rope0" not in experiments
        try:
            core = (FluxTextCore(pipe, placement, variant.options) if task is TEXT
                    else FluxFillCore(pipe, placement, variant.options, prompt))
        finally:
            (graph.wanted, speed.REWRITE_GELU, speed.FP8_INDUCTOR, speed.FUSED_MLP,  # type: ignore[assignment]
             speed.VAE_NORMS, speed.FUSED_ROPE) = defaults

        def fill() -> tuple[torch.Tensor, torch.Tensor]:
            generator = torch.Generator("cpu").manual_seed(0)
            if isinstance(core, FluxTextCore):
                assert prompt is not None
                out = core.generate(prompt, args.size, args.size, args.steps, args.guidance, generator)
            else:
                out = core.fill(image, mask, args.steps, args.guidance, generator)
            return out.image, out.latents.flatten()

    seconds, warmup, first, result = timed(fill, args.runs)
    row = {"seconds": round(seconds, 3), "warmup_extra_s": round(warmup - seconds, 1),
           "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    print(f"{variant.name} timed: {json.dumps(row)}", flush=True)
    if variant.name in args.profile.split(","):
        profile(fill)
    if variant.name == "eager":  # the noise floor of the deviation columns: eager against itself
        row.update(deviation(first, result))
    return row, result


def profile(fill: Callable[[], Any]) -> None:
    """One more fill under the profiler: where the GPU's time goes, kernel by kernel (attention,
    matrix products, the rest), to choose the next option to try."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    with profiler(activities=[ProfilerActivity.CUDA]) as prof:
        fill()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=90),
          flush=True)


def deviation(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """PSNR of the decoded images and cosine of the final latents."""
    return {"psnr_vs_eager": round(psnr(a[0], b[0]), 2),
            "latent_cosine": round(float(torch.nn.functional.cosine_similarity(a[1], b[1], dim=0)), 6)}


def main(task: Task = FILL, description: str = __doc__ or "") -> None:
    from genfab.stages.flux.core import Prompt, release_text_encoders

    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--guidance", type=float, default=task.guidance)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--variants", default="eager,core,blocks,blocks+cudnn,fp8+blocks,fbc0.08+blocks")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--profile", default="", help="comma-separated variants to profile once after timing")
    args = parser.parse_args()
    device = torch.device("cuda")
    started = time.perf_counter()
    pipe = build_pipeline(device, task)
    build_seconds = time.perf_counter() - started
    image, mask = inputs(args.size, device)
    results: dict[str, dict[str, Any]] = {}
    baseline: tuple[torch.Tensor, torch.Tensor] | None = None
    prompt: Prompt | None = None
    fresh = True
    for variant in map(Variant.parse, args.variants.split(",")):
        print(f"[{time.perf_counter() - started:.0f} s] {variant.name} ...", flush=True)
        if variant.name != "eager":
            if prompt is None:  # as the stages do: encode the prompt once (and free T5 and CLIP)
                prompt = Prompt.encode(pipe, task.prompt, device)
                release_text_encoders(pipe)
            if not fresh:  # the options changed the transformer in place: the same random weights again
                pipe.transformer = None
                torch._dynamo.reset()
                gc.collect()
                torch.cuda.empty_cache()
                pipe.transformer = random_transformer(device, task)
            fresh = False
        try:
            row, (picture, latents) = measure(variant, pipe, image, mask, args, prompt, device, task)
        except Exception as exc:  # one failing option must not lose the other rows
            results[variant.name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            print(variant.name, json.dumps(results[variant.name]), flush=True)
            continue
        if baseline is None:
            baseline = (picture, latents)
        else:
            row.update(deviation((picture, latents), baseline))
        results[variant.name] = row
        print(variant.name, json.dumps(row), flush=True)
        if args.json:  # after every variant: a run cut short keeps what it measured
            Path(args.json).write_text(json.dumps({"results": results}, indent=2))
    eager = results.get("eager", {}).get("seconds")
    lines = [f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, diffusers {version('diffusers')}, "
             f"transformers {version('transformers')}, torchao {installed('torchao')}, Python "
             f"{platform.python_version()}; {task.name}, {args.size}², {args.steps} steps, guidance {args.guidance}, "
             f"{args.runs} timed runs after a warm-up; components built in {build_seconds:.1f} s", "",
             "| variant | s / image | vs eager | warm-up extra s | peak GiB | PSNR vs eager | latent cosine |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in results.items():
        if "error" in row:
            lines.append(f"| {name} | {row['error']} | | | | | |")
            continue
        ratio = f"{row['seconds'] / eager:.2f}x" if eager else "-"
        lines.append(f"| {name} | {row['seconds']:.2f} | {ratio} | {row['warmup_extra_s']} | {row['peak_gib']:.1f} | "
                     f"{row.get('psnr_vs_eager', '-')} | {row.get('latent_cosine', '-')} |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "table": lines}, fh, indent=2)


def installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
