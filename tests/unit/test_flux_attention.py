"""The fused query/key norm and rotary embedding (`genfab.stages.flux.qkv_rope`, `attention`) on the CPU:
its PyTorch reference inside diffusers' FLUX blocks gives diffusers' own output, calls it does not cover
go to diffusers' processor, and modules it cannot serve are left alone. The Triton kernel itself is
compared with the reference in tests/gpu/test_flux_gpu.py."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from genfab.stages.flux import attention, qkv_rope  # noqa: E402
from tests.unit.tiny_flux import step_inputs, tiny_transformer  # noqa: E402


def test_the_transformer_with_the_fused_op_is_diffusers_transformer() -> None:
    plain, fused = tiny_transformer(), tiny_transformer()
    for model in (plain, fused):
        model.fuse_qkv_projections()
    with torch.no_grad():  # norm weights that are not ones, so a swapped weight would show
        for module in fused.modules():
            if isinstance(module, torch.nn.RMSNorm):
                module.weight.uniform_(0.5, 1.5)
        plain.load_state_dict(fused.state_dict())
    assert attention.install(fused) == 2 + 2  # two double blocks, two single blocks
    assert all(type(m.processor).__name__ == "NormRopeProcessor" for m in fused.modules()
               if type(m).__name__ == "FluxAttention")
    with torch.no_grad():
        expected, got = plain(**step_inputs())[0], fused(**step_inputs())[0]
    assert torch.equal(expected, got)


def test_a_call_it_does_not_cover_runs_diffusers_processor() -> None:
    model = tiny_transformer()
    model.fuse_qkv_projections()
    block = model.single_transformer_blocks[0].attn
    original = block.processor
    attention.install(model)
    hidden = torch.randn(1, 5, 32).to(torch.bfloat16)
    with torch.no_grad():  # no rotary embedding: not the op's case
        assert torch.equal(block.processor(block, hidden), original(block, hidden))


def test_unfused_projections_keep_diffusers_processor(caplog: pytest.LogCaptureFixture) -> None:
    model = tiny_transformer()
    with caplog.at_level("WARNING", logger="genfab.stages"):
        assert attention.install(model) == 0
    assert "4 attention modules keep diffusers'" in caplog.text


def test_the_op_registration_is_consistent() -> None:
    """The fake (shapes for torch.compile) and the real op agree, with and without a text stream."""
    g = torch.Generator().manual_seed(0)
    heads, dim = 2, 8
    image = torch.randn(2, 6, 3 * heads * dim, generator=g).to(torch.bfloat16)
    text = torch.randn(2, 3, 3 * heads * dim, generator=g).to(torch.bfloat16)
    weight = torch.rand(4, dim, generator=g)
    angles = torch.rand(9, dim, generator=g)
    op = qkv_rope.qkv_norm_rope
    torch.library.opcheck(op, (image, text, weight, angles.cos(), angles.sin(), heads, 1e-6))
    torch.library.opcheck(op, (image, None, weight, angles[3:].cos(), angles[3:].sin(), heads, 1e-6))
    assert op(image, text, weight, angles.cos(), angles.sin(), heads, 1e-6).shape == (3, 2, 2, 9, 8)
