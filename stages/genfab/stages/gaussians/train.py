"""3D Gaussian Splatting training on gsplat, for one scene or several packed on one GPU.

The algorithm is gsplat's simple trainer (same initialisation, learning rates, densification and
loss); the time and memory it saves come from how it is run (each measured with
benchmarks/gaussians_profile.py): SSIM as fp32 matrix products (losses.py), only the SH coefficients
gsplat reads at the current degree, a DefaultStrategy statistics update without a host-device
sync, fused Adam, training images in pinned host memory uploaded one view per step without blocking,
and nothing that waits on the GPU for logging. Several scenes pack into one GPU (`train_scenes`,
batched.py); a per-scene Gaussian cap keeps each scene's memory bounded.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from genfab.api.gaussians import GaussiansConfig, SplatConfig
from genfab.stages.gaussians.cameras import Camera, SceneData, look_at, random_init_box, scene_scale
from genfab.stages.gaussians.losses import Lpips, ssim
from genfab.stages.gaussians.ply import Splats
from genfab.stages.gaussians.refine import Refiner

SH_C0 = 0.28209479177387814
REFERENCE_STEPS = 30_000  # gsplat's simple trainer schedule, scaled to the run's step count


class TrainSettings(GaussiansConfig):
    """The trainer's settings: the resource's `gaussians` block (genfab.api.gaussians) plus what users
    cannot set, declared here once: gsplat's simple-trainer learning rates (means scale with the
    scene) and the MCMC regularisers."""

    means_lr: float = 1.6e-4
    means_lr_final: float = 1.6e-6
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    opacity_reg: float = 0.01  # mcmc only
    scale_reg: float = 0.01  # mcmc only

    @classmethod
    def of(cls, config: SplatConfig) -> TrainSettings:
        """The trainer's settings for a validated `gaussians` block, or the part of it a stage reads
        (`SplatConfig`: the rest keeps its defaults, which that stage never uses)."""
        return cls.model_validate(config.model_dump())

    def schedule(self) -> dict[str, int]:
        """Densification schedule: the 30k-step reference scaled to `steps` (refine every 100 steps
        at 30k, never more often than every 20)."""
        f = self.steps / REFERENCE_STEPS
        if self.strategy == "mcmc":
            return {"refine_start_iter": int(500 * f), "refine_stop_iter": int(25_000 * f),
                    "refine_every": max(20, int(100 * f))}
        return {"refine_start_iter": int(500 * f), "refine_stop_iter": int(15_000 * f),
                "reset_every": max(100, int(3000 * f)), "refine_every": max(20, int(100 * f))}


@dataclass
class TrainResult:
    splats: Splats
    metrics: dict[str, Any]
    test_renders: list[np.ndarray] = field(default_factory=list)


def image_loss(pred: torch.Tensor, target: torch.Tensor, ssim_lambda: float) -> torch.Tensor:
    """(1 - lambda) L1 + lambda (1 - SSIM) on [B, H, W, 3] images (gsplat's simple-trainer loss).
    Recomputing SSIM in the backward pass (torch.utils.checkpoint) was measured on the H100: slower
    (1.05x the plain loop's wall time instead of 0.79-0.88x) and still above its peak memory."""
    value = ssim(pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2))
    return F.l1_loss(pred, target) * (1 - ssim_lambda) + (1 - value) * ssim_lambda


def composite(rgb: torch.Tensor, alpha: torch.Tensor,
              background: torch.Tensor | Sequence[float] | None) -> torch.Tensor:
    """Blend a known background behind the splats: what gsplat's `backgrounds` does, done here
    because gsplat 1.5 rejects `backgrounds` in packed mode. Training loops pass the colour as a
    device tensor made once (building it from a tuple is a blocking host-to-device copy)."""
    if background is None:
        return rgb
    if not isinstance(background, torch.Tensor):
        background = torch.tensor(background, dtype=rgb.dtype, device=rgb.device)
    return rgb + (1 - alpha) * background


def background_tensor(s: TrainSettings, device: torch.device) -> torch.Tensor | None:
    return None if s.background is None else torch.tensor(s.background, dtype=torch.float32, device=device)


def images_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """HxWx3 float [0,1] or uint8 images -> one [V, H, W, 3] uint8 tensor on `device`; on the CPU
    it is pinned, so that one view at a time can be uploaded without blocking (see `upload`)."""
    stacked = torch.from_numpy(np.stack([(im * 255 + 0.5).astype(np.uint8) if im.dtype != np.uint8 else im
                                         for im in images]))
    if device.type == "cpu":
        return stacked.pin_memory() if torch.cuda.is_available() else stacked
    return stacked.to(device)


def upload(host: torch.Tensor, index: int, device: torch.device) -> torch.Tensor:
    """View `index` of pinned uint8 images as a [1, H, W, C] float tensor in [0, 1] on the device.
    The copy is asynchronous, so the host never waits for the GPU here; the training images stay in
    host memory (a 200-view 1080p capture is 1.2 GB, which would otherwise sit on the GPU)."""
    return host[index : index + 1].to(device, non_blocking=True).float().div_(255.0)


def knn_scale(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Mean distance to the k nearest neighbours (chunked cdist: no extra dependency)."""
    out = torch.empty(len(points), device=points.device)
    chunk = max(64, (32 << 20) // max(1, 4 * len(points)))  # ~32 MiB of distances at a time
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], points)
        out[start:start + chunk] = d.topk(k + 1, largest=False).values[:, 1:].mean(-1)
    return out.clamp_min(1e-7)


def init_splats(scene: SceneData, s: TrainSettings, device: torch.device, generator: torch.Generator
                ) -> dict[str, torch.nn.Parameter]:
    """gsplat simple-trainer initialisation from points (SfM/depth) or random in the scene bounds
    (`random_init_box`)."""
    if s.init_type == "points" and scene.points is not None and len(scene.points):
        pts = torch.as_tensor(scene.points, dtype=torch.float32, device=device)
        rgb = torch.as_tensor(scene.colors if scene.colors is not None else np.full((len(pts), 3), 0.5),
                              dtype=torch.float32, device=device)
    else:
        n = s.init_num_points
        center, half = random_init_box(scene.cameras, s.init_extent)
        pts = (torch.rand((n, 3), generator=generator, device=device) * 2 - 1) * half + torch.as_tensor(
            center, dtype=torch.float32, device=device)
        rgb = torch.rand((n, 3), generator=generator, device=device)
    if s.strategy == "mcmc" and len(pts) > s.cap_max:
        pts, rgb = pts[: s.cap_max], rgb[: s.cap_max]
    n = len(pts)
    init_opacity, init_scale = (0.5, 0.1) if s.strategy == "mcmc" else (0.1, 1.0)
    scales = torch.log(knn_scale(pts) * init_scale).unsqueeze(-1).repeat(1, 3)
    quats = torch.rand((n, 4), generator=generator, device=device)
    opacities = torch.logit(torch.full((n,), init_opacity, device=device))
    k = (s.sh_degree + 1) ** 2
    sh0 = ((rgb - 0.5) / SH_C0).unsqueeze(1)
    shN = torch.zeros((n, k - 1, 3), device=device)
    return {name: torch.nn.Parameter(t.contiguous()) for name, t in
            (("means", pts), ("scales", scales), ("quats", quats), ("opacities", opacities), ("sh0", sh0),
             ("shN", shN))}


def sh_coefficients(params: dict[str, torch.nn.Parameter], degree: int) -> torch.Tensor:
    """The [N, (degree + 1)^2, 3] SH coefficients gsplat evaluates at `degree`. gsplat reads no
    others, so concatenating all of them (as the simple trainer does) only costs memory: at degree 1,
    where densification peaks in short schedules, a quarter of the copy and of its gradient. The
    unused coefficients still get their (zero) gradient, so Adam steps them exactly as before."""
    return torch.cat([params["sh0"], params["shN"][:, : (degree + 1) ** 2 - 1]], 1)


def make_optimizers(params: dict[str, torch.nn.Parameter], s: TrainSettings, scale: float,
                    fused: bool) -> dict[str, torch.optim.Optimizer]:
    lrs = {"means": s.means_lr * scale, "scales": s.scales_lr, "quats": s.quats_lr, "opacities": s.opacities_lr,
           "sh0": s.sh0_lr, "shN": s.shN_lr}
    opt_cls: Callable[..., torch.optim.Optimizer] = torch.optim.SparseAdam if s.sparse_grad else torch.optim.Adam
    extra = {"fused": True} if fused and not s.sparse_grad and params["means"].is_cuda else {}
    return {name: opt_cls([{"params": params[name], "lr": lr, "name": name}], eps=1e-15, **extra)
            for name, lr in lrs.items()}


def make_strategy(s: TrainSettings) -> Any:
    from gsplat.strategy import MCMCStrategy

    if s.strategy == "mcmc":
        return MCMCStrategy(cap_max=s.cap_max, **s.schedule())
    return sync_free_default_strategy()(absgrad=False, **s.schedule())


@functools.cache
def sync_free_default_strategy() -> type:
    """gsplat's DefaultStrategy with its per-step statistics update made sync-free.

    The stock update (non-packed mode) picks the visible Gaussians with `torch.where`, a
    device-to-host synchronisation on every densifying step, so the host cannot queue the next step
    while the GPU works. Masked sums over all Gaussians give the same statistics (bit for bit with
    one camera per step: invisible Gaussians add exactly 0) with nothing to wait for. Densification,
    pruning and resets are gsplat's own."""
    from gsplat.strategy import DefaultStrategy

    class SyncFreeDefaultStrategy(DefaultStrategy):  # type: ignore[misc]
        def _update_state(self, params: dict[str, torch.nn.Parameter], state: dict[str, Any],
                          info: dict[str, Any], packed: bool = False) -> None:
            if packed or self.refine_scale2d_stop_iter > 0:  # packed has no sync; scale2d stays gsplat's
                super()._update_state(params, state, info, packed=packed)
                return
            meta = info[self.key_for_gradient]
            grads = (meta.absgrad if self.absgrad else meta.grad).clone()  # [..., C, N, 2]
            grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
            grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
            n = len(params["means"])
            visible = (info["radii"] > 0.0).all(dim=-1).reshape(-1, n)  # [images, N]
            if state["grad2d"] is None:
                state["grad2d"] = torch.zeros(n, device=grads.device)
            if state["count"] is None:
                state["count"] = torch.zeros(n, device=grads.device)
            state["grad2d"] += (grads.norm(dim=-1).reshape(-1, n) * visible).sum(0)
            state["count"] += visible.sum(0)

    return SyncFreeDefaultStrategy


def enforce_cap(params: dict[str, torch.nn.Parameter], optimizers: dict[str, torch.optim.Optimizer],
                state: dict[str, Any], cap: int) -> None:
    """Bounded memory per scene for the default strategy: keep the `cap` most opaque Gaussians."""
    from gsplat.strategy.ops import remove

    n = len(params["means"])
    if n <= cap:
        return
    keep = torch.zeros(n, dtype=torch.bool, device=params["means"].device)
    keep[params["opacities"].detach().topk(cap).indices] = True
    remove(params, optimizers, state, ~keep)  # the running statistics too: they index the same Gaussians


class SceneTrainer:
    """One scene's training state; `step()` runs one optimisation step (no host synchronisation
    beyond what gsplat itself needs)."""

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
        self.optimizers = make_optimizers(self.params, s, self.scale, fused=True)
        self.images = images_tensor([images[c.name] for c in self.train_cams], torch.device("cpu"))
        self.background = background_tensor(s, device)
        self.viewmats = torch.as_tensor(np.stack([c.w2c for c in self.train_cams]), dtype=torch.float32,
                                        device=device)
        self.Ks = torch.as_tensor(np.stack([c.K for c in self.train_cams]), dtype=torch.float32, device=device)
        masks = [images.get(f"{c.name}#mask") for c in self.train_cams]
        self.masks = images_tensor([m for m in masks if m is not None], torch.device("cpu")) if all(
            m is not None for m in masks) and masks else None
        self.strategy = make_strategy(s)
        self.strategy.check_sanity(self.params, self.optimizers)
        self.state = self.strategy.initialize_state(**({} if s.strategy == "mcmc" else {"scene_scale": self.scale}))
        self.gamma = (s.means_lr_final / s.means_lr) ** (1.0 / max(1, s.steps))
        self.order = self._view_order()
        self.step_index = 0
        self.train_seconds = 0.0

    def _view_order(self) -> Iterator[int]:
        """Deterministic shuffled epochs over the training views (like a DataLoader with a seed)."""
        while True:
            yield from torch.randperm(len(self.train_cams), generator=torch.Generator().manual_seed(
                self.s.seed + self.step_index)).tolist()

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
               sh_degree: int | None = None) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        from gsplat import rasterization

        p = self.params
        degree = self.s.sh_degree if sh_degree is None else sh_degree
        rgb, alpha, info = rasterization(
            means=p["means"], quats=p["quats"], scales=torch.exp(p["scales"]),
            opacities=torch.sigmoid(p["opacities"]), colors=sh_coefficients(p, degree), viewmats=viewmats, Ks=Ks,
            width=width, height=height, sh_degree=degree,
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
            target = torch.as_tensor(views.images[pseudo][None], device=self.device)
            m = torch.as_tensor(views.coverage[pseudo][None], device=self.device)
        else:
            view = next(self.order)
            cam = self.train_cams[view]
            viewmat, K = self.viewmats[view : view + 1], self.Ks[view : view + 1]
            target = upload(self.images, view, self.device)
            m = None
            if self.masks is not None:
                m = upload(self.masks, view, self.device)
                m = m[..., None] if m.dim() == 3 else m[..., :1]
        renders, _, info = self.render(viewmat, K, cam.width, cam.height, min(i // s.sh_degree_interval, s.sh_degree))
        self.strategy.step_pre_backward(self.params, self.optimizers, self.state, i, info)
        pred = renders
        if m is not None:
            pred, target = pred * m, target * m
        loss = image_loss(pred, target, s.ssim_lambda)
        if pseudo is not None:
            assert self.refiner is not None
            loss = loss * self.refiner.s.novel_weight
        if s.strategy == "mcmc":
            loss = loss + s.opacity_reg * torch.sigmoid(self.params["opacities"]).mean() \
                + s.scale_reg * torch.exp(self.params["scales"]).mean()
        loss.backward()
        if s.sparse_grad:  # SparseAdam wants sparse gradients (as gsplat's simple trainer does it)
            gaussian_ids = info["gaussian_ids"]
            for p in self.params.values():
                if p.grad is not None and not p.grad.is_sparse:
                    p.grad = torch.sparse_coo_tensor(gaussian_ids[None], p.grad[gaussian_ids], p.size(),
                                                     is_coalesced=True)
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        group = self.optimizers["means"].param_groups[0]
        if s.strategy == "mcmc":
            self.strategy.step_post_backward(self.params, self.optimizers, self.state, i, info, lr=group["lr"])
        else:
            self.strategy.step_post_backward(self.params, self.optimizers, self.state, i, info,
                                             packed=s.packed)
            if i % self.strategy.refine_every == 0:
                enforce_cap(self.params, self.optimizers, self.state, s.cap_max)
        group["lr"] *= self.gamma
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
        from genfab.stages.gaussians.render import evaluate_splats

        return evaluate_splats(self.export(), self.scene, images, self.s, self.device, lpips)

    def export(self) -> Splats:
        p = {k: v.detach().float().cpu().numpy() for k, v in self.params.items()}
        return Splats(p["means"], p["scales"], p["quats"], p["opacities"], p["sh0"], p["shN"])


Packing = Literal["batched", "sequential"]


def _train_one(scene: SceneData, images: dict[str, np.ndarray], s: TrainSettings, device: torch.device,
               evaluate: bool, refine: RefinerFactory | None = None) -> TrainResult:
    started = time.perf_counter()
    t = SceneTrainer(scene, images, s, device)
    if refine is not None:
        t.refiner = refine(t)
    for _ in range(s.steps):
        t.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t.train_seconds = time.perf_counter() - started
    result = _finish(t, images, Lpips(device) if evaluate else None)
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
                 evaluate: bool = True, refine: RefinerFactory | None = None) -> list[TrainResult]:
    """Train several scenes on one GPU.

    `batched` (default): scenes of one image size train as one Gaussian set, one view of each per
    gsplat call (see batched.py); scenes it cannot batch (mixed sizes, masks) train one by one.
    `sequential`: one by one. One worker process per scene and one CUDA stream per scene were
    measured too and removed: 0.99x and 1.09x of sequential (benchmarks/results/gaussians.md).
    Results come back in input order; each scene's seed and data are the same in every mode.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if len(scenes) > 1 and device.type == "cuda" and packing == "batched" and refine is None:
        from genfab.stages.gaussians.batched import batchable, train_batched
        from genfab.stages.gaussians.render import evaluate_splats

        if batchable(scenes):
            splats, seconds = train_batched(scenes, s, device)
            lpips = Lpips(device) if evaluate else None
            results = []
            for sp, (scene, images) in zip(splats, scenes, strict=True):
                metrics, renders = evaluate_splats(sp, scene, images, s, device, lpips) if evaluate else ({}, [])
                metrics.update(steps=s.steps, train_seconds=round(seconds / len(scenes), 3), batched=len(scenes),
                               peak_gpu_bytes=torch.cuda.max_memory_allocated(device),
                               lpips_unavailable=(lpips.reason or None) if lpips else None)
                results.append(TrainResult(sp, metrics, renders))
            return results
    return [_train_one(sc, im, s, device, evaluate, refine) for sc, im in scenes]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


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
