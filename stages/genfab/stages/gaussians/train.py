"""3D Gaussian Splatting training on gsplat, for one scene or several packed on one GPU.

The algorithm is gsplat's simple trainer (same initialisation, learning rates, densification and
loss); the time and memory it saves come from how it is run (each measured with
benchmarks/gaussians_profile.py): SSIM as fused Triton kernels (fused_ssim.py), only the SH
coefficients gsplat reads at the current degree, a DefaultStrategy statistics update without a
host-device sync, the SH colours evaluated from the host's camera centre (`core.view_colors`),
fused Adam launched without `Optimizer.step()`'s Python (`core.adam_steps`), training images in
pinned host memory uploaded one view per step without blocking, and nothing that waits on the GPU
for logging. Several scenes pack into one GPU (`train_scenes`, batched.py); a per-scene Gaussian cap
keeps each scene's memory bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch

from genfab.stages.gaussians.batched import batchable, train_batched
from genfab.stages.gaussians.cameras import Camera, SceneData, look_at, scene_scale
from genfab.stages.gaussians.core import (
    Optimisation,
    TrainResult,
    TrainSettings,
    background_tensor,
    composite,
    enforce_cap,
    images_tensor,
    init_splats,
    sh_coefficients,
    training_loss,
    upload,
    view_colors,
)
from genfab.stages.gaussians.losses import Lpips
from genfab.stages.gaussians.ply import Splats
from genfab.stages.gaussians.refine import Refiner
from genfab.stages.gaussians.render import evaluate_splats


class SceneTrainer:
    """One scene's training state; `step()` runs one optimisation step (no host synchronisation
    beyond what gsplat itself needs)."""

    colors_here = True
    """The training views' SH colours evaluated by `core.view_colors`; False: by gsplat's
    `rasterization` (benchmarks/gaussians_profile.py's `genfab-gsplat-colors` comparison)."""

    def __init__(self, scene: SceneData, images: dict[str, np.ndarray], s: TrainSettings, device: torch.device,
                 refiner: Refiner | None = None) -> None:
        self.s, self.device, self.scene = s, device, scene
        self.refiner = refiner
        self.train_cams, self.test_cams = scene.split(s.test_every)
        if not self.train_cams:
            raise ValueError("the scene has no training views")
        self.scale = scene_scale(scene.cameras)
        self.generator = torch.Generator(device=device).manual_seed(s.seed)
        torch.manual_seed(s.seed)
        self.params = init_splats(scene, s, device, self.generator)
        self.images = images_tensor([images[c.name] for c in self.train_cams], torch.device("cpu"))
        self.background = background_tensor(s, device)
        self.viewmats = torch.as_tensor(np.stack([c.w2c for c in self.train_cams]), dtype=torch.float32,
                                        device=device)
        self.Ks = torch.as_tensor(np.stack([c.K for c in self.train_cams]), dtype=torch.float32, device=device)
        self.centers = torch.as_tensor(np.stack([c.center for c in self.train_cams]), dtype=torch.float32,
                                       device=device)
        masks = [images.get(f"{c.name}#mask") for c in self.train_cams]
        self.masks = images_tensor([m for m in masks if m is not None], torch.device("cpu")) if all(
            m is not None for m in masks) and masks else None
        self.opt = Optimisation.create(self.params, s, self.scale)
        self.order = self._view_order()
        self.step_index = 0
        self.train_seconds = 0.0

    def _view_order(self) -> Iterator[int]:
        """Deterministic shuffled epochs over the training views (like a DataLoader with a seed)."""
        while True:
            yield from torch.randperm(len(self.train_cams), generator=torch.Generator().manual_seed(
                self.s.seed + self.step_index)).tolist()

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               sh_degree: int | None = None, center: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """`center`, one camera's [3] centre: the colours are evaluated here (`view_colors`) rather
        than by gsplat, which inverts the view matrix for the centre, a host sync every step."""
        from gsplat import rasterization

        p = self.params
        degree = self.s.sh_degree if sh_degree is None else sh_degree
        gsplat_degree: int | None = degree
        colors = sh_coefficients(p, degree)
        if center is not None and self.colors_here:
            colors, gsplat_degree = view_colors(p["means"], colors, center, degree), None
        rgb, alpha, info = rasterization(
            means=p["means"], quats=p["quats"], scales=torch.exp(p["scales"]),
            opacities=torch.sigmoid(p["opacities"]), colors=colors, viewmats=viewmats, Ks=Ks,
            width=width, height=height, sh_degree=gsplat_degree,
            packed=self.s.packed, sparse_grad=self.s.sparse_grad, absgrad=False,
            rasterize_mode="antialiased" if self.s.antialiased else "classic")
        return composite(rgb, alpha, self.background), alpha, info

    def step(self) -> None:
        s, i = self.s, self.step_index
        pseudo = self.refiner.pick() if self.refiner is not None else None
        if pseudo is not None:  # a DiFix-fixed novel view (Difix3D+): weighted, masked by what the render covered
            assert self.refiner is not None
            views = self.refiner.pseudo
            cam = views.cameras[pseudo]
            viewmat = torch.as_tensor(cam.w2c[None], dtype=torch.float32, device=self.device)
            K = torch.as_tensor(cam.K[None], dtype=torch.float32, device=self.device)
            center = torch.as_tensor(cam.center, dtype=torch.float32, device=self.device)
            target = torch.as_tensor(views.images[pseudo][None], device=self.device)
            m = torch.as_tensor(views.coverage[pseudo][None], device=self.device)
        else:
            view = next(self.order)
            cam = self.train_cams[view]
            viewmat, K, center = self.viewmats[view : view + 1], self.Ks[view : view + 1], self.centers[view]
            target = upload(self.images, view, self.device)
            m = None
            if self.masks is not None:
                m = upload(self.masks, view, self.device)
                m = m[..., None] if m.dim() == 3 else m[..., :1]
        renders, _, info = self.render(viewmat, K, cam.width, cam.height, min(i // s.sh_interval(), s.sh_degree),
                                       center)
        self.opt.before_backward(i, info)
        pred = renders
        if m is not None:
            pred, target = pred * m, target * m
        loss = training_loss(pred, target, self.params, s)
        if pseudo is not None:  # the pseudo-view's weight scales the regularisers too, as before
            assert self.refiner is not None
            loss = loss * self.refiner.s.novel_weight
        loss.backward()
        if s.sparse_grad:  # SparseAdam wants sparse gradients (as gsplat's simple trainer does it)
            gaussian_ids = info["gaussian_ids"]
            for p in self.params.values():
                if p.grad is not None and not p.grad.is_sparse:
                    p.grad = torch.sparse_coo_tensor(gaussian_ids[None], p.grad[gaussian_ids], p.size(),
                                                     is_coalesced=True)
        self.opt.after_backward(s, i, info, s.packed,
                                lambda: enforce_cap(self.params, self.opt.optimizers, self.opt.state, s.cap_max))
        if self.refiner is not None and self.refiner.due(i):
            self.refiner.fix(self.render_views, i)
        self.step_index += 1

    @torch.no_grad()
    def render_views(self, cams: list[Camera]) -> tuple[np.ndarray, np.ndarray]:
        """(rgb [N, H, W, 3], alpha [N, H, W, 1]) of the current Gaussians at `cams` (one size)."""
        viewmats = torch.as_tensor(np.stack([c.w2c for c in cams]), dtype=torch.float32, device=self.device)
        Ks = torch.as_tensor(np.stack([c.K for c in cams]), dtype=torch.float32, device=self.device)
        rgb, alpha, _ = self.render(viewmats, Ks, cams[0].width, cams[0].height)
        return rgb.clamp(0, 1).float().cpu().numpy(), alpha.float().cpu().numpy()

    def evaluate(self, lpips: Lpips | None, images: dict[str, np.ndarray]
                 ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """PSNR / SSIM / LPIPS on the held-out views (the training views when none are held out)."""
        return evaluate_splats(self.export(), self.scene, images, self.s, self.device, lpips)

    def export(self) -> Splats:
        p = {k: v.detach().float().cpu().numpy() for k, v in self.params.items()}
        return Splats(p["means"], p["scales"], p["quats"], p["opacities"], p["sh0"], p["shN"])


Packing = Literal["batched", "sequential"]


def _train_one(scene: SceneData, images: dict[str, np.ndarray], s: TrainSettings, device: torch.device,
               lpips: Lpips | None, refine: RefinerFactory | None = None) -> TrainResult:
    started = time.perf_counter()
    t = SceneTrainer(scene, images, s, device)
    if refine is not None:
        t.refiner = refine(t)
    for _ in range(s.steps):
        t.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t.train_seconds = time.perf_counter() - started
    result = _finish(t, images, lpips)
    if t.refiner is not None:
        result.metrics["refinement"] = {"fix_steps": t.refiner.pseudo.fix_steps_done,
                                        "pseudo_views": len(t.refiner.pseudo)}
    return result


def _finish(t: SceneTrainer, images: dict[str, np.ndarray], lpips: Lpips | None) -> TrainResult:
    metrics, renders = t.evaluate(lpips, images) if lpips is not None else ({}, [])
    metrics.update(steps=t.s.steps, train_seconds=round(t.train_seconds, 3),
                   peak_gpu_bytes=torch.cuda.max_memory_allocated(t.device) if t.device.type == "cuda" else None,
                   steps_per_second=round(t.s.steps / max(t.train_seconds, 1e-9), 2),
                   lpips_unavailable=(lpips.reason or None) if lpips else None)
    return TrainResult(t.export(), metrics, renders)


RefinerFactory = Callable[["SceneTrainer"], "Refiner"]
"""Builds a scene's refiner from its trainer (DiFix refinement: Difix3D+'s pseudo-views)."""


def train_scenes(scenes: list[tuple[SceneData, dict[str, np.ndarray]]], s: TrainSettings,
                 device: torch.device | str = "cuda", packing: Packing = "batched",
                 evaluate: bool = True, refine: RefinerFactory | None = None,
                 lpips: Lpips | None = None) -> list[TrainResult]:
    """Train several scenes on one GPU, then (`evaluate`) measure PSNR, SSIM and, with `lpips` (loaded
    from the model location by the caller), LPIPS on the held-out views.

    `batched` (default): scenes of one image size train as one Gaussian set, one view of each per
    gsplat call (see batched.py); scenes it cannot batch (mixed sizes, masks) train one by one.
    `sequential`: one by one. One worker process per scene and one CUDA stream per scene were
    measured too and removed: 0.99x and 1.09x of sequential (benchmarks/results/gaussians.md).
    Results come back in input order; each scene's seed and data are the same in every mode.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    metric = (lpips or Lpips()) if evaluate else None
    if len(scenes) > 1 and device.type == "cuda" and packing == "batched" and refine is None and batchable(scenes):
        splats, seconds = train_batched(scenes, s, device)
        results = []
        for sp, (scene, images) in zip(splats, scenes, strict=True):
            metrics, renders = evaluate_splats(sp, scene, images, s, device, metric) if metric else ({}, [])
            metrics.update(steps=s.steps, train_seconds=round(seconds / len(scenes), 3), batched=len(scenes),
                           peak_gpu_bytes=torch.cuda.max_memory_allocated(device),
                           lpips_unavailable=(metric.reason or None) if metric else None)
            results.append(TrainResult(sp, metrics, renders))
        return results
    return [_train_one(sc, im, s, device, metric, refine) for sc, im in scenes]


def orbit_cameras(scene: SceneData, n: int, width: int | None = None, height: int | None = None) -> list[Camera]:
    """A smooth orbit around the training cameras' centre at their mean distance and height, for the
    trajectory video and previews."""
    centers = np.stack([c.center for c in scene.cameras])
    target = centers.mean(0) + np.asarray([c.c2w[:3, 2] for c in scene.cameras]).mean(0) * np.linalg.norm(
        centers - centers.mean(0), axis=1).mean()
    radius = float(np.linalg.norm((centers - target)[:, :2], axis=1).mean())
    height_ = float((centers - target)[:, 2].mean())
    ref = scene.cameras[0]
    w, h = width or ref.width, height or ref.height
    K = ref.K.copy()
    K[0] *= w / ref.width
    K[1] *= h / ref.height
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = target + np.array([radius * math.cos(a), radius * math.sin(a), height_])
        cams.append(Camera(f"orbit_{i:03d}", K, look_at(eye, target), w, h))
    return cams
