"""The FP8 transformer's GELU-fed linear layers on `fp8_rows.gelu_fp8_rows` (`fp8: rowwise`, compiled).

After torchao has quantised the weights, two places of diffusers' FLUX blocks get a forward that
hands the GELU's pre-activation straight to the one-pass quantisation and multiplies with the layer's
FP8 weight by `torch._scaled_mm`, exactly as torchao's rowwise linear does (its data, its scales, fast
accumulation, the bias in the GEMM):

- the double blocks' image feed-forward (`ff`: `net[0].proj`, GELU, `net[2]`);
- the single blocks' tail: `proj_out` over [attention output, GELU(`proj_mlp`)], whose concatenation
  the kernel writes directly (diffusers' `FluxSingleTransformerBlock.forward`, otherwise unchanged).

Short activations (the text stream's 512 tokens) keep torchao's path: one program per row does not
fill the GPU there (`MIN_ROWS`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import torch

from genfab.stages.flux.fp8_rows import gelu_fp8_rows

MIN_ROWS = 2048
"""Below this many rows inductor's two passes were as fast (H100: 512 rows, 54 vs 62 µs)."""
WEIGHT, SCALE = "genfab_fp8_weight_t", "genfab_fp8_scale_t"
SINGLE_BLOCK_SIGNATURE = ["self", "hidden_states", "encoder_hidden_states", "temb", "image_rotary_emb",
                          "joint_attention_kwargs"]
"""The forward `_single_block` re-states (diffusers 0.42); another one is left alone."""
log = logging.getLogger("genfab.stages")


def fp8_weight(linear: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(the FP8 weight transposed for `_scaled_mm`, its per-output-row scales as a row) of a linear layer
    that torchao quantised rowwise (a `Float8Tensor` weight: `qdata` (out, in), `scale` (out, 1))."""
    weight = linear.weight
    return weight.qdata.t(), weight.scale.t()


def install(transformer: torch.nn.Module, weight_of: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] = fp8_weight
            ) -> int:
    """Give every double block's image feed-forward and every single block the fused forward; returns
    how many were changed. The transposed weight and scales are views (no copy), kept as buffers so
    that the compiled blocks take them as inputs."""
    count, unknown = 0, False
    module: Any
    for module in transformer.modules():
        kind = type(module).__name__
        if kind == "FluxTransformerBlock":
            _attach(module.ff.net[2], weight_of)
            module.ff.forward = _feed_forward(module.ff)
            count += 1
        elif kind == "FluxSingleTransformerBlock":
            if list(inspect.signature(type(module).forward).parameters) != SINGLE_BLOCK_SIGNATURE:
                unknown = True
                continue
            _attach(module.proj_out, weight_of)
            module.forward = _single_block(module)
            count += 1
    if unknown:
        log.warning("fp8: this diffusers' FluxSingleTransformerBlock.forward is not 0.42's; the single blocks keep "
                    "torchao's quantisation (slower, same result)")
    return count


def _attach(linear: torch.nn.Linear, weight_of: Callable[[Any], tuple[torch.Tensor, torch.Tensor]]) -> None:
    weight, scale = weight_of(linear)
    linear.register_buffer(WEIGHT, weight, persistent=False)
    linear.register_buffer(SCALE, scale, persistent=False)


def scaled_linear(rows: torch.Tensor, scale: torch.Tensor, linear: torch.nn.Linear) -> torch.Tensor:
    """torchao's rowwise FP8 linear on an already quantised input."""
    return torch._scaled_mm(rows, getattr(linear, WEIGHT), scale_a=scale, scale_b=getattr(linear, SCALE),
                            bias=linear.bias, out_dtype=torch.bfloat16, use_fast_accum=True)


def _mlp_out(pre: torch.Tensor, head: torch.Tensor | None, linear: torch.nn.Linear,
             plain: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`linear`([head, GELU(pre)]) through the one-pass quantisation, or `plain()` for short inputs."""
    batch, tokens = pre.shape[:2]
    if batch * tokens < MIN_ROWS:
        return plain()
    rows, scale = gelu_fp8_rows(pre.reshape(batch * tokens, -1),
                                None if head is None else head.reshape(batch * tokens, -1))
    return scaled_linear(rows, scale, linear).reshape(batch, tokens, -1)


def _feed_forward(ff: Any) -> Callable[..., torch.Tensor]:
    """diffusers' `FeedForward` ("gelu-approximate": projection + GELU, dropout 0, linear) for one block."""
    first, last = ff.net[0], ff.net[2]

    def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        pre = first.proj(hidden_states)
        return _mlp_out(pre, None, last, lambda: last(first.gelu(pre)))

    return forward


def _single_block(block: Any) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """diffusers 0.42's `FluxSingleTransformerBlock.forward`, with its MLP tail fused."""

    def forward(hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, temb: torch.Tensor,
                image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
                joint_attention_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        text_seq_len = encoder_hidden_states.shape[1]
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        residual = hidden_states
        norm_hidden_states, gate = block.norm(hidden_states, emb=temb)
        pre = block.proj_mlp(norm_hidden_states)
        attn_output = block.attn(hidden_states=norm_hidden_states, image_rotary_emb=image_rotary_emb,
                                 **(joint_attention_kwargs or {}))
        out = _mlp_out(pre, attn_output, block.proj_out,
                       lambda: block.proj_out(torch.cat([attn_output, block.act_mlp(pre)], dim=2)))
        hidden_states = residual + gate.unsqueeze(1) * out
        if hidden_states.dtype == torch.float16:
            hidden_states = hidden_states.clip(-65504, 65504)
        return hidden_states[:, :text_seq_len], hidden_states[:, text_seq_len:]

    return forward
