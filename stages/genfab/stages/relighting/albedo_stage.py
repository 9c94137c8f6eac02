"""Stage 2 `albedo`: the foreground's intrinsic albedo -> data/stage_2/{id}_albedo.png (original size,
black outside the person; every pixel of stage 1's binary mask is the person's). Methods in the
configured fallback order with their probabilities:
IntrinsicAnything (a plug-in backend), Multi-Scale Retinex, LAB; then 15-25% of the original."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import numpy as np

from genfab.api.pipelines.relighting import AlbedoSettings
from genfab.api.relighting import AlbedoConfig
from genfab.api.relighting_params import AlbedoParams
from genfab.stages.common.imaging import to_float, to_uint8
from genfab.stages.models.plugins import load_plugin
from genfab.stages.relighting import albedo as ops
from genfab.stages.relighting.images import decode, encode
from genfab.stages.relighting.matte import person_region
from genfab.stages.runtime import BadInput, Sample, SampleError, StageContext
from genfab.stages.runtime.pooled import Computed, PooledStage, stage_seed
from genfab.storage import Storage

PLUGIN_GROUP = "genfab.albedo_backends"


def choose(cfg: AlbedoConfig, seed: int) -> AlbedoParams:
    """The sample's method and blend fraction (drawn in a fixed order from the sample seed)."""
    rng = np.random.default_rng(seed)
    method = ops.choose_method([m.name for m in cfg.methods], [m.probability for m in cfg.methods], rng)
    return AlbedoParams(method=method, variant=ops.RETINEX_VARIANT if method == "retinex" else None,
                        blend=float(rng.uniform(cfg.blend.min, cfg.blend.max)), seed=seed)


class AlbedoJob(TypedDict):
    id: str
    foreground: np.ndarray
    mask: np.ndarray
    params: AlbedoParams
    """The drawn method, its variant and blend (`choose`): the sample's albedo params."""
    scales: list[float]
    """Multi-Scale Retinex's scales (`albedo.retinexScales`)."""
    plugin: NotRequired[np.ndarray]
    """A plug-in backend's albedo, made in the shard process."""


def compute_albedo(job: AlbedoJob) -> Computed:
    fg, mask = job["foreground"], job["mask"]
    if not mask.any():
        raise SampleError("EmptyMask", "the stage-1 foreground has no person pixels")
    image = to_float(fg[..., :3])
    params = job["params"]
    if params.method == "retinex":
        base = ops.multiscale_retinex(image, mask, job["scales"])
    elif params.method == "lab":
        base = ops.lab_albedo(image, mask)
    else:  # a plug-in's output, computed in the shard process (it may hold a GPU model)
        base = job["plugin"]
    out = ops.blend_original(base, image, mask, params.blend or 0.0)
    return {"files": {f"{job['id']}_albedo.png": encode(to_uint8(out))}, "params": params.document()}


@dataclass(frozen=True)
class Albedo:
    """What an albedo worker holds: the settings, segment's outputs and the plug-in backends it loaded."""

    settings: AlbedoSettings
    segment: Storage
    plugins: dict[str, Any]


def load(settings: AlbedoSettings, ctx: StageContext) -> Albedo:
    cfg = settings.albedo
    plugins: dict[str, Any] = {}
    for m in cfg.methods:
        if m.name not in ("retinex", "lab"):
            checkpoint = cfg.intrinsic_anything_checkpoint
            local = None
            if checkpoint:
                local = ctx.workdir / "checkpoint"
                if not ctx.open(checkpoint).download_prefix("", local):
                    raise BadInput(f"albedo.intrinsicAnythingCheckpoint {checkpoint} is empty")
            plugins[m.name] = load_plugin(PLUGIN_GROUP, m.name)(local)
    return Albedo(settings, ctx.stage_output("segment"), plugins)


def read(held: Albedo, sample: Sample) -> AlbedoJob:
    cfg = held.settings.albedo
    fg = decode(held.segment.read_bytes(f"{sample.id}_foreground.png"))
    mask = person_region(decode(held.segment.read_bytes(f"{sample.id}_mask.png")))
    params = choose(cfg, stage_seed(sample, held.settings.seed, "albedo"))
    job = AlbedoJob(id=sample.id, foreground=fg, mask=mask, params=params, scales=list(cfg.retinex_scales))
    plugin = held.plugins.get(params.method)
    if plugin is not None:
        job["plugin"] = np.clip(plugin(to_float(fg[..., :3]), mask), 0.0, 1.0) * mask[..., None]
    return job


def made_by(params: dict[str, Any]) -> str:
    drawn = AlbedoParams.model_validate(params)
    return f"{drawn.method} ({drawn.variant})" if drawn.variant else drawn.method


ALBEDO = PooledStage("albedo", load, read, compute_albedo, made_by=made_by)
