"""`renders: ply`: the imperfect images rendered here from the scene's 3DGS PLY files (one per frame, or
one `scene.ply` for all) at the target cameras, with the gaussians stage's renderer on the GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genfab.stages.common.imaging import encode_png
from genfab.stages.difix.files import decode
from genfab.stages.difix.layouts import FrameKey
from genfab.stages.difix.scene_export import SceneExport
from genfab.stages.difix.triplets import Triplet
from genfab.stages.gaussians.cameras import Camera


def sized(job: SceneExport, cam_id: int, frame: str) -> Camera:
    """The camera with its image size (camera files without one: the ground truth's)."""
    cam = job.cameras[cam_id]
    if cam.width and cam.height:
        return cam
    h, w = decode(job.source_bytes(job.files.images[(cam_id, frame)]), f"ground truth of camera {cam_id}").shape[:2]
    job.cameras[cam_id] = Camera(cam.name, cam.K, cam.c2w, int(w), int(h))
    return job.cameras[cam_id]


def render_targets(job: SceneExport, triplets: list[Triplet], workdir: Path) -> dict[FrameKey, bytes]:
    """PNG renders of every triplet's target view, one PLY loaded at a time."""
    import torch

    from genfab.stages.gaussians.ply import read_ply
    from genfab.stages.gaussians.render import render_splats

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is visible")
    by_ply: dict[str, list[FrameKey]] = {}
    for t in triplets:
        ply = job.files.plys.get(t.frame) or job.files.plys["*"]
        by_ply.setdefault(ply, []).append((t.target_cam, t.frame))
    store = job.renders or job.storage
    out: dict[FrameKey, bytes] = {}
    for ply, keys in sorted(by_ply.items()):
        local = workdir / "ply" / Path(ply).name
        local.parent.mkdir(parents=True, exist_ok=True)
        store.download_file(job.render_key(ply), local)
        splats = read_ply(local)
        cams = [sized(job, cam, frame) for cam, frame in keys]
        for key, image in zip(keys, render_splats(splats, cams, "cuda"), strict=True):
            rgb = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
            out[key] = encode_png(rgb, compression=1)
        local.unlink()
    return out
