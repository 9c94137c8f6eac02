"""SEVA's speed options (`worldexplorer.seva.runtime`, genfab.stages.worldexplorer.seva_speed) on the CPU.

`Attention` below is a stand-in for SEVA's `seva.modules.transformer.Attention` (the same parts and the
same computation: three bias-free projections, heads split from the width, SDPA, an output projection
with bias); the rewrite is checked against SEVA's own class on the GPU (tests/gpu/test_research_gpu.py,
benchmarks/seva_speed.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.nn.attention import SDPBackend  # noqa: E402

from genfab.api.scenejob import SevaRuntime  # noqa: E402
from genfab.stages.flux.speed import EagerFallback  # noqa: E402
from genfab.stages.worldexplorer import seva_speed  # noqa: E402


class Attention(torch.nn.Module):
    """Stand-in for SEVA's Attention (the rewrite finds it by its class name and parts)."""

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 2, dim_head: int = 8) -> None:
        super().__init__()
        self.heads, inner = heads, heads * dim_head
        self.to_q = torch.nn.Linear(query_dim, inner, bias=False)
        self.to_k = torch.nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = torch.nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = torch.nn.Sequential(torch.nn.Linear(inner, query_dim), torch.nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2)
                   for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))  # type: ignore[no-any-return]


class Block(torch.nn.Module):
    """A transformer block's two attentions, as SEVA's TransformerBlock holds them, and a norm."""

    def __init__(self) -> None:
        super().__init__()
        self.attn1 = Attention(16)
        self.attn2 = Attention(16, context_dim=12)
        self.norm = torch.nn.LayerNorm(16)
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)


def test_rewritten_attentions_compute_what_sevas_did() -> None:
    torch.manual_seed(0)
    block = Block().eval()
    x, one_token, tokens = torch.randn(3, 10, 16), torch.randn(3, 1, 12), torch.randn(3, 5, 12)
    with torch.no_grad():
        expected = [block.attn1(x), block.attn2(x, one_token), block.attn2(x, tokens)]
        assert seva_speed.rewrite_attention(block, [SDPBackend.MATH]) == 2
        got = [block.attn1(x), block.attn2(x, one_token), block.attn2(x, tokens)]
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape
        torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-6)
    assert hasattr(block.attn1, "to_qkv") and not hasattr(block.attn2, "to_qkv")  # keys from another input
    assert block.attn1.to_qkv.weight.shape == (48, 16)


def test_one_token_cross_attention_skips_the_queries() -> None:
    """A softmax over one key is 1: the output is the value projection, whatever the queries."""
    block = Block().eval()
    seva_speed.rewrite_attention(block, [SDPBackend.MATH])
    context = torch.randn(2, 1, 12)
    with torch.no_grad():
        a = block.attn2(torch.randn(2, 7, 16), context)
        b = block.attn2(torch.zeros(2, 7, 16), context)
        value = block.attn2.to_out(block.attn2.to_v(context))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, value.expand(2, 7, 16))


def test_weights_are_cast_once_norms_stay() -> None:
    block = Block().to(torch.bfloat16)
    assert seva_speed.cast_weights(block, torch.float16) == 9  # 4 linear layers in each attention, one conv
    assert block.attn1.to_q.weight.dtype == block.conv.weight.dtype == block.attn2.to_out[0].bias.dtype == torch.float16
    assert block.norm.weight.dtype == torch.bfloat16


def test_off_cuda_nothing_is_applied() -> None:
    """SEVA samples on CUDA only: on the CPU (the stand-in tier) its network is left as loaded."""
    block = Block()
    forward = block.attn1.forward
    assert seva_speed.apply(block, SevaRuntime(), torch.device("cpu")) == []
    assert block.attn1.forward == forward and not hasattr(block.attn1, "to_qkv")


@pytest.mark.parametrize(("name", "backends"), [
    ("flash", [SDPBackend.FLASH_ATTENTION]),
    ("cudnn", [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]),
])
def test_attention_option_names_the_kernels(name: str, backends: list[SDPBackend]) -> None:
    assert seva_speed.sdpa_backends(name) == backends


class AutoEncoder(torch.nn.Module):
    """Stand-in for SEVA's AutoEncoder: a VAE in `module` and its two one-chunk passes."""

    def __init__(self) -> None:
        super().__init__()
        self.module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GroupNorm(2, 4))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)  # type: ignore[no-any-return]

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


def test_autoencoder_passes_are_wrapped_on_the_instance_and_can_be_removed() -> None:
    """`compile: all` compiles this instance's passes (lazily: nothing compiles until a call) with float16
    convolution weights and norms as loaded; removing them gives SEVA's own methods back."""
    ae = AutoEncoder()
    seva_speed.compile_autoencoder(ae, EagerFallback(seva_speed.FIELD))
    assert set(seva_speed.AUTOENCODER_PASSES) <= set(vars(ae))
    assert isinstance(ae.module[0], seva_speed.AlignedConv2d)  # RGB in: 3 channels
    assert ae.module[0].conv.weight.dtype == torch.float16 and ae.module[1].weight.dtype == torch.float32
    seva_speed.uncompile_autoencoder(ae)
    assert not set(seva_speed.AUTOENCODER_PASSES) & set(vars(ae))
    assert ae._encode.__func__ is AutoEncoder._encode  # type: ignore[attr-defined]


def test_the_autoencoder_is_left_alone_off_cuda_and_without_compile_all() -> None:
    ae = AutoEncoder()
    assert seva_speed.apply(Block(), SevaRuntime(compile="all"), torch.device("cpu"), ae) == []
    assert not set(seva_speed.AUTOENCODER_PASSES) & set(vars(ae))


@pytest.mark.parametrize(("conv", "padded"), [
    (torch.nn.Conv2d(11, 16, 3, padding=1), (16, 16)),  # SEVA's input convolution (11 channels in)
    (torch.nn.Conv2d(6, 16, 1), (16, 8)),  # a residual block's camera convolution
    (torch.nn.Conv2d(16, 4, 3, padding=1), (8, 16)),  # the output convolution (4 out)
    (torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), (8, 8)),  # the VAE's RGB in, no bias
])
def test_aligned_convolutions_compute_the_same_convolution(conv: torch.nn.Conv2d, padded: tuple[int, int]) -> None:
    torch.manual_seed(0)
    holder = torch.nn.Sequential(conv, torch.nn.Conv2d(8, 8, 1, groups=2))  # grouped: left alone
    x = torch.randn(2, conv.in_channels, 9, 9)
    with torch.no_grad():
        expected = conv(x)
        assert seva_speed.align_convolutions(holder) == 1
        aligned = holder[0]
        got = aligned(x)
    assert isinstance(aligned, seva_speed.AlignedConv2d) and isinstance(holder[1], torch.nn.Conv2d)
    assert tuple(aligned.conv.weight.shape[:2]) == padded
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_aligned_channel_counts_are_left_alone() -> None:
    holder = torch.nn.Sequential(torch.nn.Conv2d(16, 320, 3), torch.nn.Conv2d(320, 8, 1))
    assert seva_speed.align_convolutions(holder) == 0
    assert all(type(m) is torch.nn.Conv2d for m in holder)
