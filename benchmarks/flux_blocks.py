"""One FLUX double block and one single block at production width and sequence length: where a
transformer step's time goes, option by option, in seconds of compilation instead of minutes.

FLUX.1-Fill-dev's transformer with one block of each kind (3,072 wide, 24 heads, 4,096 image + 512
text tokens: a 1024² fill), random bf16 weights, `genfab.stages.flux.speed.apply` as the stages call
it. Variants are `+`-joined tokens:

- `bf16` / `fp8`: `compile: blocks` without / with `fp8: rowwise` (torchao); `eager`: no option;
- `sgelu`: the tanh GELU in its sigmoid form (`genfab.stages.flux.gelu`);
- `mk`: inductor's multi-kernel reductions (persistent and looped variants, chosen by timing);
- `nosplit`: inductor does not split the rows' reductions (amax) into partial reductions
  (`fp8+sgelu+mk+nosplit+fused` is what the stages run for `fp8` with `compile: blocks`);
- `fused`: the GELU-fed FP8 layers quantise their input in one pass (`genfab.stages.flux.fp8_mlp`);
- `rope`: the attentions norm and rotate queries and keys in one pass (`genfab.stages.flux.attention`);
- `cdt`: inductor's coordinate-descent tuning of the generated kernels (what torchao's
  `set_inductor_config` turns on for the whole process; genfab turns it off).

Per variant: milliseconds per forward (CUDA events over `--runs` calls after warm-ups), the ratio to
the first variant, and the output's deviation from the eager bf16 forward (cosine, max abs). With
`--profile` each variant's kernels are listed by GPU time. A full fill is about 50 of these forwards
times 19 (double) and 38 (single) blocks, so per-block savings scale accordingly.

    python benchmarks/flux_blocks.py --variants eager,fp8,fp8+sgelu,fp8+mk --profile
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from benchmarks.vistadream import FILL_TRANSFORMER, installed

from genfab.api.scenejob import FluxRuntime

IMAGE_TOKENS = 4096
TEXT_TOKENS = 512


def transformer(device: torch.device) -> Any:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = FluxTransformer2DModel(**{**FILL_TRANSFORMER, "num_layers": 1, "num_single_layers": 1})
    torch.set_default_dtype(previous)
    return model.eval()


def step_inputs(device: torch.device) -> dict[str, Any]:
    g = torch.Generator(device).manual_seed(1)
    bf16 = torch.bfloat16
    ids = torch.zeros(IMAGE_TOKENS, 3, device=device, dtype=bf16)
    side = int(IMAGE_TOKENS ** 0.5)
    ids[:, 1] = torch.arange(IMAGE_TOKENS, device=device) // side
    ids[:, 2] = torch.arange(IMAGE_TOKENS, device=device) % side
    return {"hidden_states": torch.randn(1, IMAGE_TOKENS, FILL_TRANSFORMER["in_channels"], generator=g, device=device,
                                         dtype=bf16),
            "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, 4096, generator=g, device=device, dtype=bf16),
            "pooled_projections": torch.randn(1, 768, generator=g, device=device, dtype=bf16),
            "timestep": torch.full((1,), 0.5, device=device, dtype=bf16),
            "guidance": torch.full((1,), 30.0, device=device, dtype=torch.float32),
            "img_ids": ids, "txt_ids": torch.zeros(TEXT_TOKENS, 3, device=device, dtype=bf16), "return_dict": False}


def build(name: str, device: torch.device) -> Any:
    from genfab.stages.flux import gelu, speed

    tokens = set(name.split("+"))
    unknown = tokens - {"eager", "bf16", "fp8", "sgelu", "mk", "nosplit", "cdt", "fused", "rope"}
    if unknown:
        raise SystemExit(f"unknown variant tokens {sorted(unknown)} in {name!r}")
    torch._dynamo.reset()
    # the tokens alone decide (process-wide settings), not genfab's defaults for the stages
    speed.FP8_INDUCTOR, speed.REWRITE_GELU, speed.FUSED_MLP = {}, False, "fused" in tokens
    speed.FUSED_ROPE = "rope" in tokens
    torch._inductor.config.triton.multi_kernel = 1 if "mk" in tokens else 0
    torch._inductor.config.split_reductions = "nosplit" not in tokens
    torch._inductor.config.coordinate_descent_tuning = "cdt" in tokens
    # every variant compiles afresh: first-call seconds compare, and torch 2.11 cannot load cached
    # multi-kernel graphs (see `speed.FP8_INDUCTOR`)
    torch._inductor.config.fx_graph_cache = False
    model = transformer(device)
    if "sgelu" in tokens:
        gelu.rewrite(model)
    if "eager" in tokens:
        return model
    options = FluxRuntime(compile="blocks", fp8="rowwise" if "fp8" in tokens else "off")
    denoiser, _ = speed.apply(model, options, device)
    return denoiser


def run(step: Any, inputs: dict[str, Any], runs: int) -> tuple[float, float, torch.Tensor]:
    """(ms per forward, seconds of the first call: compilation, the output)."""
    started = time.perf_counter()
    step(**inputs)
    torch.cuda.synchronize()
    first = time.perf_counter() - started
    for _ in range(2):
        out = step(**inputs)[0]
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        out = step(**inputs)[0]
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / runs, first, out.float().clone()


def kernels(step: Any, inputs: dict[str, Any]) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step(**inputs)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=18, max_name_column_width=100),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="eager,fp8,fp8+sgelu")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    inputs = step_inputs(device)
    with torch.no_grad():
        _, _, reference = run(transformer(device), inputs, 1)
        rows = []
        for name in args.variants.split(","):
            step = build(name, device)
            ms, first, out = run(step, inputs, args.runs)
            cosine = float(torch.nn.functional.cosine_similarity(out.flatten(), reference.flatten(), dim=0))
            row = {"variant": name, "ms": round(ms, 3), "first_call_s": round(first, 1),
                   "cosine_vs_eager": round(cosine, 6),
                   "max_abs_vs_eager": round(float((out - reference).abs().max()), 4)}
            print(json.dumps(row), flush=True)
            if args.profile:
                kernels(step, inputs)
            rows.append(row)
    print(f"\nGPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}, diffusers {installed('diffusers')}, "
          f"torchao {installed('torchao')}; one double + one single block, {IMAGE_TOKENS}+{TEXT_TOKENS} tokens\n")
    print("| variant | ms / forward | vs first | first call s | cosine vs eager | max abs vs eager |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['variant']} | {row['ms']:.3f} | {row['ms'] / rows[0]['ms']:.2f}x | {row['first_call_s']} | "
              f"{row['cosine_vs_eager']} | {row['max_abs_vs_eager']} |")


if __name__ == "__main__":
    main()
