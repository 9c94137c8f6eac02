"""Multi-scene packing by batched rasterization: K small scenes train as one Gaussian set.

Each scene is normalised (camera centres at the origin, scene scale 1) and moved to its own slot on
a small cubic grid around the origin (slots 20 apart, far plane 12; the grid stays compact because
float32 positions must still resolve the last, smallest learning-rate steps). One step renders one
view of every scene in a single gsplat call with K cameras (packed mode: each camera only touches
its own scene's Gaussians), one loss over the K images, one backward, one optimizer step and one
densification pass. Small scenes are bound by per-step Python and launch overhead, which is now
paid once for K scenes. Scale-dependent settings (means learning rate, densification thresholds)
see scale 1 for every scene, which is what training each scene alone at its own scale does; Adam
and gsplat's per-camera gradient normalisation make the batch mean loss equivalent to K losses.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from genfab.stages.gaussians.cameras import Camera, SceneData, scene_scale
from genfab.stages.gaussians.core import (
    Optimisation,
    TrainSettings,
    background_tensor,
    composite,
    images_tensor,
    init_splats,
    sh_coefficients,
    training_loss,
)
from genfab.stages.gaussians.ply import Splats

SPACING = 20.0
"""Distance between scene slots in normalised units (camera rigs have radius ~0.9)."""
FAR = 12.0
"""Cameras see nothing farther than this, so no scene sees its neighbours."""
CONTENT_RADIUS = 8.0
"""Scenes whose initial points reach farther from their cameras are not batched."""


def slot_centers(k: int) -> np.ndarray:
    side = max(1, round(k ** (1 / 3) + 0.4999))
    grid = np.array([(i, j, m) for i in range(side) for j in range(side) for m in range(side)][:k], np.float64)
    return (grid - (side - 1) / 2) * SPACING


def batchable(scenes: list[tuple[SceneData, dict[str, np.ndarray]]]) -> bool:
    """Every camera of every scene has the same image size, and no scene uses masks."""
    sizes = {(c.width, c.height) for sc, _ in scenes for c in sc.cameras}
    if len(sizes) != 1 or any(k.endswith("#mask") for _, im in scenes for k in im):
        return False
    for scene, _ in scenes:
        if scene.points is not None and len(scene.points):
            centers = np.stack([c.center for c in scene.cameras])
            reach = np.linalg.norm(scene.points - centers.mean(0), axis=1).max() / scene_scale(scene.cameras)
            if reach > CONTENT_RADIUS:
                return False
    return True


def _normalise(scene: SceneData, offset: np.ndarray) -> tuple[SceneData, np.ndarray, float]:
    centers = np.stack([c.center for c in scene.cameras])
    center, scale = centers.mean(0), scene_scale(scene.cameras)

    def move(p: np.ndarray) -> np.ndarray:
        return (p - center) / scale + offset
    cams = []
    for c in scene.cameras:
        c2w = c.c2w.copy()
        c2w[:3, 3] = move(c2w[:3, 3])
        cams.append(Camera(c.name, c.K, c2w, c.width, c.height, c.image, c.mask))
    points = move(scene.points) if scene.points is not None else None
    return SceneData(cams, points, scene.colors, scene.root, scene.meta), center, scale


class BatchedTrainer:
    def __init__(self, scenes: list[tuple[SceneData, dict[str, np.ndarray]]], s: TrainSettings,
                 device: torch.device) -> None:
        self.s, self.device, self.k = s, device, len(scenes)
        generator = torch.Generator(device=device).manual_seed(s.seed)
        torch.manual_seed(s.seed)
        self.frames: list[tuple[np.ndarray, float]] = []
        self.train_views: list[list[Camera]] = []
        parts: list[dict[str, torch.nn.Parameter]] = []
        images, viewmats, Ks = [], [], []
        self.slots = slot_centers(len(scenes))
        for slot, (scene, ims) in enumerate(scenes):
            norm, center, scale = _normalise(scene, self.slots[slot])
            self.frames.append((center, scale))
            p = init_splats(norm, s, device, generator)  # a random cube is placed by the slot's cameras
            parts.append(p)
            train, _ = norm.split(s.test_every)
            self.train_views.append(train)
            images.append(images_tensor([ims[c.name] for c in train], device))
            viewmats.append(torch.as_tensor(np.stack([c.w2c for c in train]), dtype=torch.float32, device=device))
            Ks.append(torch.as_tensor(np.stack([c.K for c in train]), dtype=torch.float32, device=device))
        self.images, self.viewmats, self.Ks = images, viewmats, Ks
        self.background = background_tensor(s, device)
        self.params = {name: torch.nn.Parameter(torch.cat([p[name].detach() for p in parts]))
                       for name in parts[0]}
        self.opt = Optimisation.create(self.params, s, 1.0, cap_max=s.cap_max * self.k)
        self.orders = [torch.Generator().manual_seed(s.seed + i) for i in range(self.k)]
        self.perms: list[list[int]] = [[] for _ in range(self.k)]
        self.width, self.height = self.train_views[0][0].width, self.train_views[0][0].height
        self.step_index = 0
        self.train_seconds = 0.0

    def _next_views(self) -> list[int]:
        out = []
        for i in range(self.k):
            if not self.perms[i]:
                self.perms[i] = torch.randperm(len(self.train_views[i]), generator=self.orders[i]).tolist()
            out.append(self.perms[i].pop())
        return out

    def step(self) -> None:
        from gsplat import rasterization

        s, i = self.s, self.step_index
        views = self._next_views()
        viewmats = torch.stack([self.viewmats[k][v] for k, v in enumerate(views)])
        Ks = torch.stack([self.Ks[k][v] for k, v in enumerate(views)])
        target = torch.stack([self.images[k][v] for k, v in enumerate(views)]).float() / 255.0
        p = self.params
        degree = min(i // s.sh_interval(), s.sh_degree)
        rgb, alpha, info = rasterization(
            means=p["means"], quats=p["quats"], scales=torch.exp(p["scales"]),
            opacities=torch.sigmoid(p["opacities"]), colors=sh_coefficients(p, degree),
            viewmats=viewmats, Ks=Ks, width=self.width, height=self.height, far_plane=FAR,
            sh_degree=degree, packed=True, sparse_grad=False,
            absgrad=False, rasterize_mode="antialiased" if s.antialiased else "classic")
        pred = composite(rgb, alpha, self.background)
        self.opt.before_backward(i, info)
        training_loss(pred, target, p, s).backward()
        self.opt.after_backward(s, i, info, True, self._enforce_caps)
        self.step_index += 1

    def scene_ids(self) -> torch.Tensor:
        """The slot each Gaussian sits in (the nearest slot centre)."""
        slots = torch.as_tensor(self.slots, dtype=torch.float32, device=self.device)
        return torch.cdist(self.params["means"].detach(), slots).argmin(dim=1)

    def _enforce_caps(self) -> None:
        """Each scene keeps at most `cap_max` Gaussians (its most opaque), so memory per scene is bounded."""
        from gsplat.strategy.ops import remove

        ids = self.scene_ids()
        counts = torch.bincount(ids.clamp(0, self.k - 1), minlength=self.k)
        if int(counts.max()) <= self.s.cap_max:
            return
        drop = torch.zeros_like(ids, dtype=torch.bool)
        opacity = self.params["opacities"].detach()
        for k in range(self.k):
            if int(counts[k]) > self.s.cap_max:
                idx = torch.nonzero(ids == k).squeeze(1)
                order = opacity[idx].argsort(descending=True)
                drop[idx[order[self.s.cap_max:]]] = True
        remove(self.params, self.opt.optimizers, self.opt.state, drop)

    def export(self) -> list[Splats]:
        ids = self.scene_ids()
        p = {k: v.detach().float() for k, v in self.params.items()}
        out = []
        for k, (center, scale) in enumerate(self.frames):
            sel = ids == k
            slot = torch.as_tensor(self.slots[k], dtype=torch.float32, device=self.device)
            means = (p["means"][sel] - slot) * scale + torch.as_tensor(center, dtype=torch.float32, device=self.device)
            out.append(Splats(means.cpu().numpy(), (p["scales"][sel] + float(np.log(scale))).cpu().numpy(),
                              p["quats"][sel].cpu().numpy(), p["opacities"][sel].cpu().numpy(),
                              p["sh0"][sel].cpu().numpy(), p["shN"][sel].cpu().numpy()))
        return out


def train_batched(scenes: list[tuple[SceneData, dict[str, np.ndarray]]], s: TrainSettings,
                  device: torch.device) -> tuple[list[Splats], float]:
    started = time.perf_counter()
    trainer = BatchedTrainer(scenes, s, device)
    for _ in range(s.steps):
        trainer.step()
    torch.cuda.synchronize(device)
    return trainer.export(), time.perf_counter() - started
