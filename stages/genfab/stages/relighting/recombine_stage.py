"""Stage 3.5 `recombine`: the relit person back onto the original background ->
data/stage_3_5/{id}_composite.png.

- `composite: binary` (the lab's relighting): `degraded × mask + background × (1 − mask)` with stage 1's binary
  mask: every mask pixel is the relit person's, every other pixel the input's own bytes.
- `composite: soft`: `degraded × α + input × (1 − α)` with the soft alpha (inside the mask): along the
  feathered outline the relit person blends into the input picture itself (the person's own pixels
  there), never into the blacked-out plate; outside the mask the input's bytes again.

Each sample's pair figures (`pair_figures`: lighting change, saturation ratio, ΔE00, dark lift,
blockiness, inside the mask) go into its `quality`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from genfab.api.pipelines.relighting import RecombineSettings
from genfab.stages.relighting.images import decode, encode
from genfab.stages.relighting.matte import alpha_of, original, person_region
from genfab.stages.relighting.pair_figures import pair_figures
from genfab.stages.runtime import Sample, SampleError, StageContext
from genfab.stages.runtime.pooled import Computed, PooledStage
from genfab.storage import Storage


def composite(degraded: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 BGR composite; pixels with alpha 0 are the background's own bytes."""
    if degraded.shape != background.shape or alpha.shape != background.shape[:2]:
        raise SampleError("ShapeMismatch", f"degraded {degraded.shape}, background {background.shape} and "
                                           f"alpha {alpha.shape} differ (were the stage outputs mixed up?)")
    a = alpha[..., None]
    mixed = degraded.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    out = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return np.where(a > 0, out, background)


class RecombineJob(TypedDict):
    id: str
    composite: str
    """`composite`'s choice: binary (the lab's) or alpha."""
    mask: np.ndarray
    foreground: np.ndarray
    background: np.ndarray
    degraded: np.ndarray


def compute_composite(job: RecombineJob) -> Computed:
    region = person_region(job["mask"])
    picture = original(job["foreground"], job["background"], region)  # the input again
    if job["composite"] == "binary":
        alpha, partner = region.astype(np.float32), job["background"][..., :3]
    else:
        alpha, partner = alpha_of(job["foreground"]), picture
    out = composite(job["degraded"][..., :3], partner, alpha)
    return {"files": {f"{job['id']}_composite.png": encode(out)},
            "params": {"composite": job["composite"], "alphaCoverage": round(float((alpha > 0).mean()), 5),
                       "quality": pair_figures(picture[..., :3], out, region)}}


@dataclass(frozen=True)
class Recombine:
    """What a recombine worker holds: the settings and the outputs of segment and degrade."""

    settings: RecombineSettings
    segment: Storage
    degrade: Storage


def load(settings: RecombineSettings, ctx: StageContext) -> Recombine:
    return Recombine(settings, ctx.stage_output("segment"), ctx.stage_output("degrade"))


def read(held: Recombine, sample: Sample) -> RecombineJob:
    return RecombineJob(id=sample.id, composite=held.settings.composite,
                        mask=decode(held.segment.read_bytes(f"{sample.id}_mask.png")),
                        foreground=decode(held.segment.read_bytes(f"{sample.id}_foreground.png")),
                        background=decode(held.segment.read_bytes(f"{sample.id}_background.png")),
                        degraded=decode(held.degrade.read_bytes(f"{sample.id}_degraded.png")))


RECOMBINE = PooledStage("recombine", load, read, compute_composite)
