"""The Rerun recording of a vistadream scene (the lab's vistadream blueprint), written to an `.rrd` file.

Timeline `frame`: the initial frames, then each coarse frame as it was added, then the final render
trajectory. Entities: `world/points` (every Gaussian's centre and colour), `world/cameras/<frame>`
(pose and pinhole, with `rgb`, `depth`, `confidence` and `inpaint` images) and `world/render` (the
trajectory camera with its `rgb` and `depth`). Blueprint: tabs Initialization, Coarse Scene and
Final Scene; per camera its RGB, depth, confidence and inpaint panels; the 3D view shows cameras and
points, never the depth or mask tensors; side panels beside the 3D view for landscape inputs, below
it for portrait ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genfab.stages.scene.frames import Frame

APP = "genfab-vistadream"
IMAGES = ("rgb", "depth", "confidence", "inpaint")
HIDDEN_IN_3D = [f"- world/**/{name}" for name in IMAGES[1:]]
SH_C0 = 0.28209479177387814


@dataclass
class TrajectoryView:
    cam_T_world: np.ndarray
    K: np.ndarray
    rgb: np.ndarray
    """(H, W, 3) uint8."""
    depth: np.ndarray


def splat_colors(sh0: np.ndarray) -> np.ndarray:
    """Base colours (uint8 RGB) of Gaussians from their degree-0 SH coefficients."""
    return (np.clip(sh0.reshape(-1, 3) * SH_C0 + 0.5, 0, 1) * 255 + 0.5).astype(np.uint8)


def _camera(rec: Any, path: str, cam_T_world: np.ndarray, K: np.ndarray, width: int, height: int) -> None:
    import rerun as rr

    rec.log(path, rr.Transform3D(translation=cam_T_world[:3, 3], mat3x3=cam_T_world[:3, :3],
                                 relation=rr.TransformRelation.ChildFromParent))
    rec.log(path, rr.Pinhole(image_from_camera=K, resolution=[width, height], camera_xyz=rr.ViewCoordinates.RDF))


def _tab(names: Sequence[str], portrait: bool, tab: str) -> Any:
    import rerun.blueprint as rrb

    spatial3d = rrb.Spatial3DView(origin="world", contents=["+ world/**", *HIDDEN_IN_3D], name="3D")
    panels: list[Any] = [rrb.Horizontal(*(rrb.Spatial2DView(origin=f"world/cameras/{n}/{image}", name=f"{n} {image}")
                                          for image in IMAGES)) for n in names]
    side = rrb.Vertical(*panels) if panels else rrb.TextDocumentView(origin="world/notes", name="no frames")
    if portrait:
        return rrb.Vertical(spatial3d, side, row_shares=[3, 2], name=tab)
    return rrb.Horizontal(spatial3d, side, column_shares=[3, 2], name=tab)


def write_recording(path: Path, frames: Sequence[Frame], means: np.ndarray, sh0: np.ndarray,
                    trajectory: Sequence[TrajectoryView]) -> None:
    """Write the recording; `frames` in the order they entered the scene (initial ones first)."""
    import rerun as rr
    import rerun.blueprint as rrb

    rec = rr.RecordingStream(APP)
    rec.save(str(path))
    initial = [f.name for f in frames if not f.name.startswith("coarse_")]
    coarse = [f.name for f in frames if f.name.startswith("coarse_")]
    for t, frame in enumerate(frames):
        rec.set_time("frame", sequence=t)
        base = f"world/cameras/{frame.name}"
        _camera(rec, base, frame.cam_T_world, frame.intrinsic, frame.width, frame.height)
        rec.log(f"{base}/rgb", rr.Image(frame.rgb))
        rec.log(f"{base}/depth", rr.DepthImage(frame.dpt, meter=1.0))
        rec.log(f"{base}/confidence", rr.SegmentationImage(frame.dpt_conf_mask.astype(np.uint8)))
        rec.log(f"{base}/inpaint", rr.SegmentationImage(frame.inpaint.astype(np.uint8)))
    start = len(frames)
    rec.set_time("frame", sequence=start)
    rec.log("world/points", rr.Points3D(means, colors=splat_colors(sh0), radii=rr.Radius.ui_points(1.0)))
    for i, view in enumerate(trajectory):
        rec.set_time("frame", sequence=start + i)
        _camera(rec, "world/render", view.cam_T_world, view.K, view.rgb.shape[1], view.rgb.shape[0])
        rec.log("world/render/rgb", rr.Image(view.rgb))
        rec.log("world/render/depth", rr.DepthImage(view.depth, meter=1.0))
    portrait = bool(frames) and frames[0].height > frames[0].width
    final = rrb.Horizontal(
        rrb.Spatial3DView(origin="world", contents=["+ world/**", *HIDDEN_IN_3D, "- world/cameras/**"], name="3D"),
        rrb.Vertical(rrb.Spatial2DView(origin="world/render/rgb", name="render rgb"),
                     rrb.Spatial2DView(origin="world/render/depth", name="render depth")),
        column_shares=[3, 2], name="Final Scene")
    rec.send_blueprint(rrb.Blueprint(rrb.Tabs(_tab(initial, portrait, "Initialization"),
                                              _tab(coarse, portrait, "Coarse Scene"), final, active_tab=2)))
    rec.flush()
