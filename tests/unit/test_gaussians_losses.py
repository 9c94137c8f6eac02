"""The gaussians trainer's SSIM (both separable forms) against a direct 2-D reference, and the
degree-sliced SH coefficients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from genfab.stages.gaussians import losses  # noqa: E402
from genfab.stages.gaussians.core import sh_coefficients  # noqa: E402


def reference_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Textbook SSIM: one 11x11 Gaussian window (sigma 1.5) per channel, 'valid' borders, float64."""
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-x * x / (2 * 1.5**2))
    g = g / g.sum()
    window = torch.outer(g, g).expand(a.shape[1], 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=a.shape[1])
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


@pytest.mark.parametrize("shape", [(1, 3, 40, 57), (2, 3, 64, 64), (1, 3, 530, 24)])
@pytest.mark.parametrize("name", ["ssim_band", "ssim_conv", "ssim"])
def test_ssim_matches_the_2d_definition_with_gradients(shape: tuple[int, ...], name: str) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    a = torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True)
    b = (a.detach() + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = getattr(losses, name)(a, b)
    (grad_ours,) = torch.autograd.grad(ours, a)
    ref = reference_ssim(a, b)
    (grad_ref,) = torch.autograd.grad(ref, a)
    assert 0.3 < float(ref.detach()) < 0.99  # a non-trivial pair
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-9, atol=1e-12)


def test_ssim_of_an_image_with_itself_is_one_and_float32_stays_close() -> None:
    a = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    assert float(losses.ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    b = (a + 0.05).clamp(0, 1)
    assert float(losses.ssim(a, b)) == pytest.approx(float(reference_ssim(a.double(), b.double())), abs=1e-5)


def test_ssim_picks_the_band_form_up_to_its_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    monkeypatch.setattr(losses, "ssim_band", lambda a, b: used.append("band") or a.sum())
    monkeypatch.setattr(losses, "ssim_conv", lambda a, b: used.append("conv") or a.sum())
    side = losses.BAND_MAX_SIDE
    for w in (side, side + 1):
        losses.ssim(torch.zeros(1, 3, 16, w), torch.zeros(1, 3, 16, w))
    assert used == ["band", "conv"]


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_coefficients_hold_what_gsplat_reads_at_each_degree(degree: int) -> None:
    n = 5
    params = {"sh0": torch.nn.Parameter(torch.randn(n, 1, 3)), "shN": torch.nn.Parameter(torch.randn(n, 15, 3))}
    colors = sh_coefficients(params, degree)
    assert colors.shape == (n, (degree + 1) ** 2, 3)
    full = torch.cat([params["sh0"], params["shN"]], 1)
    assert torch.equal(colors, full[:, : (degree + 1) ** 2])
    colors.sum().backward()
    # every coefficient gets a gradient (zero where unused), so Adam steps all of them as before
    assert params["shN"].grad is not None and params["shN"].grad.shape == (n, 15, 3)
    assert torch.equal(params["shN"].grad[:, (degree + 1) ** 2 - 1 :], torch.zeros(n, 15 - (degree + 1) ** 2 + 1, 3))
    assert torch.equal(params["shN"].grad[:, : (degree + 1) ** 2 - 1], torch.ones(n, (degree + 1) ** 2 - 1, 3))
