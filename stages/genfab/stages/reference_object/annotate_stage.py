"""Step 6 `annotation`: PerSAM + SAM2 masks of the object in every generated image, as a YOLO
segmentation dataset in `06_yolo_dataset/` (`train|val/images`, `train|val/labels`, `dataset.yaml`,
`classes.txt`).

Once per shard: SAM (`samType`) encodes the reference image (step 1's input) and PerSAM takes the
object's target from its features under the reference mask (`persam.py`); with `persamTraining`,
PerSAM-F fits the mix of SAM's three masks to the reference mask. Per image, as PerSAM's own scripts:
1. SAM's features give the location prior: a positive point (and, training-free, a negative one);
2. SAM's decoder, prompted by them (training-free: with target-guided attention and target-semantic
   prompting; PerSAM-F: its learnt mix of the three masks), then twice more by the mask's logits and
   box (PerSAM's cascaded post-refinement);
3. SAM2 refines the mask from the same points and the box;
4. the mask becomes one polygon (`yolo.py`), the image and its label go to the split
   `split_assignment` gives it (seeded by the job's seed, the same in every shard).
Steps 1-3 (the GPU) run in two model threads, each on its own CUDA stream with its own SAM and SAM2
predictors over the shared weights (one image's host work between GPU calls overlaps the other's GPU
work), and go on into the next batch while this one's last masks become files; reader threads decode
the next images and finishing threads trace each mask's polygon and write its files meanwhile
(benchmarks/results/reference_object.md).
Each sample's marker names the method and the models (`producedBy`). An image where no mask is found
is dropped with reason `NoMask` (the shard report and `pipeline_state.json` list it). Images come
from step 4, and from step 5 when it ran (its combined folder, as the seed says)."""

from __future__ import annotations

import queue
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genfab.api.pipelines.reference_object import AnnotationSettings
from genfab.api.reasons import QUALITY_OUT_OF_RANGE
from genfab.stages.common.imaging import decode_rgb
from genfab.stages.models.base import ModelSet, model_params, open_models, required_models
from genfab.stages.models.placement import Placement
from genfab.stages.reference_object import persam
from genfab.stages.reference_object.dataset import image_key, label_key, read_uri, write_dataset_files
from genfab.stages.reference_object.duplicates import scene_duplicate_distances
from genfab.stages.reference_object.image_figures import image_figures
from genfab.stages.reference_object.sam_models import (
    SAM2_CONFIG,
    UnsafeConfig,
    load_sam,
    load_sam2,
    sam_markers,
)
from genfab.stages.reference_object.state import state_after_shard
from genfab.stages.reference_object.units import is_augmented
from genfab.stages.reference_object.yolo import iou, label_line, mask_to_polygon, split_assignment
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.stages.runtime.pictures import open_image
from genfab.stages.runtime.stage import SHARD_ERRORS

MIN_MASK_FRACTION = 0.0005
"""A mask smaller than this part of the image is no detection."""
BATCH = 8
"""Images per `process_batch`: only a batch's last polygon and files are not overlapped with the next
image's models."""
READERS, MODEL_THREADS, FINISHERS = 2, 2, 4
"""Threads decoding the next images, running the models (on the GPU; one off it, where torch's own
threads already take the cores), and tracing polygons and writing files (OpenCV, the storage and
torch's kernels release the GIL)."""


@dataclass(frozen=True)
class Predictors:
    """One model thread's SAM and SAM2 predictors. A predictor holds the image last set in it (its
    features, its sizes), so each thread has its own; the models' weights are shared."""

    sam: Any
    sam2: Any


