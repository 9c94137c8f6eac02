"""FLUX attention's inputs in one pass: the query/key RMS norm and rotary embedding, with the values,
written in the layout the attention kernel reads (the compiled transformer).

Each FLUX attention normalises its queries and keys per head (`torch.nn.RMSNorm` over the 128-wide head)
and rotates them by the interleaved rotary embedding (diffusers' `apply_rotary_emb`: pairs (2i, 2i+1)
rotated by the token's angles). Inductor fuses the two, but the rotation's partner element is a gather
from another lane: in the single blocks it made one looped reduction that reads each head several
times, 123 µs per call at 5,120 tokens on an H100 (0.23 s of a 4.8 s FP8 fill), where the data take
about 40 µs to move. Here one Triton program per token and per query, key or value loads all heads of
that token once, reduces each head, splits the pairs in registers, rotates, and writes (batch, heads,
tokens, head_dim), the layout inductor also chose for cuDNN's attention (which ran 6 % slower on the
projections' own (batch, tokens, heads, head_dim) layout: benchmarks/flux_blocks.py, `rope`).

The double blocks' text and image streams have their own norm weights and are concatenated before the
rotation (text first): the op takes both and writes the concatenation directly.

Numerics are PyTorch's step for step: the norm in float32 (`x * rsqrt(mean(x²) + eps) * weight`),
rounded to the input's dtype as the norm's output is, then the rotation in float32 (`x·cos + x_rot·sin`)
rounded once. `qkv_norm_rope` is a PyTorch custom op (opaque to torch.compile, capturable in a CUDA
graph); off the GPU it runs `reference`, the same computation in PyTorch operations.
"""

from __future__ import annotations

from typing import Any

import torch


def _streams(image: torch.Tensor, text: torch.Tensor | None, weight: torch.Tensor
             ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(fused projection, its (query, key) norm weights) per stream, in the attention's order: text first."""
    streams = [(image, weight[0:2])]
    if text is not None:
        streams.insert(0, (text, weight[2:4]))
    return streams


def reference(image: torch.Tensor, text: torch.Tensor | None, weight: torch.Tensor, cos: torch.Tensor,
              sin: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
    """Queries and keys normed and rotated, and the values: (3, batch, heads, text + image tokens, head_dim).

    `image`, `text`: a fused QKV projection's output (batch, tokens, 3·heads·head_dim: queries, keys,
    values); `weight`: the norm weights (query, key of the image stream, then of the text stream);
    `cos`, `sin`: (text + image tokens, head_dim), float32."""
    dim = weight.shape[-1]
    parts = []
    for source, norms in _streams(image, text, weight):
        qkv = source.reshape(*source.shape[:2], 3, heads, dim).movedim(2, 0)
        normed = [torch.nn.functional.rms_norm(qkv[i], (dim,), norms[i].to(source.dtype), eps) for i in range(2)]
        parts.append(torch.stack([*normed, qkv[2]]))
    x = torch.cat(parts, dim=2)  # (3, batch, tokens, heads, head_dim)
    qk = x[:2]
    real, imag = qk.reshape(*qk.shape[:-1], -1, 2).unbind(-1)
    rotated = torch.stack([-imag, real], dim=-1).flatten(-2)
    qk = (qk.float() * cos[:, None] + rotated.float() * sin[:, None]).to(x.dtype)
    return torch.cat([qk, x[2:]]).transpose(2, 3).contiguous()


@torch.library.custom_op("genfab::qkv_norm_rope", mutates_args=())
def qkv_norm_rope(image: torch.Tensor, text: torch.Tensor | None, weight: torch.Tensor, cos: torch.Tensor,
                  sin: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
    if image.device.type != "cuda":
        return reference(image, text, weight, cos, sin, heads, eps)
    return _triton(image, text, weight, cos, sin, heads, eps)


@qkv_norm_rope.register_fake
def _(image: torch.Tensor, text: torch.Tensor | None, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
      heads: int, eps: float) -> torch.Tensor:
    tokens = image.shape[1] + (0 if text is None else text.shape[1])
    return image.new_empty((3, image.shape[0], heads, tokens, weight.shape[-1]))


NUM_WARPS = 4
"""Per program: one token's heads (24 × 128) of the query, the key or the value."""
_compiled: Any = None


def _triton(image: torch.Tensor, text: torch.Tensor | None, weight: torch.Tensor, cos: torch.Tensor,
            sin: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
    import triton

    batch, dim = image.shape[0], weight.shape[-1]
    tokens = image.shape[1] + (0 if text is None else text.shape[1])
    out = torch.empty((3, batch, heads, tokens, dim), dtype=image.dtype, device=image.device)
    weight, cos, sin = weight.float().contiguous(), cos.float().contiguous(), sin.float().contiguous()
    offset = 0
    for source, norms in _streams(image, text, weight):
        if source.stride(-1) != 1:
            source = source.contiguous()
        length = source.shape[1]
        _kernel()[(batch * length, 3)](
            source, norms, cos, sin, out, batch, length, offset, tokens, heads, source.stride(0), source.stride(1), eps,
            DIM=dim, BLOCK_HEADS=triton.next_power_of_2(heads), num_warps=NUM_WARPS)
        offset += length
    return out


def _kernel() -> Any:
    """The Triton kernel, defined at first use (Triton is imported only where a GPU runs)."""
    global _compiled
    if _compiled is None:
        import triton
        import triton.language as tl

        @triton.jit  # type: ignore[untyped-decorator]
        def qkv_norm_rope_token(src_ptr, weight_ptr, cos_ptr, sin_ptr, out_ptr, batches, length, offset,  # type: ignore[no-untyped-def]
                                tokens, heads, batch_stride, token_stride, eps, DIM: tl.constexpr,
                                BLOCK_HEADS: tl.constexpr):
            program = tl.program_id(0).to(tl.int64)
            which = tl.program_id(1).to(tl.int64)  # 0: query, 1: key, 2: value
            batch, token = program // length, program % length
            position = offset + token  # in the concatenated sequence: the rotation's row
            head = tl.arange(0, BLOCK_HEADS)[:, None]
            col = tl.arange(0, DIM)[None, :]
            inside = head < heads
            src = src_ptr + batch * batch_stride + token * token_stride + which * heads * DIM
            x = tl.load(src + head * DIM + col, mask=inside, other=0.0)
            # out[which, batch, head, position, :]
            dst = out_ptr + (((which * batches + batch) * heads + head) * tokens
                             + position) * DIM + col
            if which == 2:
                tl.store(dst, x, mask=inside)
            else:
                dtype = out_ptr.dtype.element_ty
                wide = x.to(tl.float32)
                rms = tl.rsqrt(tl.sum(wide * wide, axis=1) / DIM + eps)
                w = tl.load(weight_ptr + which * DIM + col)
                normed = (wide * rms[:, None] * w).to(dtype, fp_downcast_rounding="rtne").to(tl.float32)
                real, imag = tl.split(tl.reshape(normed, (BLOCK_HEADS, DIM // 2, 2)))
                angles = position * DIM + col
                cos_real, cos_imag = tl.split(tl.reshape(tl.load(cos_ptr + angles), (1, DIM // 2, 2)))
                sin_real, sin_imag = tl.split(tl.reshape(tl.load(sin_ptr + angles), (1, DIM // 2, 2)))
                rotated = tl.join(real * cos_real - imag * sin_real, imag * cos_imag + real * sin_imag)
                tl.store(dst, tl.reshape(rotated, (BLOCK_HEADS, DIM)).to(dtype, fp_downcast_rounding="rtne"),
                         mask=inside)

        _compiled = qkv_norm_rope_token
    return _compiled
