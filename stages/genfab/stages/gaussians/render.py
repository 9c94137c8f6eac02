"""Render arbitrary cameras from trained Gaussians or a 3DGS PLY (the DiFix export uses this)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genfab.stages.gaussians.cameras import Camera
from genfab.stages.gaussians.ply import Splats, read_ply
from genfab.stages.gaussians.train import composite


@torch.no_grad()
def render_splats(splats: Splats, cameras: list[Camera], device: torch.device | str = "cuda",
                  antialiased: bool = False, background: tuple[float, float, float] | None = None
                  ) -> list[np.ndarray]:
    """HxWx3 float32 images in [0, 1], one per camera (cameras may differ in size)."""
    from gsplat import rasterization

    dev = torch.device(device)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=dev)
    means, quats, scales = t(splats.means), t(splats.quats), torch.exp(t(splats.scales))
    opacities = torch.sigmoid(t(splats.opacities))
    colors = torch.cat([t(splats.sh0), t(splats.shN)], 1)
    out = []
    for cam in cameras:
        rgb, alpha, _ = rasterization(means, quats, scales, opacities, colors, t(cam.w2c)[None], t(cam.K)[None],
                                      cam.width, cam.height, sh_degree=splats.sh_degree, packed=False,
                                      rasterize_mode="antialiased" if antialiased else "classic")
        out.append(composite(rgb, alpha, background)[0].clamp(0, 1).cpu().numpy())
    return out


def render_ply(path: Path, cameras: list[Camera], device: torch.device | str = "cuda") -> list[np.ndarray]:
    return render_splats(read_ply(path), cameras, device)