class Annotator:
    """What an annotation worker holds from shard to shard: SAM and SAM2 (one pair of predictors per model
    thread, over the same weights), PerSAM's target from the reference, the split, and the reader, model
    and finishing threads (see the module's docs)."""

    def __init__(self, settings: AnnotationSettings, ctx: StageContext, models: ModelSet) -> None:
        import torch

        self.settings, self.models, self.placement = settings, models, models.placement
        cfg = settings.annotation
        if len(ctx.input_uris) < 2:
            raise BadInput("annotation needs inputImage and inputMask (referenceObject.inputMask)")
        device = self.placement.device

        def sam_loader(path: Path, placement: Placement) -> Any:
            return load_sam(path, cfg.sam_type, cfg.sam_checkpoint, device)

        def sam2_loader(path: Path, placement: Placement) -> Any:
            try:
                return load_sam2(path, cfg.sam2_config, cfg.sam2_checkpoint, device)
            except UnsafeConfig as exc:  # not retried: the same file is refused again
                raise BadInput(f"referenceObject.annotation.sam2Config: {exc}") from None

        self.sam: Any = self.models.load("sam", cfg.sam_model, sam_loader,
                                         sam_markers(cfg.sam_type, cfg.sam_checkpoint))
        self.sam2: Any = self.models.load("sam2", cfg.sam2_model, sam2_loader, (cfg.sam2_config or SAM2_CONFIG,))
        reference = decode_rgb(read_uri(ctx, ctx.input_uris[0], "inputImage"), "inputImage")
        try:  # upright, as the reference is: one orientation rule for both
            mask_img = np.asarray(open_image(read_uri(ctx, ctx.input_uris[1], "inputMask"), "inputMask", mode="L"))
        except SampleError as exc:
            raise BadInput(f"inputMask {ctx.input_uris[1]}: {exc.message}") from None
        if mask_img.shape != reference.shape[:2]:
            mask_img = cv2.resize(mask_img, reference.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        ref_mask = mask_img > 127
        if ref_mask.sum() == 0:
            raise BadInput(f"inputMask {ctx.input_uris[1]} is empty (no pixel above 127)")
        self.method = "PerSAM-F" if cfg.persam_training else "PerSAM"
        with torch.inference_mode():
            self.sam.set_image(reference)
            feat = self.sam.features[0].float()
            grid = torch.from_numpy(self._feature_grid_mask(ref_mask, feat.shape[1:]))
            try:
                self.target = persam.target_embedding(feat, grid, "max-mean" if cfg.persam_training else "mean")
                self.semantic = persam.semantic_prompt(self.sam.features[0], grid)
            except ValueError as exc:
                raise BadInput(f"inputMask {ctx.input_uris[1]}: {exc}") from None
        self.weights: np.ndarray | None = None
        self.fit_losses: list[tuple[int, float]] = []
        if cfg.persam_training:  # PerSAM-F on the reference itself
            points, labels, _ = self._prior()
            logits, _, _ = self.sam.predict(point_coords=points, point_labels=labels, multimask_output=True,
                                            return_logits=True)
            fitted = persam.fit_mask_weights(torch.from_numpy(np.asarray(logits)), torch.from_numpy(ref_mask),
                                             cfg.persam_lr, cfg.persam_epochs, cfg.persam_log_epoch)
            self.weights, self.fit_losses = fitted.weights, fitted.losses
        ids = [ref.id for ref in ctx.all_samples]
        self.split = split_assignment(ids, cfg.split_ratio, self.settings.seed)
        self.scenes = ctx.stage_output("scenes")
        self.duplicate_distance = scene_duplicate_distances(self.scenes)
        self.augmented = ctx.stage_output("qwen-augmentation") if ctx.runs_after("qwen-augmentation") else None
        self.readers = ThreadPoolExecutor(READERS, thread_name_prefix="genfab-read")
        threads = self.model_threads(device)
        self.predictors: queue.SimpleQueue[Predictors] = queue.SimpleQueue()
        self.predictors.put(Predictors(self.sam, self.sam2))
        for _ in range(threads - 1):  # the predictors' classes, over the same models
            self.predictors.put(Predictors(type(self.sam)(self.sam.model), type(self.sam2)(self.sam2.model)))
        if device.type == "cuda":  # the reference's target, made on the default stream, before the threads' own
            torch.cuda.synchronize(device)
        self.modelling = ThreadPoolExecutor(threads, thread_name_prefix="genfab-model")
        self.finishers = ThreadPoolExecutor(FINISHERS, thread_name_prefix="genfab-finish")
        self.ahead: dict[str, Future[tuple[bytes, str, np.ndarray]]] = {}
        self.segmenting: dict[str, Future[tuple[np.ndarray, dict[str, object]]]] = {}
        self.model_next: list[str] = []

    def model_threads(self, device: Any) -> int:
        """How many images run through the models at once: `MODEL_THREADS` on a GPU, one on the CPU."""
        return MODEL_THREADS if device.type == "cuda" else 1

    def _feature_grid_mask(self, mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """The reference mask on SAM's feature grid as PerSAM takes it: resized as the image was
        (longest side to the encoder's input), padded to its square, resized bilinearly to the grid;
        a cell is inside where the result is above 0."""
        import torch
        import torch.nn.functional as F

        h, w = self.sam.input_size
        side = self.sam.model.image_encoder.img_size
        resized = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        padded = np.zeros((side, side), np.float32)
        padded[:h, :w] = resized
        small = F.interpolate(torch.from_numpy(padded)[None, None], size=grid, mode="bilinear", align_corners=False)
        return small[0, 0].numpy() > 0

    def _prior(self, sam: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
        """Location prior of the image set in `sam` (a SAM predictor; the first thread's by
        default): the point prompts (training-free: positive and negative; PerSAM-F: positive only)
        and the similarity map at the image's size."""
        import torch

        sam = sam or self.sam
        with torch.inference_mode():
            sim = persam.similarity(self.target, sam.features[0].float())
            full = sam.model.postprocess_masks(sim[None, None], sam.input_size, sam.original_size)
        full = full[0, 0].float()
        points, labels = persam.select_points(full.cpu())
        if self.method == "PerSAM-F":
            return points[:1], labels[:1], full
        return points, labels, full

    def segment(self, image: np.ndarray, predictors: Predictors | None = None) -> tuple[np.ndarray, dict[str, object]]:
        """The object's mask in one RGB image, and how it was found, with `predictors` (a model
        thread's; the first one's by default)."""
        sam, sam2 = (predictors.sam, predictors.sam2) if predictors else (self.sam, self.sam2)
        sam.set_image(image)
        points, labels, sim = self._prior(sam)
        if self.weights is not None:  # PerSAM-F: the learnt mix of the three masks, then box + logits twice
            logits_high, _, low = sam.predict(point_coords=points, point_labels=labels, multimask_output=True,
                                                   return_logits=True)
            w = self.weights[:, None, None]
            mask = (np.asarray(logits_high) * w).sum(0) > 0
            low_res = (np.asarray(low) * w).sum(0)
            refinements = (True, True)
        else:  # PerSAM: the decoder with target guidance and the target as a prompt, then logits, box + logits
            grid = tuple(sam.features.shape[-2:])
            with persam.personalised(sam.model.mask_decoder, persam.attention_guidance(sim, grid),
                                     self.semantic):
                masks, _, low = sam.predict(point_coords=points, point_labels=labels, multimask_output=False)
            mask, low_res = np.asarray(masks[0]), np.asarray(low[0])
            refinements = (False, True)
        for with_box in refinements:  # PerSAM's cascaded post-refinement
            box = persam.box_of(mask)
            if box is None:
                break
            masks, scores, low = sam.predict(point_coords=points, point_labels=labels,
                                                  box=box[None] if with_box else None, mask_input=low_res[None],
                                                  multimask_output=True)
            best = int(np.argmax(scores))
            mask, low_res = np.asarray(masks[best]), np.asarray(low[best])
        box = persam.box_of(mask)
        info: dict[str, object] = {"persam": self.method, "positive": points[0].tolist()}
        if len(points) > 1:
            info["negative"] = points[1].tolist()
        if box is None:
            return np.zeros(image.shape[:2], bool), info
        sam2.set_image(image)
        refined, score, _ = sam2.predict(point_coords=points, point_labels=labels, box=box,
                                              multimask_output=False)
        info["sam2Score"] = round(float(np.asarray(score).reshape(-1)[0]), 4)
        final = np.asarray(refined).reshape(image.shape[:2]) > 0
        info["maskAgreement"] = round(iou(np.asarray(mask).reshape(final.shape), final), 4)  # PerSAM's vs SAM2's
        return final, info

    def _source(self, unit: str) -> tuple[bytes, str]:
        if is_augmented(unit):
            if self.augmented is None:
                raise SampleError("MissingImage", f"{unit} is an augmented image but step 5 did not run")
            return self.augmented.read_bytes(f"05_qwen_augmented_images/{unit}.png"), ".png"
        return self.scenes.read_bytes(f"{unit}.png"), ".png"

    def read_image(self, sample: Sample) -> tuple[bytes, str, np.ndarray]:
        """The image's bytes (written to the dataset as they are), suffix and RGB pixels."""
        data, suffix = self._source(sample.id)
        return data, suffix, decode_rgb(data, sample.id)

    def prefetch(self, samples: list[Sample]) -> None:
        """The next batch: its reads start now, and its images go to the models as soon as the
        current batch's are queued (`process_batch`), so the model threads go on into it while the
        current batch's last images are still in the models or becoming files."""
        self.ahead.update({s.id: self.readers.submit(self.read_image, s) for s in samples})  # as a PooledStage's
        self.model_next = [s.id for s in samples]

    def _queued(self, sample: Sample) -> tuple[Future[tuple[bytes, str, np.ndarray]],
                                               Future[tuple[np.ndarray, dict[str, object]]]]:
        """The sample's read and its models' work, started here unless a previous batch queued them."""
        read = self.ahead.pop(sample.id) if sample.id in self.ahead else self.readers.submit(self.read_image, sample)
        found = self.segmenting.pop(sample.id, None)
        if found is None:
            found = self.modelling.submit(self._segment_read, read)
        return read, found

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        queued = [self._queued(s) for s in samples]
        for sid in self.model_next:  # the next batch's images, behind this one's (the pool runs in order)
            if sid in self.ahead and sid not in self.segmenting:
                self.segmenting[sid] = self.modelling.submit(self._segment_read, self.ahead[sid])
        self.model_next = []
        finishing: list[Future[None] | Exception] = []
        for sample, (read, found) in zip(samples, queued, strict=True):
            try:
                data, suffix, pixels = read.result()
                mask, info = found.result()
            except SHARD_ERRORS:
                raise
            except Exception as failed:  # this sample's: the next image goes on
                finishing.append(failed)
                continue
            finishing.append(self.finishers.submit(self.write_sample, sample, data, suffix, pixels, mask, info))
        errors: list[Exception | None] = []
        for done in finishing:
            error = done if isinstance(done, Exception) else done.exception()
            if isinstance(error, SHARD_ERRORS):
                raise error
            errors.append(error if isinstance(error, Exception) else None)
        return errors

    def _segment_read(self, read: Future[tuple[bytes, str, np.ndarray]]) -> tuple[np.ndarray, dict[str, object]]:
        """`segment` on a read image, in a model thread: on its own stream, with predictors no other
        thread is using."""
        import torch

        image = read.result()[2]
        predictors = self.predictors.get()
        try:
            with self.placement.thread_stream(), torch.inference_mode():
                return self.segment(image, predictors)
        finally:
            self.predictors.put(predictors)

    def write_sample(self, sample: Sample, data: bytes, suffix: str, pixels: np.ndarray, mask: np.ndarray,
                     info: dict[str, object]) -> None:
        """The mask's polygon, the image and its label in their split, the marker's params (a
        finishing thread)."""
        h, w = mask.shape
        if mask.sum() < MIN_MASK_FRACTION * h * w:
            raise SampleError("NoMask", f"no mask of {self.settings.object_name!r} found "
                                        f"(prior point {info['positive']}, {int(mask.sum())} px)")
        polygon = mask_to_polygon(mask.astype(np.uint8))
        if len(polygon) < 3:
            raise SampleError("NoMask", "the mask has no outline of at least 3 points")
        agreement = info.pop("maskAgreement", None)
        figures = image_figures(pixels, mask, None, polygon)
        if isinstance(agreement, float):
            figures["maskAgreement"] = agreement
        if sample.id in self.duplicate_distance:  # measured by the scenes step, across the execution
            figures["duplicateDistance"] = self.duplicate_distance[sample.id]
        missed = self.settings.gate.missed(figures)
        if missed is not None:  # before anything of it is written: not in the dataset
            raise SampleError(QUALITY_OUT_OF_RANGE, missed)
        split = self.split.get(sample.id, "train")
        sample.write(image_key("", split, sample.id, suffix), data)
        sample.write(label_key("", split, sample.id), (label_line(polygon, w, h) + "\n").encode())
        sample.params.update({"split": split, "maskFraction": round(float(mask.mean()), 5), **info,
                              "quality": figures, **model_params(self.models)})
        models = sample.params["models"]
        sample.produced_by = f"{self.method} + SAM2: {models.get('sam')}, {models.get('sam2')}"
        if self.weights is not None:
            sample.params["persamWeights"] = [round(float(x), 5) for x in self.weights]

    def stop(self, wait: bool) -> None:
        """Stop the threads: at the worker's end (`wait`), or at once when a shard ends on an error (reads
        not started are dropped, so nothing keeps the process from exiting)."""
        for pool in (getattr(self, "readers", None), getattr(self, "modelling", None),
                     getattr(self, "finishers", None)):  # none: nothing was pending
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=not wait)


def load(settings: AnnotationSettings, ctx: StageContext) -> Annotator:
    models = open_models(ctx)
    with required_models():
        return Annotator(settings, ctx, models)


def finish(held: Annotator | None, ctx: StageContext) -> None:
    """The dataset's `dataset.yaml` and `classes.txt` (also after a shard whose images were all reused)."""
    settings = held.settings if held is not None else AnnotationSettings.model_validate(ctx.config)
    write_dataset_files(ctx.output, "", [settings.object_name])


ANNOTATION = SampleStage(
    "annotation", load, make_batch=Annotator.process_batch, prefetch=Annotator.prefetch,
    close=lambda held: held.stop(wait=True), abort=lambda held: held.stop(wait=False), finish=finish,
    after_shard=state_after_shard, prunes_outputs=True,
    marker_dir="_genfab/markers",  # the dataset folder itself stays as ultralytics expects it
    batch_size=BATCH)
