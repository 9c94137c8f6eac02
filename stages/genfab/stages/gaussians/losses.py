"""Image losses and metrics on the GPU: L1, SSIM (separable Gaussian window), PSNR, LPIPS."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

_WINDOWS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _window(device: torch.device, dtype: torch.dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    key = (device, dtype)
    if key not in _WINDOWS:
        x = torch.arange(size, dtype=torch.float64) - size // 2
        g = torch.exp(-(x * x) / (2 * sigma * sigma))
        _WINDOWS[key] = (g / g.sum()).to(device=device, dtype=dtype)
    return _WINDOWS[key]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [B, 3, H, W] images in [0, 1] (11x11 Gaussian window, sigma 1.5, 'valid'
    borders: the definition torchmetrics and the 3DGS papers use). The window is applied as two 1-D
    passes over the five statistics at once, which is what makes it cheap."""
    c = a.shape[1]
    g = _window(a.device, a.dtype)
    stats = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    k = g.numel()
    horiz = g.view(1, 1, 1, k).expand(5 * c, 1, 1, k)
    vert = g.view(1, 1, k, 1).expand(5 * c, 1, k, 1)
    blurred = F.conv2d(F.conv2d(stats, horiz, groups=5 * c), vert, groups=5 * c)
    mu_a, mu_b, aa, bb, ab = blurred.split(c, dim=1)
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return value.mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(F.mse_loss(a, b))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class Lpips:
    """LPIPS (AlexNet) from torchmetrics. Its backbone weights cannot be downloaded on machines
    without network: then `available` is False and `reason` says why (metrics report null)."""

    def __init__(self, device: torch.device) -> None:
        self.metric: Any = None
        self.reason = ""
        try:
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            self.metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).to(device)
        except Exception as exc:  # no torchmetrics, or no weights and no network
            self.reason = f"{type(exc).__name__}: {str(exc)[:200]}"

    @property
    def available(self) -> bool:
        return self.metric is not None

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> float | None:
        if self.metric is None:
            return None
        return float(self.metric(a.clamp(0, 1), b.clamp(0, 1)))
