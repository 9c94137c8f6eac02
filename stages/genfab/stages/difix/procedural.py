"""A small procedural multi-camera source in the generic difix layout, for tests, the example and the
benchmark (numpy + OpenCV; `python -m genfab.stages.difix.procedural DIR`).

Three scenes in two groups (`pair00_dance`, `pair00_hug` -> pair00; `pair01_walk` -> pair01), each
seen by 4 cameras (ids 4, 16, 28, 40, on a ring) over 6 frames: two spheres (the "people") moving on a
graded backdrop, ray cast exactly. Ground truth is JPEG (`images/<cam>/<frame>.jpg`), the imperfect
renders are PNG (`renders/`: the ground truth blurred, tinted, noised and with a floater blob, like an
under-trained reconstruction), masks are PNG (`masks/`). Each scene uses another camera format:
`cameras.json` (K, cam_T_world), Nerfstudio `transforms.json`, COLMAP text (`sparse/0/`).

Deliberate flaws, so every drop reason shows up: `pair00_hug` camera 16 frame 3 is a truncated JPEG
(unreadable), `pair01_walk` camera 28 frame 4 has no render (missing render), `pair01_walk` lists frame 5
in `skip_frames.csv`, and in `pair00_dance` frame 5 the people have left the view (masks below any
threshold from 0.01). `ply=True` also writes each frame's spheres as 3DGS PLY files (`splats/`).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from genfab.stages.gaussians.cameras import Camera, SceneData, intrinsics, look_at

CAMERA_IDS = (4, 16, 28, 40)
FRAMES = 6
SCENES = (("pair00_dance", "cameras.json", 0), ("pair00_hug", "transforms.json", 1), ("pair01_walk", "colmap", 2))


@dataclass(frozen=True)
class Person:
    center: np.ndarray
    radius: float
    color: np.ndarray  # RGB in [0, 1]


def ring(width: int, height: int, radius: float = 4.0) -> dict[int, Camera]:
    f = 0.5 * width / math.tan(math.radians(50.0) / 2)
    cams = {}
    for k, cid in enumerate(CAMERA_IDS):
        a = 2 * math.pi * k / len(CAMERA_IDS) + 0.3
        eye = np.array([radius * math.cos(a), radius * math.sin(a), 1.2 + 0.2 * k])
        cams[cid] = Camera(str(cid), intrinsics(f, f, width / 2, height / 2), look_at(eye, np.array([0.0, 0.0, 0.6])),
                           width, height)
    return cams


def people(scene: int, frame: int, gone: bool) -> list[Person]:
    colors = np.random.default_rng(100 + scene).uniform(0.15, 0.95, (2, 3))
    shift = 30.0 if gone else 0.0  # out of every camera's view
    t = 2 * math.pi * frame / FRAMES
    return [Person(np.array([0.5 * math.cos(t) + shift, -0.3, 0.6]), 0.45, colors[0]),
            Person(np.array([-0.4 + shift, 0.4 * math.sin(t), 0.55]), 0.4, colors[1])]


def cast(cam: Camera, persons: list[Person], scene: int) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 RGB float image, HxW bool mask) by exact ray-sphere intersection, Lambert-shaded."""
    ys, xs = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64) + 0.5
    dirs = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0], (ys - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(xs)], -1)
    dirs = dirs @ cam.c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origin = cam.c2w[:3, 3]
    tone = 0.55 + 0.1 * scene
    image = np.stack([tone * (1 - ys / cam.height) + 0.2, np.full_like(ys, 0.45), 0.3 + 0.4 * xs / cam.width], -1)
    depth = np.full(ys.shape, np.inf)
    mask = np.zeros(ys.shape, bool)
    light = np.array([0.3, -0.4, 0.85]) / np.linalg.norm([0.3, -0.4, 0.85])
    for p in persons:
        oc = origin - p.center
        b = dirs @ oc
        disc = b * b - (oc @ oc - p.radius ** 2)
        t = -b - np.sqrt(np.maximum(disc, 0))
        hit = (disc > 0) & (t > 0) & (t < depth)
        normal = (origin + t[..., None] * dirs - p.center) / p.radius
        shade = 0.35 + 0.65 * np.clip(normal @ light, 0, 1)
        image[hit] = p.color * shade[hit, None]
        depth[hit] = t[hit]
        mask |= hit
    return image.clip(0, 1), mask


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An imperfect reconstruction of `image`: blurred, tinted, noisy, with a floater."""
    h, w = image.shape[:2]
    out = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    out += rng.normal(0, 0.03, out.shape).astype(np.float32)
    cy, cx = rng.integers(0, h), rng.integers(0, w)
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.06 * w) ** 2))[..., None]
    out = out * (1 - 0.6 * blob) + 0.6 * blob * rng.uniform(0, 1, 3)
    return np.asarray(out.clip(0, 1))


def bgr8(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((image * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def encode(ext: str, pixels: np.ndarray) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, out = cv2.imencode(ext, pixels, params)
    assert ok
    return bytes(out.tobytes())


def write_cameras(folder: Path, fmt: str, cams: dict[int, Camera]) -> None:
    if fmt == "cameras.json":
        doc = {str(cid): {"K": c.K.tolist(), "cam_T_world": np.linalg.inv(c.c2w).tolist(), "width": c.width,
                          "height": c.height} for cid, c in cams.items()}
        (folder / "cameras.json").write_text(json.dumps(doc, indent=1))
        return
    from genfab.stages.gaussians.loaders import write_colmap, write_transforms

    if fmt == "transforms.json":
        views = [Camera(c.name, c.K, c.c2w, c.width, c.height, image=f"images/{cid}/000000.jpg")
                 for cid, c in cams.items()]
        write_transforms(folder / "transforms.json", SceneData(views))
    else:
        views = [Camera(c.name, c.K, c.c2w, c.width, c.height, image=f"{cid}.jpg") for cid, c in cams.items()]
        write_colmap(folder / "sparse" / "0", SceneData(views), binary=False)
        (folder / "sparse" / "0" / "points3D.txt").unlink()


def splats_of(persons: list[Person], per_sphere: int = 3000) -> object:
    """The frame's spheres as isotropic Gaussians on their surfaces (a 3DGS PLY's parameters)."""
    from genfab.stages.gaussians.ply import Splats

    rng = np.random.default_rng(7)
    means, colors = [], []
    for p in persons:
        v = rng.normal(size=(per_sphere, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        means.append(p.center + p.radius * v)
        colors.append(np.tile(p.color, (per_sphere, 1)))
    n = per_sphere * len(persons)
    sh0 = (np.concatenate(colors) - 0.5) / 0.28209479177387814
    return Splats(np.concatenate(means).astype(np.float32), np.full((n, 3), math.log(0.04), np.float32),
                  np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1)), np.full(n, 4.0, np.float32),
                  sh0.reshape(n, 1, 3).astype(np.float32), np.zeros((n, 0, 3), np.float32))


def scene_list(count: int) -> list[tuple[str, str, int]]:
    """The three scenes above, then (for benchmarks) more in the same formats: `pairNN_extraK`."""
    extra = [(f"pair{2 + k // 2:02d}_extra{k}", SCENES[k % 3][1], 3 + k) for k in range(max(0, count - len(SCENES)))]
    return [*SCENES[:count], *extra]


def write_source(root: Path, width: int = 64, height: int = 48, ply: bool = False, scenes: int = 3,
                 frames: int = FRAMES) -> Path:
    """Write the source under `root` (created); returns `root`."""
    cams = ring(width, height)
    for name, fmt, index in scene_list(scenes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        write_cameras(folder, fmt, cams)
        rng = np.random.default_rng(index)
        for frame in range(frames):
            fname = f"{frame:06d}"
            persons = people(index, frame, gone=(name == "pair00_dance" and frame == 5))
            if ply:
                from genfab.stages.gaussians.ply import Splats, write_ply

                splats = splats_of(persons)
                assert isinstance(splats, Splats)
                write_ply(folder / "splats" / f"{fname}.ply", splats)
            for cid, cam in cams.items():
                image, mask = cast(cam, persons, index)
                gt = encode(".jpg", bgr8(image))
                if name == "pair00_hug" and cid == 16 and frame == 3:
                    gt = gt[: len(gt) // 2]  # the deliberately broken frame
                write(folder / "images" / str(cid) / f"{fname}.jpg", gt)
                write(folder / "masks" / str(cid) / f"{fname}.png", encode(".png", mask.astype(np.uint8) * 255))
                if not (name == "pair01_walk" and cid == 28 and frame == 4):
                    write(folder / "renders" / str(cid) / f"{fname}.png", encode(".png", bgr8(degrade(image, rng))))
        if name == "pair01_walk":
            (folder / "skip_frames.csv").write_text("5\n")
    return root


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m genfab.stages.difix.procedural DIR [--ply]")
    print(write_source(Path(sys.argv[1]), ply="--ply" in sys.argv[2:]))
