"""Step 7 `cv-augmentation`: `count` classical augmentations of every annotated image (the lab's reference-object
cascade, `augment.py`), labels copied byte for byte, into two complete YOLO datasets:
`07_cv_augmented_dataset/` (the augmented images only) and `07_cv_combined_dataset/` (originals and
augmented: the final dataset). Each has its `dataset.yaml` and `classes.txt`, in the same split as
its original, and `augmentation_summary.json` says how often each augmentation fired."""

from __future__ import annotations

import json
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
from genfab.stages.reference_object.state import WritesPipelineState
from genfab.stages.reference_object.summary import ShardParts
from genfab.stages.runtime import Sample, SampleError, StageContext
from genfab.stages.runtime.cpu_stage import Computed, CpuSampleStage


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


class CvAugmentationStage(WritesPipelineState, CpuSampleStage[CvAugmentationSettings]):
    name = "cv-augmentation"
    marker_dir = "_genfab/markers/cv-augmentation"
    compute = staticmethod(compute_cv)

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self.cfg_json = self.settings.cv_augmentation.model_dump_json()
        self.originals: dict[str, dict[str, bytes]] = {}
        self._sources(ctx)

    def _sources(self, ctx: StageContext) -> None:
        """What `finish` needs too: it runs when every sample was reused and `setup` never ran."""
        if not hasattr(self, "parts"):
            self.annotated = ctx.stage_output("annotation")
            self.parts = ShardParts(ctx)

    def gather(self, sample: Sample) -> AugmentJob:
        try:
            split, key = find_image(self.annotated, "", sample.id)
        except LookupError as exc:
            raise SampleError("MissingAnnotation", str(exc)) from None
        label = label_key("", split, sample.id)
        count = self.settings.cv_augmentation.count
        seeds = [self.stage_seed(sample, self.settings.seed) + k for k in range(count)]
        return AugmentJob(id=sample.id, split=split, suffix=PurePosixPath(key).suffix.lower(),
                          image=self.annotated.read_bytes(key), label=self.annotated.read_bytes(label),
                          cfg=self.cfg_json, seeds=seeds)

    def read_input(self, sample: Sample) -> Any:
        job = self.gather(sample)
        # The original joins the combined dataset as it is, from here once its copies are made: its
        # bytes are not sent to a worker and back.
        self.originals[sample.id] = {image_key(CV_COMBINED, job["split"], sample.id, job["suffix"]): job["image"],
                                     label_key(CV_COMBINED, job["split"], sample.id): job["label"]}
        return job

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        errors = super().process_batch(samples)
        for sample in samples:  # a failed sample's original is not kept around
            self.originals.pop(sample.id, None)
        return errors

    def deliver(self, sample: Sample, result: Computed) -> None:
        for key, data in self.originals.pop(sample.id, {}).items():
            sample.write(key, data)
        super().deliver(sample, result)
        self.parts.add(sample.id, result["params"]["applied"])

    def finish(self, ctx: StageContext) -> None:
        super().finish(ctx)
        self._sources(ctx)
        if not self.annotated.exists("classes.txt"):
            return  # nothing was annotated: no dataset to describe
        names = [n for n in self.annotated.read_bytes("classes.txt").decode().splitlines() if n.strip()]
        for root in (CV_AUGMENTED, CV_COMBINED):
            write_dataset_files(ctx.output, root, names)
        self.parts.publish(lambda merged: self._write_summaries(ctx, merged))

    def _write_summaries(self, ctx: StageContext, merged: dict[str, Any]) -> None:
        doc = augmentation_summary(merged, self.settings.cv_augmentation)
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
