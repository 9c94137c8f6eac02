"""Procedural multi-view benchmark scenes, rendered by an analytic ray caster (not a splatter).

Textured spheres and boxes on a checkered ground disc under a directional light with hard shadows
and ambient light, in front of a white background, seen by cameras on rings around the scene. The
same seed gives the same scene, cameras and images (bit-identical on one device). No downloads, no
data files: benchmarks and GPU tests train on these, and because the images come from ray casting
geometry, a Gaussian splatter cannot reproduce them trivially.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genfab.stages.gaussians.cameras import Camera, SceneData, intrinsics, look_at

GROUND_RADIUS = 2.5
BACKGROUND = (1.0, 1.0, 1.0)
"""Rays that miss everything see a constant white background by default, as in object-centric captures
(NeRF's synthetic scenes): train with `background` set to it. A trainer that composites black instead
(gsplat's simple_trainer, and genfab without `background`) must paint that white with Gaussians,
which end up in front of the training cameras and hide the objects from held-out views
(benchmarks/gaussians_schedule.py); `generate(background=(0, 0, 0))` gives those trainers a scene
whose background they need not paint."""


@dataclass
class Primitive:
    kind: str  # "sphere" or "box"
    center: np.ndarray
    size: np.ndarray  # radius (sphere, in size[0]) or half extents (box)
    colors: np.ndarray  # (2, 3) texture colours
    frequency: float


@dataclass
class ProceduralScene:
    primitives: list[Primitive]
    light: np.ndarray
    ambient: float
    background: tuple[float, float, float] = BACKGROUND
    cameras: list[Camera] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    """Camera name -> HxWx3 float32 image in [0, 1]."""
    points: np.ndarray | None = None
    colors: np.ndarray | None = None

    def scene_data(self) -> SceneData:
        return SceneData(self.cameras, self.points, self.colors, meta={"format": "procedural"})


def make_scene(seed: int, n_primitives: int = 6, background: tuple[float, float, float] = BACKGROUND
               ) -> ProceduralScene:
    rng = np.random.default_rng(seed)
    prims = []
    for _ in range(n_primitives):
        kind = "sphere" if rng.random() < 0.5 else "box"
        size = rng.uniform(0.25, 0.6, 3) if kind == "box" else np.full(3, rng.uniform(0.3, 0.6))
        xy = rng.uniform(-1.4, 1.4, 2)
        z = size[2] if kind == "box" else size[0]
        prims.append(Primitive(kind, np.array([xy[0], xy[1], z]), size, rng.uniform(0.05, 0.95, (2, 3)),
                               float(rng.choice([2.0, 3.0, 4.0, 6.0]))))
    azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(0.6, 1.1)
    light = np.array([math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation),
                      math.sin(elevation)])
    return ProceduralScene(prims, light, float(rng.uniform(0.25, 0.4)), background)


def ring_cameras(n_views: int, width: int, height: int, radius: float = 4.5, fov_deg: float = 55.0,
                 seed: int = 0) -> list[Camera]:
    """Views on two rings (low and high), looking at the scene centre, slightly jittered."""
    rng = np.random.default_rng(seed + 1)
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = intrinsics(f, f, width / 2, height / 2)
    cams = []
    for i in range(n_views):
        a = 2 * math.pi * i / n_views + rng.uniform(-0.05, 0.05)
        h = (1.0 if i % 2 else 2.4) + rng.uniform(-0.2, 0.2)
        eye = np.array([radius * math.cos(a), radius * math.sin(a), h])
        cams.append(Camera(f"view_{i:03d}", K.copy(), look_at(eye, np.array([0.0, 0.0, 0.4])), width, height,
                           image=f"images/view_{i:03d}.png"))
    return cams


def _hit_spheres(o: torch.Tensor, d: torch.Tensor, prims: list[Primitive]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest positive t per ray and the primitive index (-1 for none)."""
    t_best = torch.full(d.shape[:1], math.inf, device=d.device)
    idx = torch.full(d.shape[:1], -1, dtype=torch.long, device=d.device)
    for i, p in enumerate(prims):
        c = torch.as_tensor(p.center, dtype=d.dtype, device=d.device)
        if p.kind == "sphere":
            oc = o - c
            b = (oc * d).sum(-1)
            disc = b * b - ((oc * oc).sum(-1) - float(p.size[0]) ** 2)
            sq = torch.sqrt(disc.clamp(min=0))
            t = torch.where(-b - sq > 1e-4, -b - sq, -b + sq)
            t = torch.where((disc > 0) & (t > 1e-4), t, torch.full_like(t, math.inf))
        else:
            half = torch.as_tensor(p.size, dtype=d.dtype, device=d.device)
            inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
            t0, t1 = (c - half - o) * inv, (c + half - o) * inv
            near = torch.minimum(t0, t1).amax(-1)
            far = torch.maximum(t0, t1).amin(-1)
            t = torch.where(near > 1e-4, near, far)
            t = torch.where((far >= near) & (t > 1e-4), t, torch.full_like(t, math.inf))
        closer = t < t_best
        t_best, idx = torch.where(closer, t, t_best), torch.where(closer, torch.full_like(idx, i), idx)
    return t_best, idx


def _hit_ground(o: torch.Tensor, d: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The ground is a disc of radius GROUND_RADIUS at z = 0: the scene stays bounded."""
    t = torch.where(d[:, 2] < -1e-6, -o[:, 2] / d[:, 2].clamp(max=-1e-6), torch.full_like(like, math.inf))
    xy = o[:, :2] + d[:, :2] * torch.where(torch.isfinite(t), t, torch.zeros_like(t))[:, None]
    return torch.where(xy.norm(dim=-1) < GROUND_RADIUS, t, torch.full_like(t, math.inf))


def _shade(scene: ProceduralScene, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    dev, dt = d.device, d.dtype
    t_obj, idx = _hit_spheres(o, d, scene.primitives)
    t_plane = _hit_ground(o, d, t_obj)
    plane = t_plane < t_obj
    t = torch.minimum(t_obj, t_plane)
    hit = torch.isfinite(t)
    x = o + d * torch.where(hit, t, torch.zeros_like(t))[:, None]
    normal = torch.zeros_like(d)
    normal[:, 2] = 1.0
    albedo = torch.zeros_like(d)
    checker = ((torch.floor(x[:, 0] * 2) + torch.floor(x[:, 1] * 2)) % 2)[:, None]
    albedo = torch.where(plane[:, None], 0.75 * checker + 0.2 * (1 - checker), albedo)
    for i, p in enumerate(scene.primitives):
        sel = (idx == i) & ~plane
        c = torch.as_tensor(p.center, dtype=dt, device=dev)
        local = x - c
        if p.kind == "sphere":
            n = local / float(p.size[0])
            u = torch.atan2(n[:, 1], n[:, 0]) / math.pi * p.frequency
            v = torch.asin(n[:, 2].clamp(-1, 1)) / math.pi * p.frequency
        else:
            half = torch.as_tensor(p.size, dtype=dt, device=dev)
            q = local / half
            axis = q.abs().argmax(-1)
            n = torch.nn.functional.one_hot(axis, 3).to(dt) * torch.sign(q)
            u, v = local[:, 0] * p.frequency + local[:, 2] * p.frequency, local[:, 1] * p.frequency
        pattern = ((torch.floor(u) + torch.floor(v)) % 2)[:, None]
        colors = torch.as_tensor(p.colors, dtype=dt, device=dev)
        tex = colors[0] * pattern + colors[1] * (1 - pattern)
        normal = torch.where(sel[:, None], n, normal)
        albedo = torch.where(sel[:, None], tex, albedo)
    light = torch.as_tensor(scene.light, dtype=dt, device=dev)
    lambert = (normal * light).sum(-1).clamp(min=0)
    shadow_t, _ = _hit_spheres(x + normal * 1e-3, light.expand_as(d), scene.primitives)
    lit = torch.where(torch.isfinite(shadow_t), torch.zeros_like(lambert), lambert)
    color = albedo * (scene.ambient + (1 - scene.ambient) * lit)[:, None]
    background = torch.tensor(scene.background, dtype=dt, device=dev).expand_as(color)
    return torch.where(hit[:, None], color, background).clamp(0, 1)


def render(scene: ProceduralScene, cam: Camera, supersample: int = 2, device: str | torch.device = "cpu"
           ) -> np.ndarray:
    """Ray-cast one view, `supersample`^2 rays per pixel: float32 HxWx3 in [0, 1] quantised to 8 bits
    (what a PNG holds), so every consumer, in memory or from disk, trains on the same pixels."""
    s = supersample
    ys, xs = torch.meshgrid(torch.arange(cam.height * s, device=device, dtype=torch.float64),
                            torch.arange(cam.width * s, device=device, dtype=torch.float64), indexing="ij")
    K = torch.as_tensor(cam.K, dtype=torch.float64, device=device)
    c2w = torch.as_tensor(cam.c2w, dtype=torch.float64, device=device)
    pix = torch.stack([(xs + 0.5) / s, (ys + 0.5) / s, torch.ones_like(xs)], -1).reshape(-1, 3)
    dirs = (torch.linalg.inv(K) @ pix.T).T
    dirs = (c2w[:3, :3] @ dirs.T).T
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origin = c2w[:3, 3].expand_as(dirs)
    rgb = _shade(scene, origin, dirs).reshape(cam.height, s, cam.width, s, 3).mean(dim=(1, 3))
    return (torch.round(rgb.clamp(0, 1) * 255) / 255).float().cpu().numpy()


def surface_points(scene: ProceduralScene, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SfM-like initial points: rays from random directions around the scene hit its surfaces."""
    rng = np.random.default_rng(seed + 2)
    eye = rng.normal(size=(n, 3))
    eye[:, 2] = np.abs(eye[:, 2]) + 0.3
    eye = eye / np.linalg.norm(eye, axis=1, keepdims=True) * 5.0
    target = np.concatenate([rng.uniform(-2, 2, (n, 2)), rng.uniform(0, 1.2, (n, 1))], 1)
    d = torch.as_tensor(target - eye)
    d = d / d.norm(dim=-1, keepdim=True)
    o = torch.as_tensor(eye)
    t_obj, _ = _hit_spheres(o, d, scene.primitives)
    t_plane = _hit_ground(o, d, t_obj)
    t = torch.minimum(t_obj, t_plane)
    ok = torch.isfinite(t)
    xyz = (o + d * torch.where(ok, t, torch.zeros_like(t))[:, None])[ok]
    rgb = _shade(scene, o[ok], d[ok])
    return xyz.numpy(), rgb.numpy()


def generate(seed: int, n_views: int = 24, width: int = 128, height: int = 128, n_points: int = 20000,
             device: str | torch.device = "cpu", background: tuple[float, float, float] = BACKGROUND
             ) -> ProceduralScene:
    """A complete benchmark scene: geometry, posed views with images, initial points."""
    scene = make_scene(seed, background=background)
    scene.cameras = ring_cameras(n_views, width, height, seed=seed)
    scene.images = {cam.name: render(scene, cam, device=device) for cam in scene.cameras}
    scene.points, scene.colors = surface_points(scene, n_points, seed)
    return scene


def write_scene(scene: ProceduralScene, folder: Path, fmt: str = "nerfstudio") -> Path:
    """Write images + `transforms.json` (OpenGL poses) or a COLMAP binary model: a scene folder the
    `gaussians` stage reads like any captured one."""
    from PIL import Image

    from genfab.stages.gaussians.loaders import write_colmap, write_transforms

    (folder / "images").mkdir(parents=True, exist_ok=True)
    for cam in scene.cameras:
        Image.fromarray((scene.images[cam.name] * 255 + 0.5).astype(np.uint8)).save(folder / str(cam.image))
    if fmt == "nerfstudio":
        write_transforms(folder / "transforms.json", scene.scene_data())
    else:
        write_colmap(folder / "sparse" / "0", scene.scene_data(), binary=fmt != "colmap-text")
    return folder
