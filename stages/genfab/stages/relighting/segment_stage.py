"""Stage 1 `segment`: each input -> `{id}_foreground.png`, `{id}_background.png`, `{id}_mask.png`
(data/stage_1/). Backends in the configured fallback order: SAM3 with a text prompt, SAM2 prompted
by a detector box, on the CPU the learned `selfie` person model (weights shipped) or the classical
path. A backend that cannot load (no weights, no torch) is skipped for the shard; a backend that finds
nobody in an image drops it (`EmptyMask`), or hands it to the next one when
`segmentation.fallbackOnEmpty` says so."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from genfab.api.pipelines.relighting import SegmentSettings
from genfab.api.relighting import SegmentationConfig
from genfab.stages.models.base import ModelSet, open_models, required_models
from genfab.stages.models.location import ModelUnavailable
from genfab.stages.models.placement import Placement
from genfab.stages.relighting.classical import segment_classical
from genfab.stages.relighting.images import decode_color, encode, image_size, orientation
from genfab.stages.relighting.mask_figures import mask_figures
from genfab.stages.relighting.matte import clean_mask, split
from genfab.stages.relighting.person_model import ModelFileChanged, SelfieBackend, refine
from genfab.stages.runtime import BadInput, Sample, SampleError, StageContext
from genfab.stages.runtime.pooled import Chunk, Computed, PooledStage

log = logging.getLogger("genfab.stages")
MIN_AREA = 0.005
"""A mask covering less of the image than this means "nobody found"."""


def fallback_note(unavailable: dict[str, str], running: list[str]) -> str:
    """One line for backends that cannot run in this shard, those with the same cause named together:
    `sam3, sam2 could not run (no model location is configured: ...); segmenting with classical`."""
    causes: dict[str, list[str]] = {}
    for name, why in unavailable.items():
        cause = why.removeprefix("ModelUnavailable: ")
        cause = cause.split("': ", 1)[1] if cause.startswith("model '") and "': " in cause else cause
        causes.setdefault(cause, []).append(name)
    said = "; ".join(f"{', '.join(names)} could not run ({cause})" for cause, names in causes.items())
    return f"{said}; segmenting with {', '.join(running)}"


def found(mask: np.ndarray | None) -> bool:
    return mask is not None and float(mask.mean()) >= MIN_AREA


def classical_mask(job: dict[str, Any]) -> dict[str, Any]:
    mask, info = segment_classical(job["image"], job["seed"])
    return {"mask": mask, "info": info}


class SplitJob(TypedDict):
    id: str
    image: np.ndarray
    mask: np.ndarray
    backend: str
    """The segmentation backend that found the mask."""
    info: dict[str, Any]
    """What the backend says of it (its model, faces found): the sample's params."""
    cleanup: tuple[bool, float]
    """`segmentation.cleanup`: fill enclosed holes, smallest component kept (share of the largest)."""
    refine: bool
    """`mask` is the `selfie` network's person probability at its own size: refined to the picture here
    (`person_model.refine`), in the pool, not on the device thread."""


def split_and_encode(job: SplitJob) -> Computed:
    """A found mask (refined to the picture where it is a probability), cleaned (`segmentation.cleanup`),
    to the three PNGs and its quality figures, in a worker."""
    fill_enclosed, min_share = job["cleanup"]
    found_mask = refine(job["image"], job["mask"]) if job["refine"] else job["mask"]
    cleaned = clean_mask(found_mask, fill_enclosed, min_share)
    parts = split(job["image"], cleaned.mask)
    sid = job["id"]
    return {"files": {f"{sid}_{name}.png": encode(pixels) for name, pixels in parts.items()},
            "params": {"backend": job["backend"], **job["info"],
                       "maskFraction": round(float(cleaned.mask.mean()), 5),
                       "height": int(job["image"].shape[0]), "width": int(job["image"].shape[1]),
                       "quality": mask_figures(job["image"], cleaned, job["info"].get("faces"))}}


@dataclass(frozen=True)
class Segmenter:
    """What a segment worker holds: the settings, the backends that could load (in their fallback order:
    a model backend, or "classical") and the models of those that could not."""

    settings: SegmentSettings
    models: ModelSet
    backends: list[Any]

    @property
    def cfg(self) -> SegmentationConfig:
        return self.settings.segmentation


def load(settings: SegmentSettings, ctx: StageContext) -> Segmenter:
    cfg = settings.segmentation
    models = open_models(ctx)
    backends: list[Any] = []
    with required_models():
        for name in cfg.backends:
            if name == "classical":
                backends.append("classical")
                continue
            if name == "selfie":
                try:
                    backends.append(SelfieBackend())
                except ModelFileChanged as exc:
                    raise BadInput(str(exc)) from None
                continue
            backend = models.load_optional(name, cfg.sam3_model if name == "sam3" else cfg.sam2_model,
                                           _loader(name, cfg, models, max(1, ctx.cfg.batch_size or BATCH)))
            if backend is not None:
                backends.append(backend)
    unavailable = models.unavailable
    if not backends:
        raise BadInput("no segmentation backend can run here: " +
                       "; ".join(f"{k}: {v}" for k, v in unavailable.items()) +
                       " (add `classical` to segmentation.backends for a CPU fallback)")
    if unavailable:  # once a shard, about the shard: the stage's status shows it
        ctx.note(fallback_note(unavailable, [b if isinstance(b, str) else b.name for b in backends]))
    return Segmenter(settings, models, backends)


