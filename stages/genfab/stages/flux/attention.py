"""FLUX attention with the query/key norm and rotary embedding in one pass (`qkv_rope`), for the compiled
transformer.

`install` gives each of diffusers' `FluxAttention` modules (fused QKV projections, RMS norms with
weights) a processor that is diffusers 0.42's `FluxAttnProcessor` except for that step: the fused
projections go to `qkv_norm_rope` whole, which writes the normed, rotated queries and keys and the
values (text stream first in the double blocks) where diffusers would norm, concatenate and rotate. The
attention kernel (`dispatch_attention_fn` with the processor's backend) and the output projections are
diffusers'. A call it does not cover (an attention mask, context parallelism, rotary embeddings not
given as (cos, sin)) runs the processor it replaced, unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from genfab.stages.flux.qkv_rope import qkv_norm_rope

WEIGHT = "genfab_qk_norm_weight"
"""The attention module's buffer of its norm weights: query and key of the image stream, then of the text
stream (float32, one row each)."""
log = logging.getLogger("genfab.stages")


class NormRopeProcessor:
    """diffusers' `FluxAttnProcessor` with `qkv_norm_rope`; `replaced` handles the calls it does not cover."""

    def __init__(self, replaced: Any, eps: float) -> None:
        from diffusers.models.attention_dispatch import dispatch_attention_fn

        self.replaced = replaced
        self.eps = eps
        self._dispatch = dispatch_attention_fn
        # diffusers' `set_attention_backend` sets these on each module's processor
        self._attention_backend = getattr(replaced, "_attention_backend", None)
        self._parallel_config = getattr(replaced, "_parallel_config", None)

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None) -> Any:
        joint = encoder_hidden_states is not None
        if (attention_mask is not None or not isinstance(image_rotary_emb, tuple) or self._parallel_config is not None
                or joint != (attn.added_kv_proj_dim is not None)):
            self.replaced._attention_backend = self._attention_backend
            return self.replaced(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        added = attn.to_added_qkv(encoder_hidden_states) if joint else None
        cos, sin = image_rotary_emb
        qkv = qkv_norm_rope(attn.to_qkv(hidden_states), added, getattr(attn, WEIGHT), cos, sin, attn.heads, self.eps)
        # diffusers' attention functions take (batch, tokens, heads, head_dim): views of the op's layout
        query, key, value = qkv.transpose(2, 3).unbind(0)
        hidden_states = self._dispatch(query, key, value, attn_mask=None, backend=self._attention_backend,
                                       parallel_config=None)
        hidden_states = hidden_states.flatten(2, 3).to(query.dtype)
        if encoder_hidden_states is None:
            return hidden_states
        text = encoder_hidden_states.shape[1]
        encoder_hidden_states, hidden_states = hidden_states.split_with_sizes(
            [text, hidden_states.shape[1] - text], dim=1)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.contiguous()))
        return hidden_states, attn.to_add_out(encoder_hidden_states.contiguous())


def install(transformer: torch.nn.Module) -> int:
    """Give every FLUX attention that qualifies a `NormRopeProcessor`; returns how many. Call after
    `fuse_qkv_projections` and after the norm weights are final (they are copied into a buffer)."""
    count, skipped = 0, 0
    module: Any
    for module in transformer.modules():
        if type(module).__name__ != "FluxAttention":
            continue
        norms = _norms(module)
        if norms is None:
            skipped += 1
            continue
        module.register_buffer(WEIGHT, torch.stack([norm.weight.detach().float() for norm in norms]),
                               persistent=False)
        module.set_processor(NormRopeProcessor(module.processor, float(norms[0].eps or 0.0)))
        count += 1
    if skipped:
        log.warning("flux attention: %d attention modules keep diffusers' query/key norm and rotation (unfused "
                    "projections, another processor or norm kind)", skipped)
    return count


def _norms(module: Any) -> list[torch.nn.RMSNorm] | None:
    """The module's query/key norms (image stream, then text stream) when the fused op covers it: RMS norms
    with weights and one explicit epsilon."""
    if type(module.processor).__name__ != "FluxAttnProcessor" or not getattr(module, "fused_projections", False):
        return None
    names = ["norm_q", "norm_k"]
    if module.added_kv_proj_dim is not None:
        if not hasattr(module, "to_added_qkv"):
            return None
        names += ["norm_added_q", "norm_added_k"]
    norms = [getattr(module, name) for name in names]
    dim = module.head_dim
    plain = all(isinstance(n, torch.nn.RMSNorm) and n.weight is not None and n.eps is not None for n in norms)
    if (not plain or dim & (dim - 1) or module.to_qkv.out_features != 3 * module.heads * dim
            or len({n.eps for n in norms}) != 1):
        return None
    return norms
