"""Stage 3 `degrade`: new illumination on the albedo -> data/stage_3/{id}_degraded.png and
{id}_params.json (every drawn parameter; `degradation.render` reproduces the image from it).
Normals come from a depth model on the GPU (batched, `softShading.normals`) or, classically, from
the mask's geometry on the CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np

from genfab.api.pipelines.relighting import DegradeSettings
from genfab.api.relighting_params import LightingParams
from genfab.stages.common.imaging import to_float, to_uint8
from genfab.stages.models.base import ModelStage
from genfab.stages.models.location import ModelUnavailable
from genfab.stages.models.placement import Placement
from genfab.stages.relighting import degradation, shading
from genfab.stages.relighting.images import decode, encode
from genfab.stages.relighting.matte import person_region
from genfab.stages.runtime import BadInput, Sample, SampleError, StageContext
from genfab.stages.runtime.cpu_stage import Computed, CpuSampleStage


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


class DegradeStage(ModelStage[DegradeSettings], CpuSampleStage[DegradeSettings]):
    name = "degrade"
    compute = staticmethod(compute_degraded)
    prepares_ahead = True

    def produced_by(self, params: dict[str, Any]) -> str | None:
        drawn = LightingParams.model_validate(params)
        return f"{drawn.method} ({drawn.normals} normals)" if drawn.normals else drawn.method

    def load_models(self, ctx: StageContext) -> None:
        self.cfg = self.settings.degradation
        self.segment = ctx.stage_output("segment")
        self.albedo = ctx.stage_output("albedo")
        soft = self.cfg.soft_shading
        choice, model = soft.normals, soft.normals_model()
        self.depth: Any = None
        self.normals_source = "classical"
        if choice == "auto" and model is not None:  # MiDaS when its weights are there, else classical (said)
            self.depth = self.models.load_optional("normals", model, load_depth)
            if self.depth is None:
                self.normals_source = f"classical (auto: no {model} in the model location)"
        elif model is not None:
            try:
                self.depth = self.models.load("normals", model, load_depth)
            except (ImportError, ModelUnavailable) as exc:
                raise BadInput(f"degradation.softShading.normals={choice!r} cannot run: {exc} "
                               "(put the weights in the model location, or set normals: classical)") from None
        if self.depth is not None:
            self.normals_source = f"{choice}:{model}"

    def gather(self, sample: Sample) -> DegradeJob:
        fg = decode(self.segment.read_bytes(f"{sample.id}_foreground.png"))
        albedo = decode(self.albedo.read_bytes(f"{sample.id}_albedo.png"))
        params = degradation.draw_params(self.cfg, self.stage_seed(sample, self.settings.seed))
        mask = person_region(decode(self.segment.read_bytes(f"{sample.id}_mask.png")))
        job = DegradeJob(id=sample.id, albedo=albedo[..., :3], mask=mask, params=params)
        if degradation.needs_normals(params):
            params.normals = self.normals_source
            if self.depth is not None:
                job["rgb"] = fg[..., :3]
        return job

    def prepare(self, jobs: list[DegradeJob]) -> None:
        batch = [job for job in jobs if "rgb" in job]
        if batch:
            for job, disparity in zip(batch, self.depth.disparity([j.pop("rgb") for j in batch]), strict=True):
                job["disparity"] = disparity
