"""Step 7 `cv-augmentation`: `count` classical augmentations of every annotated image (the lab's reference-object
cascade, `augment.py`), labels copied byte for byte, into two complete YOLO datasets:
`07_cv_augmented_dataset/` (the augmented images only) and `07_cv_combined_dataset/` (originals and
augmented: the final dataset). Each has its `dataset.yaml` and `classes.txt`, in the same split as
its original, and `augmentation_summary.json` says how often each augmentation fired."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, TypedDict

import cv2
import numpy as np

from genfab.api.pipelines.reference_object import CvAugmentationSettings
from genfab.api.reference_object import CvAugmentationParameters
from genfab.stages.common.imaging import decode_rgb
from genfab.stages.reference_object.augment import NAMES, augment, build_transform
from genfab.stages.reference_object.dataset import (
    CV_AUGMENTED,
    CV_COMBINED,
    find_image,
    image_key,
    label_key,
    write_dataset_files,
)
from genfab.stages.reference_object.state import state_after_shard
from genfab.stages.reference_object.summary import ShardParts
from genfab.stages.runtime import Sample, SampleError, StageContext
from genfab.stages.runtime.pooled import Computed, PooledStage, stage_seed
from genfab.storage import Storage


@lru_cache(maxsize=4)
def _transform(cfg_json: str) -> Any:
    return build_transform(CvAugmentationParameters.model_validate_json(cfg_json))


def cv_variant(unit_id: str, k: int) -> str:
    return f"{unit_id}_cv_{k}"


class AugmentJob(TypedDict):
    id: str
    split: str
    suffix: str
    image: bytes
    label: bytes
    cfg: str
    """The augmentation settings as JSON (rebuilt into a transform in the worker)."""
    seeds: list[int]
    """One seed per augmented copy."""


def compute_cv(job: AugmentJob) -> Computed:
    """One annotated image in, its `count` augmented copies and their labels out."""
    suffix, split, unit = job["suffix"], job["split"], job["id"]
    bgr = np.ascontiguousarray(decode_rgb(job["image"], f"{unit}{suffix}")[..., ::-1])  # upright, as annotated
    transform = _transform(job["cfg"])
    files = {}  # the original's copy into the combined dataset is written by the shard process (no round trip)
    applied: dict[str, list[str]] = {}
    for k, seed in enumerate(job["seeds"]):
        out, names = augment(transform, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), seed)
        ok, buf = cv2.imencode(suffix, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SampleError("EncodeFailed", f"OpenCV could not encode {unit} as {suffix}")
        name = cv_variant(unit, k)
        for root in (CV_AUGMENTED, CV_COMBINED):
            files[image_key(root, split, name, suffix)] = buf.tobytes()
            files[label_key(root, split, name)] = job["label"]  # geometry is unchanged: the label as is
        applied[name] = names
    return {"files": files, "params": {"split": split, "applied": applied}}


@dataclass(frozen=True)
class CvAugment:
    """What a worker holds: the settings (and as JSON, what its pool's workers rebuild the transform
    from), the annotated dataset, this shard's summary part, and the originals read until their copies
    are made."""

    settings: CvAugmentationSettings
    cfg_json: str
    annotated: Storage
    parts: ShardParts
    originals: dict[str, dict[str, bytes]] = field(default_factory=dict)


def load(settings: CvAugmentationSettings, ctx: StageContext) -> CvAugment:
    return CvAugment(settings, settings.cv_augmentation.model_dump_json(), ctx.stage_output("annotation"),
                     ShardParts(ctx))


def read(held: CvAugment, sample: Sample) -> AugmentJob:
    try:
        split, key = find_image(held.annotated, "", sample.id)
    except LookupError as exc:
        raise SampleError("MissingAnnotation", str(exc)) from None
    label = label_key("", split, sample.id)
    base = stage_seed(sample, held.settings.seed, "cv-augmentation")
    job = AugmentJob(id=sample.id, split=split, suffix=PurePosixPath(key).suffix.lower(),
                     image=held.annotated.read_bytes(key), label=held.annotated.read_bytes(label),
                     cfg=held.cfg_json, seeds=[base + k for k in range(held.settings.cv_augmentation.count)])
    # The original joins the combined dataset as it is, from here once its copies are made: its bytes
    # are not sent to a worker and back.
    held.originals[sample.id] = {image_key(CV_COMBINED, split, sample.id, job["suffix"]): job["image"],
                                 label_key(CV_COMBINED, split, sample.id): job["label"]}
    return job


def delivered(held: CvAugment, sample: Sample, result: Computed | None) -> None:
    """A made sample's original joins the combined dataset and its variants the summary; a failed
    sample's original is not kept around."""
    originals = held.originals.pop(sample.id, {})
    if result is None:
        return
    for key, data in originals.items():
        sample.write(key, data)
    held.parts.add(sample.id, result["params"]["applied"])


def finish(held: CvAugment | None, ctx: StageContext) -> None:
    """Both datasets' `dataset.yaml` and `classes.txt`, and the summary merged from every shard's part
    (also after a shard whose samples were all reused: nothing was loaded then)."""
    annotated = held.annotated if held is not None else ctx.stage_output("annotation")
    if not annotated.exists("classes.txt"):
        return  # nothing was annotated: no dataset to describe
    names = [n for n in annotated.read_bytes("classes.txt").decode().splitlines() if n.strip()]
    for root in (CV_AUGMENTED, CV_COMBINED):
        write_dataset_files(ctx.output, root, names)
    parts = held.parts if held is not None else ShardParts(ctx)
    cfg = CvAugmentationSettings.model_validate(ctx.config).cv_augmentation if held is None else \
        held.settings.cv_augmentation
    parts.publish(lambda merged: _write_summaries(ctx, augmentation_summary(merged, cfg)))


def _write_summaries(ctx: StageContext, doc: dict[str, Any]) -> None:
    for root in (CV_AUGMENTED, CV_COMBINED):
        ctx.output.write_bytes(f"{root}/augmentation_summary.json", json.dumps(doc, indent=2).encode())


def augmentation_summary(per_source: dict[str, dict[str, list[str]]], cfg: CvAugmentationParameters) -> dict[str, Any]:
    """How often each augmentation fired over the stage's images, next to what was asked."""
    variants = {name: applied for per in per_source.values() for name, applied in per.items()}
    counts = {n: sum(n in applied for applied in variants.values()) for n in NAMES}
    total = len(variants)
    fraction = {n: round(c / total, 4) if total else 0.0 for n, c in counts.items()}
    return {"source_images": len(per_source), "augmented_images": total, "applied": counts,
            "applied_fraction": fraction,
            "probabilities": cfg.probabilities.model_dump(), "ranges": cfg.ranges.model_dump(),
            "images": dict(sorted(variants.items()))}


CV_AUGMENTATION = PooledStage("cv-augmentation", load, read, compute_cv, delivered=delivered, finish=finish,
                              after_shard=state_after_shard, marker_dir="_genfab/markers/cv-augmentation",
                              prunes_outputs=True)
