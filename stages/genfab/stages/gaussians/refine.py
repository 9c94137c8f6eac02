"""DiFix refinement inside 3DGS training, the way Difix3D+ does it (its gsplat example trainer):

1. At each fix step, novel cameras move part of the way (`novelDistance`) from where they were toward
   target views: the held-out views, or midpoints between neighbouring training cameras when none
   are held out. They start at the training cameras, so each fix step reaches a little further
   from what was seen.
2. The current Gaussians render those views; DiFix fixes each render, with the nearest training
   image (by camera position and viewing direction) as its reference view.
3. The fixed images become pseudo-views: from then on a `novelProbability` share of the steps trains
   on one of them, its loss weighted by `novelWeight` and masked by the render's coverage.

The camera arithmetic is pure numpy (tested on the CPU); `DifixFixer` runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genfab.stages.gaussians.cameras import Camera


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return np.asarray(q / np.linalg.norm(q))
    theta = np.arccos(dot)
    return np.asarray((np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta))


def interpolate_pose(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The c2w `t` of the way from `a` to `b` (rotation by slerp, position linearly)."""
    from genfab.stages.gaussians.cameras import qvec_to_rotmat, rotmat_to_qvec

    out = np.eye(4)
    out[:3, :3] = qvec_to_rotmat(_slerp(rotmat_to_qvec(a[:3, :3]), rotmat_to_qvec(b[:3, :3]), t))
    out[:3, 3] = (1 - t) * a[:3, 3] + t * b[:3, 3]
    return out


def pose_distance(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """Camera distance: position (relative to the scene scale) plus viewing-direction angle."""
    position = float(np.linalg.norm(a[:3, 3] - b[:3, 3])) / max(scale, 1e-9)
    cos = float(np.clip(np.dot(a[:3, 2], b[:3, 2]), -1.0, 1.0))
    return position + float(np.arccos(cos))


def nearest(pose: np.ndarray, candidates: list[np.ndarray], scale: float) -> int:
    return int(np.argmin([pose_distance(pose, c, scale) for c in candidates]))


def targets(train: list[Camera], held_out: list[Camera]) -> list[np.ndarray]:
    """Where novel cameras head: the held-out views, else midpoints of neighbouring training views."""
    if held_out:
        return [c.c2w for c in held_out]
    poses = [c.c2w for c in train]
    return [interpolate_pose(poses[i], poses[(i + 1) % len(poses)], 0.5) for i in range(len(poses))]


def start_poses(train: list[Camera], n: int) -> list[np.ndarray]:
    """`n` training cameras, evenly spread over them."""
    picks = np.linspace(0, len(train) - 1, num=min(n, len(train))).round().astype(int)
    return [train[i].c2w.copy() for i in picks]


def shift_poses(current: list[np.ndarray], goals: list[np.ndarray], distance: float, scale: float
                ) -> list[np.ndarray]:
    """Each camera `distance` of the way toward its nearest goal (Difix3D+'s progressive update)."""
    return [interpolate_pose(p, goals[nearest(p, goals, scale)], distance) for p in current]


def novel_cameras(poses: list[np.ndarray], like: Camera, step: int) -> list[Camera]:
    return [Camera(f"novel_{step:06d}_{i:03d}", like.K.copy(), p, like.width, like.height)
            for i, p in enumerate(poses)]


@dataclass
class PseudoViews:
    """Fixed novel views trained on as weighted pseudo-views. `images` [M, H, W, 3] in [0, 1] and
    `coverage` [M, H, W, 1] (the render's alpha) on the host."""

    cameras: list[Camera] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    coverage: list[np.ndarray] = field(default_factory=list)
    fix_steps_done: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cameras)


