"""A tiny random FLUX transformer (diffusers' own class) and one denoising step's inputs, for the CPU
tests of genfab's fused FLUX operations."""

from __future__ import annotations

from typing import Any

import torch


def tiny_transformer() -> Any:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(patch_size=1, in_channels=8, out_channels=4, num_layers=2, num_single_layers=2,
                                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                  pooled_projection_dim=8, guidance_embeds=True, axes_dims_rope=(4, 6, 6)
                                  ).to(torch.bfloat16).eval()


def step_inputs() -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    bf16 = torch.bfloat16
    return {"hidden_states": torch.randn(1, 24, 8, generator=g).to(bf16),
            "encoder_hidden_states": torch.randn(1, 6, 16, generator=g).to(bf16),
            "pooled_projections": torch.randn(1, 8, generator=g).to(bf16),
            "timestep": torch.full((1,), 0.5, dtype=bf16), "guidance": torch.full((1,), 3.0),
            "img_ids": torch.rand(24, 3, generator=g).to(bf16), "txt_ids": torch.zeros(6, 3, dtype=bf16),
            "return_dict": False}
