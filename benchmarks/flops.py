"""How far the dominant models are from the GPU's physical limit: the FLOPs of one denoiser step, counted
by PyTorch's own `torch.utils.flop_counter.FlopCounterMode` on the model at production size, against the
matmul throughput the GPU reaches.

- `count` (any machine; `--device meta` builds the models without memory or weights): one denoising
  step at each pipeline's shapes, counted op by op (matmuls, attention, convolutions): Qwen-Image-Edit
  at 1024² (true CFG: the prompt's and the negative prompt's forward), FLUX.1-Fill-dev at 1024² (one
  guidance-distilled forward), FLUX.1-dev at the scaffold's 576², and SEVA's network on one 21-frame
  chunk (guidance's halves in one batch; needs SEVA's code on the path, `scripts/gpu_tier.py
  --prepare-research`).
- `peak` (CUDA): the best matmul throughput over square and the models' own shapes, bf16 (`torch.mm`)
  and FP8 with rowwise scales (`torch._scaled_mm`, as genfab's `fp8: rowwise` calls it), each the
  median of 20 timed calls between CUDA events after 5 warm-up calls.

Both write JSON (`--json`); `benchmarks/results/flops.md` puts them beside the measured seconds per step.

    python benchmarks/flops.py count --models qwen-edit,flux-fill,flux-text --json flops-count.json
    PYTHONPATH=.research/src python benchmarks/flops.py count --models seva --json flops-seva.json
    python benchmarks/flops.py peak --json flops-peak.json      # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.reference_object import NEGATIVE_TOKENS, PROMPT_TOKENS, QWEN_IMAGE_TRANSFORMER
from benchmarks.vistadream import FILL_TRANSFORMER, TEXT_TRANSFORMER

T5_TOKENS = 512
"""FLUX's T5 prompt length (the pipelines' max_sequence_length)."""


def _built(factory: Callable[[], Any], device: str) -> Any:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            return factory().eval()
    finally:
        torch.set_default_dtype(previous)


def counted(call: Callable[[], Any]) -> int:
    """FLOPs of one call (PyTorch's counter: 2 per multiply-add of matmuls, attention and convolutions)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        call()
    return int(counter.get_total_flops())


def qwen_edit(device: str) -> tuple[int, str]:
    """One step of a 1024² edit: the noisy latent's 64 x 64 tokens and the reference's, true CFG."""
    from diffusers import QwenImageTransformer2DModel

    model = _built(lambda: QwenImageTransformer2DModel(**QWEN_IMAGE_TRANSFORMER), device)
    side = 64  # 1024 / 8 (VAE) / 2 (patch)
    image = torch.zeros(1, 2 * side * side, int(QWEN_IMAGE_TRANSFORMER["in_channels"]), device=device)

    def forward(tokens: int) -> Any:
        text = torch.zeros(1, tokens, int(QWEN_IMAGE_TRANSFORMER["joint_attention_dim"]), device=device)
        return model(hidden_states=image, encoder_hidden_states=text,
                     encoder_hidden_states_mask=torch.ones(1, tokens, dtype=torch.long, device=device),
                     timestep=torch.ones(1, device=device), img_shapes=[[(1, side, side), (1, side, side)]],
                     return_dict=False)

    flops = counted(lambda: forward(PROMPT_TOKENS)) + counted(lambda: forward(NEGATIVE_TOKENS))
    return flops, (f"1024² edit, {2 * side * side} image tokens, text {PROMPT_TOKENS} + negative "
                   f"{NEGATIVE_TOKENS}: two forwards")


def flux(device: str, config: dict[str, Any], side: int) -> int:
    from diffusers import FluxTransformer2DModel

    model = _built(lambda: FluxTransformer2DModel(**config), device)
    tokens = (side // 16) ** 2
    return counted(lambda: model(
        hidden_states=torch.zeros(1, tokens, int(config["in_channels"]), device=device),
        encoder_hidden_states=torch.zeros(1, T5_TOKENS, int(config["joint_attention_dim"]), device=device),
        pooled_projections=torch.zeros(1, int(config["pooled_projection_dim"]), device=device),
        timestep=torch.ones(1, device=device), guidance=torch.ones(1, device=device),
        img_ids=torch.zeros(tokens, 3, device=device), txt_ids=torch.zeros(T5_TOKENS, 3, device=device),
        return_dict=False))


def seva(device: str) -> tuple[int, str]:
    """One network forward of one chunk as SEVA's sampler makes it (benchmarks/seva_speed.py's shapes)."""
    from seva.model import Seva, SevaParams, SGMWrapper  # SEVA's own code (.research/src)

    from benchmarks.seva_speed import LATENT, T  # isort: skip

    model = _built(lambda: SGMWrapper(Seva(SevaParams())), device)
    n = 2 * T
    x = torch.zeros(n, 4, LATENT, LATENT, device=device)
    concat = torch.zeros(n, 7, LATENT, LATENT, device=device)
    cond = {"crossattn": torch.zeros(n, 1, 1024, device=device), "concat": concat,
            "dense_vector": torch.zeros(n, 6, LATENT, LATENT, device=device)}
    flops = counted(lambda: model(x, torch.full((n,), 500, device=device), cond, num_frames=T))
    return flops, f"one chunk: 2 x {T} frames of {LATENT}² latents (guidance's halves in one batch)"


MODELS: dict[str, Callable[[str], tuple[int, str]]] = {
    "qwen-edit": qwen_edit,
    "flux-fill": lambda d: (flux(d, FILL_TRANSFORMER, 1024), f"1024² fill, {64**2} image + {T5_TOKENS} text tokens"),
    "flux-text": lambda d: (flux(d, TEXT_TRANSFORMER, 576), f"576² text to image, {36**2} image + {T5_TOKENS} text"),
    "seva": seva,
}


def count(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    torch.set_default_dtype(torch.bfloat16)  # the models' inputs as the pipelines hand them over
    for name in args.models:
        flops, what = MODELS[name](args.device)
        out[name] = {"flops_per_step": flops, "what": what}
        print(f"{name}: {flops / 1e12:.2f} TFLOP per step ({what})", flush=True)
    return {"count": out, "torch": torch.__version__}


SHAPES = ((8192, 8192, 8192), (8192, 3072, 12288), (8192, 12288, 3072), (8448, 3072, 3072), (4608, 3072, 15360))
"""(m, k, n): square, and FLUX's and Qwen-Image's MLP and projection shapes at a 1024² step's tokens."""


def event_median(call: Callable[[], Any], runs: int = 20, warm: int = 5) -> float:
    for _ in range(warm):
        call()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def peak(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for m, k, n in SHAPES:
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        bf16 = event_median(lambda: torch.mm(a, b))  # noqa: B023
        a8 = a.to(torch.float8_e4m3fn)
        b8 = b.t().contiguous().to(torch.float8_e4m3fn).t()  # column-major, as _scaled_mm wants it
        sa = torch.ones(m, 1, device="cuda")
        sb = torch.ones(1, n, device="cuda")
        fp8 = event_median(lambda: torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb,  # noqa: B023
                                                    out_dtype=torch.bfloat16))
        flops = 2 * m * k * n
        rows.append({"shape": [m, k, n], "bf16_tflops": flops / bf16 / 1e12, "fp8_rowwise_tflops": flops / fp8 / 1e12})
        print(f"{m}x{k}x{n}: bf16 {rows[-1]['bf16_tflops']:.0f} TFLOP/s, fp8 rowwise "
              f"{rows[-1]['fp8_rowwise_tflops']:.0f} TFLOP/s", flush=True)
    return {"peak": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                     "bf16_tflops": max(r["bf16_tflops"] for r in rows),
                     "fp8_rowwise_tflops": max(r["fp8_rowwise_tflops"] for r in rows), "shapes": rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["count", "peak"])
    parser.add_argument("--models", type=lambda s: s.split(","), default=["qwen-edit", "flux-fill", "flux-text"],
                        help=f"count: comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--device", default="meta", help="count: where the models are built (meta: no memory)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    result = count(args) if args.part == "count" else peak(args)
    result["command"] = "python " + " ".join(sys.argv)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
