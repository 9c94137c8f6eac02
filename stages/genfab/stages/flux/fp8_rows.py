"""The MLP's GELU and its FP8 row quantisation in one pass (`fp8: rowwise` with `compile: blocks`).

torchao's dynamic rowwise FP8 quantises each linear layer's input on the fly: a per-row amax, a
scale, a cast. For the two linear layers fed by FLUX's 12,288-wide GELU (the double blocks' second
feed-forward layer, the single blocks' `proj_out`, whose input is the attention output and the GELU
side by side), inductor makes that an amax pass and a cast pass over the activation, each recomputing
the GELU: with the GEMMs halved by FP8, those passes were the largest cost after the GEMMs and the
attention (benchmarks/results/vistadream.md). Here one Triton program per row loads the
pre-activation (and the attention output), computes the GELU once, its amax and scale, and writes the
FP8 row: each byte is read once.

Numerics are torchao's, step for step: the GELU rounded to bf16, the amax of the row in bf16, the
scale `amax / 448` rounded to bf16 and widened to float32, the row divided by it, clamped to ±448 and
cast to float8_e4m3fn. (An all-zero row gets scale 0 and zeros, where torchao would divide 0 by 0.)
`gelu_fp8_rows` is a PyTorch custom op (opaque to torch.compile, capturable in a CUDA graph); off
the GPU it runs `reference`, the same computation in PyTorch operations.
"""

from __future__ import annotations

from typing import Any

import torch

from genfab.stages.flux.gelu import CUBIC, TWO_SQRT_2_OVER_PI, gelu_tanh

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
"""float8_e4m3fn's largest finite value: torchao's `quant_max`."""


def reference(pre: torch.Tensor, head: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows of [head, gelu(pre)] in FP8, one float32 scale per row); `pre` and `head` are (rows, width)
    bf16."""
    row = gelu_tanh(pre)
    if head is not None:
        row = torch.cat([head, row], dim=-1)
    scale = (row.abs().amax(dim=-1, keepdim=True) / FP8_MAX).float()
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    return (row.float() / safe).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


@torch.library.custom_op("genfab::gelu_fp8_rows", mutates_args=())
def gelu_fp8_rows(pre: torch.Tensor, head: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if pre.device.type != "cuda":
        return reference(pre, head)
    return _triton(pre, head)


@gelu_fp8_rows.register_fake
def _(pre: torch.Tensor, head: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    width = pre.shape[-1] + (0 if head is None else head.shape[-1])
    return pre.new_empty((pre.shape[0], width), dtype=FP8), pre.new_empty((pre.shape[0], 1), dtype=torch.float32)


def _triton(pre: torch.Tensor, head: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    import triton

    rows, width = pre.shape
    pre = pre if pre.stride(-1) == 1 else pre.contiguous()
    head_width = 0 if head is None else head.shape[-1]
    if head is not None and head.stride(-1) != 1:
        head = head.contiguous()
    out = torch.empty((rows, head_width + width), dtype=FP8, device=pre.device)
    scale = torch.empty((rows, 1), dtype=torch.float32, device=pre.device)
    _kernel()[(rows,)](
        pre, pre if head is None else head, out, scale, width, head_width, pre.stride(0),
        0 if head is None else head.stride(0), out.stride(0),
        BLOCK=triton.next_power_of_2(width), HEAD_BLOCK=triton.next_power_of_2(max(head_width, 1)),
        HAS_HEAD=head is not None, K2=TWO_SQRT_2_OVER_PI, CUB=CUBIC, FMAX=FP8_MAX, num_warps=NUM_WARPS)
    return out, scale


NUM_WARPS = 16
"""Per program (one row). H100, 4,608 rows of 3,072 + 12,288: 163, 114, 111, 107 µs with 4, 8, 16, 32 warps;
4,096 rows of 12,288: 137, 79, 80, 79 µs."""
_compiled: Any = None


def _kernel() -> Any:
    """The Triton kernel, defined at first use (Triton is imported only where a GPU runs)."""
    global _compiled
    if _compiled is None:
        import triton
        import triton.language as tl

        @triton.jit  # type: ignore[untyped-decorator]
        def gelu_fp8_row(pre_ptr, head_ptr, out_ptr, scale_ptr, width, head_width, pre_stride,  # type: ignore[no-untyped-def]
                         head_stride, out_stride, BLOCK: tl.constexpr, HEAD_BLOCK: tl.constexpr,
                         HAS_HEAD: tl.constexpr, K2: tl.constexpr, CUB: tl.constexpr, FMAX: tl.constexpr):
            row = tl.program_id(0).to(tl.int64)
            cols = tl.arange(0, BLOCK)
            inside = cols < width
            x = tl.load(pre_ptr + row * pre_stride + cols, mask=inside, other=0.0).to(tl.float32)
            act = (x * tl.sigmoid(K2 * (x + CUB * x * x * x))).to(tl.bfloat16).to(tl.float32)
            amax = tl.max(tl.abs(act), axis=0)
            if HAS_HEAD:
                head_cols = tl.arange(0, HEAD_BLOCK)
                head_inside = head_cols < head_width
                h = tl.load(head_ptr + row * head_stride + head_cols, mask=head_inside, other=0.0).to(tl.float32)
                amax = tl.maximum(amax, tl.max(tl.abs(h), axis=0))
            scale = (amax / FMAX).to(tl.bfloat16).to(tl.float32)
            safe = tl.where(scale == 0.0, 1.0, scale)
            out = out_ptr + row * out_stride
            if HAS_HEAD:
                tl.store(out + head_cols, tl.clamp(h / safe, -FMAX, FMAX).to(tl.float8e4nv), mask=head_inside)
            tl.store(out + head_width + cols, tl.clamp(act / safe, -FMAX, FMAX).to(tl.float8e4nv), mask=inside)
            tl.store(scale_ptr + row, scale)

        _compiled = gelu_fp8_row
    return _compiled
