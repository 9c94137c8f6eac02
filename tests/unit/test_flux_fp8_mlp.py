"""The FP8 transformer's fused GELU-fed layers on the CPU: the GELU's sigmoid form, the one-pass row
quantisation's reference against torchao's steps, and diffusers' FLUX blocks with the fused forwards
(weights quantised here by hand, as torchao's rowwise config does). The Triton kernel itself is
compared with the reference in tests/gpu/test_flux_gpu.py."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from genfab.stages.flux import fp8_mlp, fp8_rows, gelu  # noqa: E402
from tests.unit.tiny_flux import step_inputs, tiny_transformer  # noqa: E402

FP8_MAX = 448.0


def rowwise(linear: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """What torchao's `PerRow` config makes of a weight: FP8 rows and one float32 scale per output row."""
    weight = linear.weight.detach()
    scale = (weight.abs().amax(dim=1, keepdim=True) / FP8_MAX).float()
    return (weight.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).t(), scale.t()


def test_the_sigmoid_form_is_the_tanh_gelu() -> None:
    x = torch.linspace(-8, 8, 10001)
    assert torch.allclose(gelu.gelu_tanh(x), torch.nn.functional.gelu(x, approximate="tanh"), atol=1e-6)
    model = tiny_transformer()
    assert gelu.rewrite(model) == 2 * 2 + 2  # double blocks: ff and ff_context; single blocks: act_mlp
    assert gelu.rewrite(model) == 0


def test_the_row_quantisation_is_torchaos_steps() -> None:
    g = torch.Generator().manual_seed(0)
    pre = (torch.randn(64, 96, generator=g) * 3).to(torch.bfloat16)
    head = torch.randn(64, 32, generator=g).to(torch.bfloat16)
    rows, scale = fp8_rows.reference(pre, head)
    # torchao's rowwise activation quantisation of the layer's input, written out
    x = torch.cat([head, torch.nn.functional.gelu(pre, approximate="tanh")], dim=-1)
    expected_scale = (x.abs().amax(dim=-1, keepdim=True) / FP8_MAX).float()
    expected = (x.float() / expected_scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    assert rows.shape == (64, 128) and rows.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.allclose(scale, expected_scale, rtol=1e-2)
    assert (rows.float() != expected.float()).float().mean() < 0.01  # sigmoid vs tanh: rare 1-ulp flips
    assert torch.allclose(rows.float() * scale, x.float(), rtol=0.07, atol=1e-3)  # e4m3: 3 mantissa bits


def test_an_all_zero_row_quantises_to_zeros_not_nan() -> None:
    rows, scale = fp8_rows.gelu_fp8_rows(torch.zeros(2, 16, dtype=torch.bfloat16), None)
    assert torch.equal(scale, torch.zeros(2, 1)) and torch.equal(rows.float(), torch.zeros(2, 16))


def test_short_inputs_keep_the_blocks_own_forward_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below MIN_ROWS the fused forwards run diffusers' own computation: the single block's forward,
    re-stated in fp8_mlp, must be diffusers' to the bit."""
    model, plain = tiny_transformer(), tiny_transformer()
    assert fp8_mlp.install(model, rowwise) == 4
    monkeypatch.setattr(fp8_mlp, "MIN_ROWS", 10**6)
    with torch.no_grad():
        assert torch.equal(model(**step_inputs())[0], plain(**step_inputs())[0])


def cpu_rowwise_scaled_mm() -> bool:
    """PyTorch's CPU `_scaled_mm` takes per-row scales from 2.13 on (2.11's takes one scale per tensor)."""
    a = torch.ones(16, 16).to(torch.float8_e4m3fn)
    try:
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.bfloat16)
    except RuntimeError:
        return False
    return True


def test_fused_layers_match_the_bf16_model_to_fp8_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    if not cpu_rowwise_scaled_mm():
        pytest.skip(f"torch {torch.__version__}'s CPU _scaled_mm has no per-row scales (the GPU tier runs this path)")
    model, plain = tiny_transformer(), tiny_transformer()
    fp8_mlp.install(model, rowwise)
    monkeypatch.setattr(fp8_mlp, "MIN_ROWS", 1)
    calls: list[int] = []
    real = fp8_mlp.gelu_fp8_rows
    monkeypatch.setattr(fp8_mlp, "gelu_fp8_rows", lambda pre, head: calls.append(1) or real(pre, head))
    with torch.no_grad():
        fused, reference = model(**step_inputs())[0].float(), plain(**step_inputs())[0].float()
    assert len(calls) == 2 + 2  # each double block's image feed-forward, each single block
    cosine = torch.nn.functional.cosine_similarity(fused.flatten(), reference.flatten(), dim=0)
    assert cosine > 0.99 and not torch.equal(fused, reference)


def test_single_blocks_of_another_diffusers_forward_keep_torchaos_path(monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(fp8_mlp, "SINGLE_BLOCK_SIGNATURE", ["self", "hidden_states", "temb"])
    model = tiny_transformer()
    with caplog.at_level("WARNING", logger="genfab.stages"):
        assert fp8_mlp.install(model, rowwise) == 2  # the double blocks only
    assert sum("not 0.42's" in r.getMessage() for r in caplog.records) == 1
