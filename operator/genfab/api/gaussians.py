"""3D Gaussian Splatting training parameters (gsplat), shared by both scene pipelines."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from genfab.api.base import RUN_TIME, GenfabModel, ModelReference, Rule

PLY_PATH = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$"
"""The lab's vistadream script's `--export-gaussians-ply-path` inside a sample's folder: a path ending in `.ply` is the
file, anything else a folder that gets `gf.ply` (`genfab.stages.gaussians.stage.ply_key`)."""


def ply_path_inside(alias: str, attr: str) -> Rule:
    """The PLY path stays inside the sample's folder (no `.` or `..` segments)."""
    return Rule(f"!self.{alias}.matches('(^|/)[.][.]?(/|$)')",
                f"{alias} must stay inside the sample's folder (no '.' or '..' segments)", alias,
                lambda m: not re.search(r"(^|/)\.\.?(/|$)", getattr(m, attr)))

class SplatConfig(GenfabModel):
    """What every Gaussian scene genfab trains reads, however it is grown: spherical harmonics, the
    photometric loss, the rasterizer's modes and the seed (vistadream's scene-growing stages read only
    these)."""

    sh_degree: int = Field(3, ge=0, le=4)
    """Final spherical-harmonics degree."""
    sh_degree_interval: int = Field(1000, ge=1)
    """Steps between SH degree increases in a 30,000-step run: the 3DGS trainer scales it to `steps`
    as it does the densification schedule (233 at 7,000 steps, gsplat's `--steps_scaler`); scene
    growing, which has no fixed length, uses it as it is."""
    ssim_lambda: float = Field(0.2, ge=0.0, le=1.0)
    """Weight of the (1 - SSIM) term; L1 gets 1 - ssimLambda."""
    packed: Annotated[bool, RUN_TIME] = False
    """gsplat packed mode (less memory for large scenes)."""
    antialiased: bool = False
    """Anti-aliased rasterization (gsplat `rasterize_mode="antialiased"`)."""
    seed: int = Field(42, ge=0)
    """Random seed (deterministic initialisation and view order)."""


class GaussiansConfig(SplatConfig):
    """3DGS training (the lab's worldexplorer script's Stage 3 `run_3dgs_only`, the lab's vistadream script's
    `GS_Train_Tool`) on gsplat."""

    rules = (
        Rule(
            "self.strategy != 'mcmc' || self.capMax >= self.initNumPoints",
            "capMax must be >= initNumPoints for the mcmc strategy",
            "capMax",
            lambda m: m.strategy != "mcmc" or m.cap_max >= m.init_num_points,
        ),
        ply_path_inside("plyPath", "ply_path"),
        Rule(
            "!self.sparseGrad || self.packed",
            "sparseGrad needs packed: true (gsplat's sparse gradients are per visible Gaussian)",
            "sparseGrad",
            lambda m: not m.sparse_grad or m.packed,
        ),
    )

    steps: int = Field(30000, ge=1, le=1_000_000)
    """Optimisation steps per scene (gsplat's simple trainer default: 30k)."""
    strategy: Literal["default", "mcmc"] = "default"
    """Densification strategy: gsplat `DefaultStrategy` (clone/split/prune) or `MCMCStrategy`."""
    cap_max: int = Field(1_000_000, ge=1000, le=50_000_000)
    """Most Gaussians per scene (both strategies): bounds each scene's GPU memory when several are packed."""
    init_type: Literal["points", "random"] = "points"
    """Initialise from upstream points (depth/geometry) or uniformly at random in the scene bounds."""
    init_num_points: int = Field(100_000, ge=1, le=10_000_000)
    """Number of random points when `initType` is random (or no points are available)."""
    init_extent: float = Field(3.0, gt=0.0)
    """Half-size of the random-init cube in scene scales (gsplat's); cameras that all look at one point
    get a cube around it of at most 0.32x their distance to it."""
    sparse_grad: bool = False
    """Sparse gradients (needs packed mode)."""
    test_every: int = Field(8, ge=2, le=1000)
    """Every N-th view is held out for evaluation (PSNR, SSIM, LPIPS)."""
    scenes_per_pod: Annotated[int, RUN_TIME] = Field(1, ge=1, le=64)
    """Scenes trained concurrently on one GPU (multi-scene packing); the planner's shard size."""
    packing: Annotated[Literal["batched", "sequential"], RUN_TIME] = "batched"
    """How packed scenes share the GPU: `batched` trains scenes of one image size as one Gaussian set,
    one view of each per rasterization call (small scenes are bound by per-step overhead, now paid
    once; 6.8x the scenes per GPU-hour of `sequential` on 8 small scenes); `sequential` trains them
    one after another. Unbatchable scenes (mixed sizes, masks) train one after another."""
    ply_path: str = Field("gf.ply", pattern=PLY_PATH, max_length=256)
    """Where the PLY goes in the sample's gaussians folder (the lab's vistadream script's
    `--export-gaussians-ply-path`): a
    name ending in `.ply` is the file, anything else a folder that gets `gf.ply`."""
    background: list[Annotated[float, Field(ge=0.0, le=1.0)]] | None = Field(None, min_length=3, max_length=3)
    """Known background colour (RGB in [0, 1]) of the captures, e.g. [1, 1, 1] for object-centric
    renders on white; unset: black, as gsplat's simple trainer. Set it when the captures have one:
    unset, a white background is painted by Gaussians just in front of the training cameras, which
    hide the object from every other view (a white procedural scene at 30,000 steps: 8.4 dB held-out
    PSNR unset, 40.6 dB with [1, 1, 1]; benchmarks/results/gaussians.md)."""
    video: bool = True
    """Render an orbit `trajectory.mp4` next to the PLY."""
    lpips_model: Annotated[str, ModelReference(optional=lambda m: True)] = Field("genfab/alexnet-lpips", max_length=256)
    """The LPIPS (AlexNet, v0.1) the evaluation measures with: a folder in the model location whose
    `config.json` names `alexnet` (torchvision's `alexnet-owt-7be5be79.pth`) and `lpips` (the `lpips`
    package's `weights/v0.1/alex.pth`). Nothing is downloaded: without it `metrics.json` has LPIPS null
    and `lpips_unavailable` says why; training and the PLY are unaffected."""
