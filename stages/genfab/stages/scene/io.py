"""A vistadream sample's scene as it crosses stage boundaries: `frames.npz` and the 3DGS PLY
(`scene.ply`) under `{sample}/<stage>/`, read by the next stage and written again with what it
added."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from genfab.stages.gaussians.ply import Splats, non_finite_rows, read_ply, write_ply
from genfab.stages.runtime import Sample, SampleError
from genfab.stages.scene.frames import Frame, frames_from_npz, frames_to_npz

SCENE_PLY = "scene.ply"
FRAMES = "frames.npz"


def stage_prefix(sample_id: str, stage: str) -> str:
    """A vistadream stage's folder for one sample (the `{sample}/<stage>/` layouts)."""
    return f"{sample_id}/{stage}/"


def read_frames(sample: Sample, stage: str) -> list[Frame]:
    key = stage_prefix(sample.id, stage) + FRAMES
    try:
        frames = frames_from_npz(sample.read_upstream(key, stage))
    except ValueError as exc:
        raise SampleError("BadUpstream", f"{key}: {exc}") from None
    if not frames:
        raise SampleError("BadUpstream", f"{key} holds no frames")
    return frames


def read_splats(sample: Sample, stage: str) -> Splats:
    key = stage_prefix(sample.id, stage) + SCENE_PLY
    local = sample.scratch / f"{stage}.ply"
    sample.ctx.stage_output(stage).download_file(key, local)
    try:
        return read_ply(local)
    except (ValueError, KeyError) as exc:
        raise SampleError("BadUpstream", f"{key}: {exc}") from None


def write_scene(sample: Sample, prefix: str, splats: Splats, frames: list[Frame]) -> dict[str, Any]:
    """Write the PLY and the frames, both encoded off the stage's thread (`Sample.write_later`: about 1.5 s
    of a vistadream scene's CPU work that the next step overlaps); returns counts for the metrics."""
    local = Path(tempfile.mkdtemp(dir=sample.scratch)) / SCENE_PLY
    dropped = non_finite_rows(splats)
    sample.write_file_later(prefix + SCENE_PLY, local, lambda path: write_ply(path, splats))
    kept = list(frames)
    sample.write_later(prefix + FRAMES, lambda: frames_to_npz(kept))
    return {"splats": len(splats) - dropped, "dropped_non_finite": dropped, "frames": [f.name for f in frames]}
