"""The expansion's output folder `img2trajvid/` (the lab's worldexplorer: what stage 3 `run_3dgs_only` reads from a
sample's work dir `scenes/`), in a form genfab's gaussians loader reads: Nerfstudio's layout.

    scenes/img2trajvid/transforms.json   OpenGL camera-to-world per frame, intrinsics, ply_file_path
    scenes/img2trajvid/images/NNNN.png   the scaffold views first (0000-0007), then the trajectory
    scenes/img2trajvid/sparse_pc.ply     initial points (x, y, z, red, green, blue)
    scenes/img2trajvid/frames.json       per frame: its source (scaffold, generated, rendered) and pose

Writing goes through `genfab.stages.gaussians.loaders.write_transforms`, the loader's own writer, so
the two cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from genfab.stages.common.imaging import encode_png
from genfab.stages.gaussians.cameras import Camera, SceneData
from genfab.stages.gaussians.loaders import write_transforms

FOLDER = "img2trajvid"
Source = Literal["scaffold", "generated", "rendered"]


@dataclass(frozen=True)
class TrajFrame:
    rgb: np.ndarray
    """(H, W, 3) uint8."""
    K: np.ndarray
    cam_T_world: np.ndarray
    """World-to-camera (OpenCV axes)."""
    source: Source
    """scaffold: a final scaffold view; generated: inpainted (FluxFill) or synthesised (SEVA) along
    the trajectory; rendered: the expanded scene rendered where nothing new was seen."""


def subsample(points: np.ndarray, colors: np.ndarray | None, limit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """At most `limit` points, taken evenly along the array (deterministic: the same scene gives the
    same points)."""
    if len(points) <= limit:
        return points, colors
    keep = np.linspace(0, len(points) - 1, limit).round().astype(np.int64)
    return points[keep], (colors[keep] if colors is not None else None)


def write_img2trajvid(folder: Path, frames: list[TrajFrame], points: np.ndarray, colors: np.ndarray | None,
                      max_points: int) -> dict[str, int]:
    """Write the layout under `folder` (created); returns counts per source and the points written."""
    if not frames:
        raise ValueError("img2trajvid needs at least one frame")
    (folder / "images").mkdir(parents=True, exist_ok=True)
    cameras, described = [], []
    for i, frame in enumerate(frames):
        name = f"images/{i:04d}.png"
        (folder / name).write_bytes(encode_png(frame.rgb))
        height, width = frame.rgb.shape[:2]
        c2w = np.linalg.inv(frame.cam_T_world)
        cameras.append(Camera(name=f"{i:04d}", K=np.asarray(frame.K, np.float64), c2w=c2w, width=width,
                              height=height, image=name))
        described.append({"file_path": name, "source": frame.source,
                          "camTWorld": np.round(frame.cam_T_world, 6).tolist()})
    points, colors = subsample(np.asarray(points, np.float64).reshape(-1, 3), colors, max_points)
    write_transforms(folder / "transforms.json", SceneData(cameras, points, colors))
    (folder / "frames.json").write_text(json.dumps({"frames": described}, indent=1))
    counts = {source: sum(f.source == source for f in frames) for source in ("scaffold", "generated", "rendered")}
    return {**counts, "points": len(points)}
