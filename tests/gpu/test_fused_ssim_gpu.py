"""GPU tier: the Triton SSIM (fused_ssim.py) against the autograd SSIM it replaces on CUDA."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("triton")

from genfab.stages.gaussians import fused_ssim, losses  # noqa: E402


def reference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Value and gradient of `losses.ssim_conv` (autograd) in float64 on the CPU."""
    x = a.detach().double().cpu().requires_grad_()
    value = losses.ssim_conv(x, b.detach().double().cpu())
    value.backward()
    assert x.grad is not None
    return float(value.detach()), x.grad


@pytest.mark.parametrize(("batch", "height", "width", "channels_last"), [
    (1, 11, 11, False),  # one output pixel
    (1, 37, 53, True),  # odd sizes, tiles cut at both edges; the renders' [B, H, W, 3] layout
    (2, 70, 130, True),  # two images in one call (packed scenes)
    (1, 256, 192, False),
])
def test_value_and_gradient_equal_the_autograd_ssim(batch: int, height: int, width: int,
                                                    channels_last: bool) -> None:
    gen = torch.Generator(device="cuda").manual_seed(height * width)
    target = torch.rand(batch, height, width, 3, device="cuda", generator=gen)
    pred = (target + 0.1 * torch.randn(target.shape, device="cuda", generator=gen)).clamp(0, 1)
    if channels_last:
        a, b = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)  # strided views, as training passes them
    else:
        a, b = pred.permute(0, 3, 1, 2).contiguous(), target.permute(0, 3, 1, 2).contiguous()
    a = a.detach().requires_grad_()
    assert fused_ssim.available(a)
    value = losses.ssim(a, b)
    (2.5 * value).backward()
    want_value, want_grad = reference(a, b)
    assert float(value.detach()) == pytest.approx(want_value, abs=2e-6)
    assert a.grad is not None and a.grad.shape == a.shape
    got = a.grad.double().cpu()
    assert torch.allclose(got, 2.5 * want_grad, rtol=1e-3, atol=1e-4 * float(want_grad.abs().max()))
    with torch.no_grad():  # the evaluation's call saves nothing and gives the same value
        assert float(losses.ssim(a, b)) == pytest.approx(float(value.detach()), abs=1e-7)


def test_a_1024_image_keeps_three_maps_not_the_blurs() -> None:
    """At 1024x1024 the autograd SSIM adds ~320 MiB at its peak (benchmarks/results/gaussians.md); the
    fused one keeps three derivative maps and writes one gradient: under 70 MiB."""
    target = torch.rand(1, 3, 1024, 1024, device="cuda")
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1).requires_grad_()
    added = {}
    for name, fn in (("fused", losses.ssim), ("conv", losses.ssim_conv)):
        fn(pred, target).backward()
        pred.grad = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(pred, target).backward()
        torch.cuda.synchronize()
        added[name] = (torch.cuda.max_memory_allocated() - base) / 2**20
        pred.grad = None
    print(f"SSIM 1024x1024 forward+backward, added peak MiB: {added}")
    assert added["fused"] < 70 < added["conv"]


def test_a_target_that_needs_a_gradient_takes_the_autograd_path() -> None:
    a = torch.rand(1, 3, 32, 32, device="cuda", requires_grad=True)
    b = torch.rand(1, 3, 32, 32, device="cuda", requires_grad=True)
    losses.ssim(a, b).backward()
    assert a.grad is not None and b.grad is not None
    with pytest.raises(ValueError, match="first image only"):
        fused_ssim.fused_ssim(a, b)