class DifixFixer:
    """DiFix (a base model, with a fine-tuned Difix3D checkpoint over it) fixing renders with a
    reference view: one batched single-step pass."""

    def __init__(self, base: Path, checkpoint: Path | None, prompt: str, timestep: int, device: Any) -> None:
        import torch

        from genfab.stages.models.difix import load_difix
        from genfab.stages.models.difix_checkpoints import load_weights, read_checkpoint

        self.device = torch.device(device)
        rank = 4
        sd = None
        if checkpoint is not None:
            sd = read_checkpoint(checkpoint)
            rank = int(sd["rank_vae"])
        self.net, prompts = load_difix(base, timestep, rank, self.device)
        if sd is not None:
            load_weights(self.net, sd)
        self.net.eval().requires_grad_(False)
        self.prompt = prompts([prompt], self.device)
        self.factor = 2 ** (len(self.net.vae.config.block_out_channels) - 1)

    def fix(self, images: np.ndarray, references: np.ndarray, batch: int = 4) -> np.ndarray:
        """[N, H, W, 3] renders and their references in [0, 1] -> fixed [N, H, W, 3]."""
        import torch
        import torch.nn.functional as F

        n, h, w = images.shape[:3]
        th, tw = max(self.factor, h // self.factor * self.factor), max(self.factor, w // self.factor * self.factor)
        out = []
        for i in range(0, n, batch):
            x = torch.stack([torch.as_tensor(images[i:i + batch]), torch.as_tensor(references[i:i + batch])], 1)
            x = x.to(self.device, torch.float32).permute(0, 1, 4, 2, 3).flatten(0, 1) * 2 - 1   # [B*2, 3, H, W]
            x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
            x = x.unflatten(0, (-1, 2))
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                 enabled=self.device.type == "cuda"):
                y = self.net(x, self.prompt.expand(x.shape[0], -1, -1))[:, 0].float()
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            out.append(((y + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)


@dataclass
class RefineSettings:
    fix_steps: tuple[int, ...]
    novel_views: int = 8
    novel_distance: float = 0.5
    novel_weight: float = 0.3
    novel_probability: float = 0.3
    seed: int = 0


class Refiner:
    """One scene's refinement state: the novel cameras, the pseudo-views, and when to use them."""

    def __init__(self, fixer: DifixFixer, s: RefineSettings, train: list[Camera], held_out: list[Camera],
                 train_images: list[np.ndarray], scale: float) -> None:
        self.fixer, self.s = fixer, s
        self.train, self.train_images = train, train_images
        self.scale = scale
        self.goals = targets(train, held_out)
        self.poses = start_poses(train, s.novel_views)
        self.pseudo = PseudoViews()
        self.rng = np.random.default_rng(s.seed)

    def due(self, step: int) -> bool:
        """Fix after step `step` (0-based) when `step + 1` is a fix step, as Difix3D+ does."""
        return step + 1 in self.s.fix_steps

    def fix(self, render: Any, step: int) -> int:
        """Move the novel cameras on, render them with `render(cameras) -> (rgb [N,H,W,3], alpha
        [N,H,W,1])` (numpy, [0, 1]), fix them, and add them as pseudo-views; returns how many."""
        self.poses = shift_poses(self.poses, self.goals, self.s.novel_distance, self.scale)
        cams = novel_cameras(self.poses, self.train[0], step + 1)
        rgb, alpha = render(cams)
        refs = np.stack([self.train_images[nearest(c.c2w, [t.c2w for t in self.train], self.scale)] for c in cams])
        fixed = self.fixer.fix(rgb, refs)
        for cam, image, cover in zip(cams, fixed, alpha, strict=True):
            self.pseudo.cameras.append(cam)
            self.pseudo.images.append(image.astype(np.float32))
            self.pseudo.coverage.append((cover > 0.5).astype(np.float32))
        self.pseudo.fix_steps_done.append(step + 1)
        return len(cams)

    def pick(self) -> int | None:
        """The pseudo-view this step trains on, or None for a training view."""
        if not len(self.pseudo) or self.rng.random() >= self.s.novel_probability:
            return None
        return int(self.rng.integers(len(self.pseudo)))
