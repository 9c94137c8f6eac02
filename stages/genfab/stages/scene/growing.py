"""The lab's vistadream `Gaussian_Scene` and `GS_Train_Tool` on gsplat: a Gaussian scene grown frame by frame.

`add_frame` back-projects a frame's `inpaint_wo_edge` pixels at their depth into new Gaussians (one
per pixel: its colour, an isotropic size of its footprint on the image, nearly opaque);
`train` optimises the scene's trainable Gaussians on all frames so far, each step on one frame, the
loss only on its supervised (`inpaint`) pixels. With `freeze_trained` (vistadream, as the lab's
`GS_Train_Tool` does: it optimises the frames whose Gaussians require gradients and then turns every
frame's off), a training's Gaussians are frozen once it ends, so each later training moves only the
Gaussians added since; without it (worldexplorer's expansion) every Gaussian trains every time.
Rasterisation, the L1 + SSIM loss and the Adam groups are the gaussians library's
(genfab.stages.gaussians.core); there is no densification: new Gaussians come from new frames, as in
the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genfab.stages.gaussians.core import SH_C0, TrainSettings, adam_steps, image_loss, make_optimizers, sh_coefficients
from genfab.stages.gaussians.ply import Splats
from genfab.stages.scene.frames import Frame
from genfab.stages.scene.geometry import world_points

INIT_OPACITY = 0.95
FOOTPRINT = 1.0
"""A new Gaussian's radius in pixels at its depth: neighbouring pixels' Gaussians just touch."""
HOLE_ALPHA = 0.5
"""Rendered pixels with less accumulated opacity than this are holes (`inpaint = True`)."""
PARAMS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def scene_scale(depth: np.ndarray) -> float:
    """The scene's scale for the means' learning rate: the median depth of the first view."""
    valid = depth[depth > 0]
    return float(np.median(valid)) if valid.size else 1.0


@dataclass
class Render:
    rgb: np.ndarray
    """(H, W, 3) float32 in [0, 1]."""
    depth: np.ndarray
    """(H, W) float32, expected depth where covered, 0 in holes."""
    alpha: np.ndarray
    """(H, W) float32 accumulated opacity."""


CANDIDATES_PER_PASS = 20
"""Poses whose hole masks one rasterisation draws (`hole_ratios`): ~40 MiB of projections per pose
at 700,000 Gaussians."""


class GrowingScene:
    def __init__(self, settings: TrainSettings, device: torch.device, extent: float = 1.0,
                 freeze_trained: bool = False) -> None:
        self.s = settings
        self.device = device
        self.extent = extent
        """The scene's scale (`trajectory.scene_extent`): the means' learning rate follows it."""
        self.freeze_trained = freeze_trained
        self.frames: list[Frame] = []
        self.params: dict[str, torch.nn.Parameter] = {}
        """The Gaussians the next `train` optimises (all of them unless `freeze_trained`)."""
        self.frozen: dict[str, torch.Tensor] = {}
        """With `freeze_trained`: the Gaussians earlier trainings (or `load`) left, drawn but not optimised."""
        self.steps = 0
        self.generator = torch.Generator().manual_seed(settings.seed)

    def __len__(self) -> int:
        return sum(int(part["means"].shape[0]) for part in (self.frozen, self.params) if part)

    def gaussians(self) -> dict[str, torch.Tensor]:
        """Every Gaussian of the scene, frozen ones first (what is drawn and exported)."""
        if not self.frozen:
            return dict(self.params)
        if not self.params:
            return dict(self.frozen)
        return {name: torch.cat([self.frozen[name], self.params[name]]) for name in PARAMS}

    def _freeze(self) -> None:
        self.frozen = {name: value.detach() for name, value in self.gaussians().items()}
        self.params = {}

    # -- growing
    def new_gaussians(self, frame: Frame) -> dict[str, torch.Tensor]:
        mask = frame.inpaint_wo_edge & (frame.dpt > 0)
        points = world_points(frame.dpt, frame.intrinsic, frame.cam_T_world, mask)
        colors = frame.rgb[mask].astype(np.float32) / 255.0
        radius = frame.dpt[mask] / float(frame.intrinsic[0, 0]) * FOOTPRINT
        n = len(points)
        k = (self.s.sh_degree + 1) ** 2
        t = {"means": torch.as_tensor(points, dtype=torch.float32),
             "scales": torch.log(torch.as_tensor(np.maximum(radius, 1e-7), dtype=torch.float32))[:, None].repeat(1, 3),
             "quats": torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
             "opacities": torch.logit(torch.full((n,), INIT_OPACITY)),
             "sh0": ((torch.as_tensor(colors) - 0.5) / SH_C0)[:, None, :],
             "shN": torch.zeros((n, k - 1, 3))}
        return {name: value.to(self.device) for name, value in t.items()}

    def add_frame(self, frame: Frame) -> int:
        """Add the frame (it supervises training from now on) and its new Gaussians; returns how many."""
        frame.check()
        new = self.new_gaussians(frame)
        self.frames.append(frame)
        if not self.params:
            self.params = {name: torch.nn.Parameter(new[name].contiguous()) for name in PARAMS}
        else:
            self.params = {name: torch.nn.Parameter(torch.cat([self.params[name].detach(), new[name]]).contiguous())
                           for name in PARAMS}
        return int(new["means"].shape[0])

    # -- training
    def _targets(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Frame]]:
        out = []
        for f in self.frames:
            mask = torch.as_tensor(f.inpaint, device=self.device)[None, ..., None].float()
            rgb = torch.as_tensor(f.rgb, device=self.device).float().div_(255.0)[None] * mask  # the target, masked once
            viewmat = torch.as_tensor(f.cam_T_world, dtype=torch.float32, device=self.device)[None]
            K = torch.as_tensor(f.intrinsic, dtype=torch.float32, device=self.device)[None]
            out.append((rgb, mask, viewmat, K, f))
        return out

    def train(self, iterations: int) -> dict[str, float]:
        """`iterations` steps over all frames (fresh Adam state, as the seed's tool does per call)."""
        if iterations <= 0 or not self.params or not self.params["means"].shape[0] or not self.frames:
            return {"iterations": 0}  # nothing to train (gsplat's kernels are not launched on no Gaussians)
        optimizers = list(make_optimizers(self.params, self.s, self.extent, fused=self.device.type == "cuda").values())
        targets = self._targets()
        order = torch.randint(len(targets), (iterations,), generator=self.generator).tolist()
        loss_sum = torch.zeros((), device=self.device)
        for view in order:
            rgb, mask, viewmat, K, frame = targets[view]
            degree = min(self.steps // self.s.sh_degree_interval, self.s.sh_degree)
            pred, _, _ = self._rasterize(viewmat, K, frame.width, frame.height, degree)
            loss = image_loss(pred * mask, rgb, self.s.ssim_lambda)
            loss.backward()
            adam_steps(optimizers)
            loss_sum += loss.detach()
            self.steps += 1
        if self.freeze_trained:
            self._freeze()
        return {"iterations": iterations, "mean_loss": float(loss_sum) / iterations}

    # -- rendering
    def _rasterize(self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int, degree: int,
                   mode: str = "RGB") -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        from gsplat import rasterization

        p = self.gaussians()
        colors, alpha, info = rasterization(
            means=p["means"], quats=p["quats"], scales=torch.exp(p["scales"]), opacities=torch.sigmoid(p["opacities"]),
            colors=sh_coefficients(p, degree), viewmats=viewmats, Ks=Ks, width=width, height=height,
            sh_degree=degree, render_mode=mode, packed=self.s.packed,
            rasterize_mode="antialiased" if self.s.antialiased else "classic")
        return colors, alpha, info

    @torch.no_grad()
    def render(self, cam_T_world: np.ndarray, K: np.ndarray, width: int, height: int) -> Render:
        """RGB, expected depth and opacity of a view."""
        if not len(self):
            return Render(np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32),
                          np.zeros((height, width), np.float32))
        viewmat = torch.as_tensor(cam_T_world, dtype=torch.float32, device=self.device)[None]
        Ks = torch.as_tensor(K, dtype=torch.float32, device=self.device)[None]
        out, alpha, _ = self._rasterize(viewmat, Ks, width, height, self.s.sh_degree, mode="RGB+ED")
        a = alpha[0, ..., 0].clamp(0, 1)
        depth = torch.where(a > HOLE_ALPHA, out[0, ..., 3], torch.zeros_like(a))
        return Render(out[0, ..., :3].clamp(0, 1).float().cpu().numpy(), depth.float().cpu().numpy(),
                      a.float().cpu().numpy())

    @torch.no_grad()
    def hole_ratios(self, cam_T_world: np.ndarray, K: np.ndarray, width: int, height: int) -> list[float]:
        """Per pose of `cam_T_world` ((N, 4, 4)), the fraction of its pixels with less than `HOLE_ALPHA`
        opacity, as `render(...).alpha` gives it: the poses drawn `CANDIDATES_PER_PASS` at a time (one
        rasterisation of several cameras, opacity only) and read back once."""
        if not len(self):
            return [1.0] * len(cam_T_world)
        from gsplat import rasterization

        p = self.gaussians()
        means, quats, scales = p["means"], p["quats"], torch.exp(p["scales"])
        opacities = torch.sigmoid(p["opacities"])
        ink = torch.zeros((len(means), 1), device=self.device)  # opacity needs no colour: one empty channel
        Ks = torch.as_tensor(K, dtype=torch.float32, device=self.device)
        ratios = []
        for start in range(0, len(cam_T_world), CANDIDATES_PER_PASS):
            viewmats = torch.as_tensor(np.asarray(cam_T_world[start:start + CANDIDATES_PER_PASS]), dtype=torch.float32,
                                       device=self.device)
            _, alpha, _ = rasterization(
                means=means, quats=quats, scales=scales, opacities=opacities, colors=ink, viewmats=viewmats,
                Ks=Ks[None].expand(len(viewmats), 3, 3), width=width, height=height, packed=self.s.packed,
                rasterize_mode="antialiased" if self.s.antialiased else "classic")
            ratios.append((alpha[..., 0].clamp(0, 1) < HOLE_ALPHA).float().mean(dim=(1, 2)))
        return [float(r) for r in torch.cat(ratios).cpu()]

    def export(self) -> Splats:
        p = {k: v.detach().float().cpu().numpy() for k, v in self.gaussians().items()}
        return Splats(p["means"], p["scales"], p["quats"], p["opacities"], p["sh0"], p["shN"])

    def load(self, splats: Splats, frames: list[Frame]) -> None:
        """Continue from an exported scene and the frames it was trained on (the next stage's start)."""
        arrays = {"means": splats.means, "scales": splats.scales, "quats": splats.quats,
                  "opacities": splats.opacities, "sh0": splats.sh0, "shN": splats.shN}
        self.params = {k: torch.nn.Parameter(torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float32,
                                                             device=self.device)) for k, v in arrays.items()}
        self.frozen = {}
        self.frames = list(frames)
        if self.freeze_trained:  # the stage before trained them: they stay as they are
            self._freeze()
