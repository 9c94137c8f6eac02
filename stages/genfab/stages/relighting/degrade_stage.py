"""Stage 3 `degrade`: new illumination on the albedo -> data/stage_3/{id}_degraded.png and
{id}_params.json (every drawn parameter; `degradation.render` reproduces the image from it).
Normals come from a depth model on the GPU (batched, `softShading.normals`) or, classically, from
the mask's geometry on the CPU."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np

from genfab.api.pipelines.relighting import DegradeSettings
from genfab.api.relighting_params import LightingParams
from genfab.stages.common.imaging import to_float, to_uint8
from genfab.stages.models.base import ModelSet, open_models, required_models
from genfab.stages.models.location import ModelUnavailable
from genfab.stages.models.placement import Placement
from genfab.stages.relighting import degradation, shading
from genfab.stages.relighting.images import decode, encode
from genfab.stages.relighting.matte import person_region
from genfab.stages.runtime import BadInput, Sample, SampleError, StageContext
from genfab.stages.runtime.pooled import Chunk, Computed, PooledStage, stage_seed
from genfab.storage import Storage


class DegradeJob(TypedDict):
    id: str
    albedo: np.ndarray
    mask: np.ndarray
    params: LightingParams
    rgb: NotRequired[np.ndarray]
    """The foreground, for the depth model (taken out by `prepare`)."""
    disparity: NotRequired[np.ndarray]
    """The depth model's disparity, where normals come from it."""


def compute_degraded(job: DegradeJob) -> Computed:
    mask = job["mask"]
    if not mask.any():
        raise SampleError("EmptyMask", "the stage-1 foreground has no person pixels")
    params = job["params"]
    normals = None
    if degradation.needs_normals(params):
        disparity = job.get("disparity")
        normals = (shading.normals_from_depth(disparity, mask) if disparity is not None
                   else shading.normals_from_mask(mask))
    out = degradation.render(to_float(job["albedo"]), normals, mask, params)
    sid = job["id"]
    doc = {"sampleId": sid, **params.document()}
    return {"files": {f"{sid}_degraded.png": encode(to_uint8(out)),
                      f"{sid}_params.json": json.dumps(doc, indent=2, sort_keys=True).encode()},
            "params": params.document()}


def load_depth(path: Path, placement: Placement) -> Any:
    from genfab.stages.relighting.depth_models import DepthModel

    return DepthModel(path, path.name, placement)


@dataclass(frozen=True)
class Degrade:
    """What a degrade worker holds: the settings, the outputs it reads and the depth model its normals
    come from (None: from the mask), with what `normals` records."""

    settings: DegradeSettings
    segment: Storage
    albedo: Storage
    models: ModelSet
    depth: Any
    normals_source: str


def load(settings: DegradeSettings, ctx: StageContext) -> Degrade:
    soft = settings.degradation.soft_shading
    choice, model = soft.normals, soft.normals_model()
    models = open_models(ctx)
    depth: Any = None
    source = "classical"
    with required_models():
        if choice == "auto" and model is not None:  # MiDaS when its weights are there, else classical (said)
            depth = models.load_optional("normals", model, load_depth)
            if depth is None:
                source = f"classical (auto: no {model} in the model location)"
        elif model is not None:
            try:
                depth = models.load("normals", model, load_depth)
            except (ImportError, ModelUnavailable) as exc:
                raise BadInput(f"degradation.softShading.normals={choice!r} cannot run: {exc} "
                               "(put the weights in the model location, or set normals: classical)") from None
    if depth is not None:
        source = f"{choice}:{model}"
    return Degrade(settings, ctx.stage_output("segment"), ctx.stage_output("albedo"), models, depth, source)


def read(held: Degrade, sample: Sample) -> DegradeJob:
    fg = decode(held.segment.read_bytes(f"{sample.id}_foreground.png"))
    albedo = decode(held.albedo.read_bytes(f"{sample.id}_albedo.png"))
    params = degradation.draw_params(held.settings.degradation, stage_seed(sample, held.settings.seed, "degrade"))
    mask = person_region(decode(held.segment.read_bytes(f"{sample.id}_mask.png")))
    job = DegradeJob(id=sample.id, albedo=albedo[..., :3], mask=mask, params=params)
    if degradation.needs_normals(params):
        params.normals = held.normals_source
        if held.depth is not None:
            job["rgb"] = fg[..., :3]
    return job


def prepare(chunk: Chunk[Degrade]) -> list[Any]:
    """The depth model over the chunk's foregrounds that need normals from it."""
    batch = [job for job in chunk.ready if "rgb" in job]
    if batch:
        for job, disparity in zip(batch, chunk.held.depth.disparity([j.pop("rgb") for j in batch]), strict=True):
            job["disparity"] = disparity
    return chunk.jobs


def made_by(params: dict[str, Any]) -> str:
    drawn = LightingParams.model_validate(params)
    return f"{drawn.method} ({drawn.normals} normals)" if drawn.normals else drawn.method


DEGRADE = PooledStage("degrade", load, read, compute_degraded, prepare=prepare,
                      device=lambda held: held.models.placement.thread_stream(), made_by=made_by)