def _loader(name: str, cfg: SegmentationConfig, models: ModelSet, chunk: int) -> Callable[[Path, Placement], Any]:
    """A backend's loader. torch and transformers are imported when it runs, so an image without them
    falls back like a missing model (ImportError); so does SAM2 without its box detector."""

    def load(path: Path, placement: Placement) -> Any:
        from genfab.stages.relighting.segment_models import Sam2Backend, Sam3Backend

        if name == "sam3":
            return Sam3Backend(path, cfg, placement, chunk)
        try:
            detector = models.path(cfg.detector_model)
        except ModelUnavailable as exc:
            raise ModelUnavailable(f"SAM2's box detector: {exc}") from None
        return Sam2Backend(path, detector, cfg, placement)

    return load


def read(held: Segmenter, sample: Sample) -> np.ndarray:
    max_side = held.settings.max_side
    raw = sample.read_source()
    image = decode_color(raw, max_side)
    width, height = image_size(raw)
    if image.shape[1::-1] != (width, height):  # kept in the marker and the sample's metadata
        sample.params["inputSize"], sample.params["workingSize"] = [width, height], list(image.shape[1::-1])
        # said on the console and in the status too: the outputs are smaller than the input
        sample.notes.append(f"{sample.id}: a {width}x{height} input, worked at {image.shape[1]}x{image.shape[0]} "
                            f"(relighting.input.maxSide {max_side}; {{id}}_input.png keeps the original)")
    turned = orientation(raw)
    if turned != 1:  # the camera's EXIF orientation, applied as every genfab decoder applies it
        sample.params["exifOrientation"] = turned
    return image


def prepare(chunk: Chunk[Segmenter]) -> list[Any]:
    """One chunk's masks (on a device thread): per sample the pool's job (cleaning, splitting and PNG
    encoding), or what failed it (`EmptyMask` where every backend tried found nobody)."""
    held, samples, outcomes = chunk.held, chunk.samples, list(chunk.jobs)
    images = {i: image for i, image in enumerate(outcomes) if not isinstance(image, Exception)}
    errors: list[Exception | None] = [o if isinstance(o, Exception) else None for o in outcomes]
    masks, tried = _masks(chunk, images, errors)
    unavailable = {"unavailableBackends": sorted(held.models.unavailable)} if held.models.unavailable else {}
    for i, image in images.items():
        if i in masks:
            mask, name, info = masks[i]
            outcomes[i] = SplitJob(id=samples[i].id, image=image, mask=mask, backend=name,
                                   info={**info, **unavailable}, cleanup=held.cfg.cleanup.pair(),
                                   refine=name == "selfie")
        else:
            outcomes[i] = errors[i] or SampleError(
                "EmptyMask", f"no {held.cfg.text_prompt!r} found by {', '.join(tried[i])}")
    return outcomes


def _masks(chunk: Chunk[Segmenter], images: dict[int, np.ndarray], errors: list[Exception | None]
           ) -> tuple[dict[int, tuple[np.ndarray, str, dict[str, Any]]], dict[int, list[str]]]:
    """The backends in their fallback order over one chunk: per image its mask (as found: a model's is
    cleaned in the worker), the backend and what it records; and which backends tried."""
    held, samples = chunk.held, chunk.samples
    masks: dict[int, tuple[np.ndarray, str, dict[str, Any]]] = {}
    tried: dict[int, list[str]] = {i: [] for i in images}
    for n, backend in enumerate(held.backends):
        todo = [i for i in images if i not in masks and errors[i] is None]
        if not todo or (n > 0 and not held.cfg.fallback_on_empty):
            break
        if backend == "classical":
            results = chunk.pool.map(classical_mask, [{"image": images[i], "seed": samples[i].seed(held.settings.seed)}
                                                      for i in todo])
            for i, r in zip(todo, results, strict=True):
                if isinstance(r, Exception):
                    errors[i] = r
                elif found(r["mask"]):
                    masks[i] = (r["mask"], "classical", r["info"])
                tried[i].append("classical")
            continue
        for i, mask in zip(todo, backend.masks([images[i] for i in todo]), strict=True):
            tried[i].append(backend.name)
            if found(mask):
                compiled = {"compiled": True} if backend.compiled else {}
                masks[i] = (mask, backend.name, {"model": backend.model_id, **compiled})
    return masks, tried


def made_by(params: dict[str, Any]) -> str:
    return f"{params['backend']}:{params['model']}" if params.get("model") else str(params["backend"])


BATCH = 8
"""Images per model call (`spec.stages.segment.batchSize` overrides it)."""
SEGMENT = PooledStage("segment", load, read, split_and_encode, prepare=prepare,
                      device=lambda held: held.models.placement.thread_stream(), made_by=made_by, batch_size=BATCH)
