"""Image losses and metrics on the GPU: L1, SSIM (separable Gaussian window), PSNR, LPIPS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genfab.stages.common.imaging import psnr_from_mse
from genfab.stages.gaussians import fused_ssim

_WINDOWS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _window(device: torch.device, dtype: torch.dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    key = (device, dtype)
    if key not in _WINDOWS:
        x = torch.arange(size, dtype=torch.float64) - size // 2
        g = torch.exp(-(x * x) / (2 * sigma * sigma))
        _WINDOWS[key] = (g / g.sum()).to(device=device, dtype=dtype)
    return _WINDOWS[key]


BAND_MAX_SIDE = 512
"""Images up to this side blur by matrix products (`ssim_band`), larger ones by convolution
(`ssim_conv`): the crossover measured on an H100 (benchmarks/gaussians_profile.py)."""

_BANDS: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}


def _band(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[n, n - 10] matrix M with x @ M = the 'valid' 1-D Gaussian blur of x's last axis."""
    key = (n, device, dtype)
    if key not in _BANDS:
        g = _window(torch.device("cpu"), torch.float64)
        out = n - g.numel() + 1
        m = torch.zeros(n, out, dtype=torch.float64)
        cols = torch.arange(out)
        for i, w in enumerate(g.tolist()):
            m[cols + i, cols] = w
        _BANDS[key] = m.to(device=device, dtype=dtype)
    return _BANDS[key]


def _stats(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, b, a * a, b * b, a * b], dim=1)


def _ssim_from_blurred(blurred: torch.Tensor, c: int) -> torch.Tensor:
    mu_a, mu_b, aa, bb, ab = blurred.split(c, dim=1)
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return value.mean()


def ssim_band(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`ssim` with both blur passes as one fp32 matrix product each (banded Gaussian matrices).
    Nothing of the image is saved for backward (the matrices are constants) and it runs as two
    GEMMs instead of cuDNN's grouped convolutions, which split into one TF32 kernel per channel plus
    layout transforms: in the 384x384 training loop ~1.5 ms less GPU time per step and ~40 MiB less
    peak memory. GEMM work grows with the side, so large images use `ssim_conv`."""
    blurred = _band(a.shape[2], a.device, a.dtype).T @ (_stats(a, b) @ _band(a.shape[3], a.device, a.dtype))
    return _ssim_from_blurred(blurred, a.shape[1])


def ssim_conv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`ssim` with the window as two 1-D depthwise convolutions over the five statistics at once,
    with PyTorch's own fp32 kernels (cuDNN would run them per channel, in TF32)."""
    with torch.backends.cudnn.flags(enabled=False):
        blurred = conv_blur(_stats(a, b))
    return _ssim_from_blurred(blurred, a.shape[1])


def conv_blur(x: torch.Tensor) -> torch.Tensor:
    """'Valid' separable Gaussian blur of every channel of [B, C, H, W] as two depthwise convolutions."""
    g = _window(x.device, x.dtype)
    c, k = x.shape[1], g.numel()
    return F.conv2d(F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c), g.view(1, 1, k, 1).expand(c, 1, k, 1),
                    groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [B, C, H, W] images in [0, 1] (11x11 Gaussian window, sigma 1.5, 'valid'
    borders: the definition torchmetrics and the 3DGS papers use). The window is separable, so it
    runs as two 1-D passes over the five statistics at once, by matrix products or convolutions,
    whichever is faster for the image size. On CUDA, with Triton, both passes and the backward run
    as two fused kernels instead (fused_ssim.py), the target taking no gradient."""
    if not b.requires_grad and fused_ssim.available(a):
        return fused_ssim.fused_ssim(a, b)
    if max(a.shape[2], a.shape[3]) <= BAND_MAX_SIDE:
        return ssim_band(a, b)
    return ssim_conv(a, b)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr_from_mse(float(F.mse_loss(a, b)))


class Lpips:
    """LPIPS (AlexNet, v0.1) for the evaluation, from the `lpipsModel` folder in the model location
    (`genfab.stages.models.lpips`); never downloaded. Without it `available` is False and `reason`
    says in one line what is missing: the metrics then report LPIPS as null."""

    def __init__(self, net: Any = None, reason: str = "") -> None:
        self.metric = net
        self.reason = (reason or "no LPIPS model given") if net is None else ""

    @classmethod
    def load(cls, folder: Path | None, device: torch.device, reason: str = "") -> Lpips:
        """The metric from a model folder; `folder` None: unavailable for `reason`."""
        if folder is None:
            return cls(None, reason)
        from genfab.stages.models.lpips import load_alexnet_lpips

        try:
            return cls(load_alexnet_lpips(folder, device))
        except (ValueError, OSError, RuntimeError) as exc:  # a broken folder: say so, train anyway
            return cls(None, f"LPIPS model {folder.name}: {str(exc).splitlines()[0][:300]}")

    @property
    def available(self) -> bool:
        return self.metric is not None

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> float | None:
        """LPIPS of [1, 3, H, W] images in [0, 1]."""
        if self.metric is None:
            return None
        return float(self.metric(a.float(), b.float()).mean())
