"""Render arbitrary cameras from trained Gaussians or a 3DGS PLY (the DiFix export uses this)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.stages.gaussians.cameras import Camera, SceneData
from genfab.stages.gaussians.core import TrainSettings, composite, images_tensor
from genfab.stages.gaussians.losses import Lpips, psnr, ssim
from genfab.stages.gaussians.ply import Splats, read_ply


@torch.no_grad()
def render_splats(splats: Splats, cameras: list[Camera], device: torch.device | str = "cuda",
                  antialiased: bool = False, background: Sequence[float] | None = None
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


@torch.no_grad()
def evaluate_splats(splats: Splats, scene: SceneData, images: dict[str, np.ndarray], s: TrainSettings,
                    device: torch.device, lpips: Lpips | None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """PSNR / SSIM / LPIPS of trained Gaussians on the scene's held-out views (the training views
    when none are held out), and the renders."""
    _, test = scene.split(s.test_every)
    cams = test or scene.cameras
    renders = render_splats(splats, cams, device, s.antialiased, s.background)
    psnrs, ssims, lps = [], [], []
    for cam, r in zip(cams, renders, strict=True):
        pred = torch.as_tensor(r, device=device)[None]
        gt = images_tensor([images[cam.name]], device).float() / 255.0
        psnrs.append(psnr(pred, gt))
        a, b = pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)
        ssims.append(float(ssim(a, b)))
        lps.append(lpips(a, b) if lpips is not None else None)
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)),
            "lpips": float(np.mean([v for v in lps if v is not None])) if lps and None not in lps else None,
            "evaluated_on": "test" if test else "train", "views": len(cams), "num_gaussians": len(splats)}, renders
