"""Model-backed person segmentation (transformers): SAM3 with a text prompt; SAM2 prompted with the
best box of an open-vocabulary detector (Grounding DINO or OWLv2). Batched on the GPU, from images
to binary masks: resizing, normalisation, mask upsampling and thresholding run on the device, only
the final masks come back to the CPU. Weights come from the model location, never from a hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.api.relighting import SegmentationConfig
from genfab.stages.models.placement import Placement
from genfab.stages.models.preprocess import IMAGENET_DEFAULT, Preprocess, upsample

MASK_CHUNK = 16
"""Query masks upsampled to the image size at once (bounds the memory of many detections)."""
COMPILED_PARTS = ("vision_encoder", "detr_encoder", "detr_decoder", "mask_decoder")
"""SAM3's submodules `segmentation.compile` compiles (its CLIP text encoder runs once per chunk on one
short prompt: nothing to gain)."""


class Sam3Backend:
    """SAM3 promptable concept segmentation: every instance of the text prompt above `boxThreshold`,
    merged into one person mask (a pixel is in it when any instance's probability is above
    `maskThreshold`)."""

    name = "sam3"

    def __init__(self, path: Path, cfg: SegmentationConfig, placement: Placement, chunk: int = 0) -> None:
        from transformers import AutoTokenizer, Sam3Model

        self.model_id = cfg.sam3_model
        self.placement = placement
        self.model = placement.place(Sam3Model.from_pretrained(path, dtype=placement.dtype))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.pre = Preprocess.from_model_dir(path, 1008)
        self.prompt, self.score_threshold, self.mask_threshold = cfg.text_prompt, cfg.box_threshold, cfg.mask_threshold
        self.compiled = cfg.compile and placement.device.type == "cuda"
        if self.compiled:
            for part in COMPILED_PARTS:
                getattr(self.model, part).compile()
        self.chunk = 0
        """The largest chunk so far: compiled, a shorter one is padded to it (no second compile)."""
        if self.compiled and chunk:  # compile now, in the shard's model loading, at the stage's chunk size
            self.masks([np.full((64, 64, 3), 127, np.uint8)] * chunk)

    @torch.inference_mode()
    def masks(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        count, self.chunk = len(images), max(self.chunk, len(images))
        if self.compiled and 0 < count < self.chunk:  # the padding's masks are dropped below
            images = images + [images[-1]] * (self.chunk - count)
        return self._masks(images)[:count]

    def _masks(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        device = self.placement.device
        pixels = self.pre(images, device, self.model.dtype)
        text = self.tokenizer([self.prompt] * len(images), padding="max_length", truncation=True,
                              max_length=32, return_tensors="pt").to(device)
        out = self.model(pixel_values=pixels, input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        scores = out.pred_logits.float().sigmoid()  # (B, Q)
        if getattr(out, "presence_logits", None) is not None:
            scores = scores * out.presence_logits.float().sigmoid()
        keep = scores > self.score_threshold
        # Which queries passed, read once for the whole chunk; the rest stays on the device.
        passed = keep.nonzero()
        counts = torch.bincount(passed[:, 0], minlength=len(images)).tolist()
        ends = np.cumsum(counts).tolist()
        best: list[torch.Tensor | None] = []
        for b, img in enumerate(images):
            if not counts[b]:
                best.append(None)
                continue
            logits = out.pred_masks[b].index_select(0, passed[ends[b] - counts[b]:ends[b], 1])  # (K, h, w)
            # sigmoid is monotonic: the max over instances of their probabilities is the sigmoid of
            # the max of their upsampled logits.
            top = torch.stack([upsample(chunk, img.shape[:2]).amax(0) for chunk in logits.split(MASK_CHUNK)]).amax(0)
            best.append(top.sigmoid() > self.mask_threshold)
        # Every image's work is queued before the first copy back waits for it.
        return [None if mask is None else mask.cpu().numpy() for mask in best]


class Sam2Backend:
    """A detector finds the best box for the prompt; SAM2 segments inside it (single-mask output)."""

    name = "sam2"
    compiled = False

    def __init__(self, path: Path, detector_path: Path, cfg: SegmentationConfig, placement: Placement) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor, Sam2Model

        self.model_id = cfg.sam2_model
        self.placement = placement
        self.model = placement.place(Sam2Model.from_pretrained(path, dtype=placement.dtype))
        self.pre = Preprocess.from_model_dir(path, 1024, IMAGENET_DEFAULT)
        self.det_processor = AutoProcessor.from_pretrained(detector_path)
        self.detector = AutoModelForZeroShotObjectDetection.from_pretrained(detector_path).to(placement.device).eval()
        self.prompt, self.box_threshold = cfg.text_prompt, cfg.box_threshold

    def _boxes(self, images: list[np.ndarray]) -> list[list[float] | None]:
        rgb = [np.ascontiguousarray(img[..., ::-1]) for img in images]
        # Grounding DINO wants "a person." style text, OWLv2 a list of queries per image.
        text: Any = [[self.prompt]] * len(images)
        inputs = self.det_processor(images=rgb, text=text, return_tensors="pt").to(self.placement.device)
        out = self.detector(**inputs)
        sizes = [img.shape[:2] for img in images]
        results = self.det_processor.post_process_grounded_object_detection(
            out, threshold=self.box_threshold, target_sizes=sizes)
        boxes: list[list[float] | None] = []
        for r in results:
            if len(r["scores"]) == 0:
                boxes.append(None)
            else:
                boxes.append(r["boxes"][int(r["scores"].argmax())].float().tolist())
        return boxes

    @torch.inference_mode()
    def masks(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        boxes = self._boxes(images)
        todo = [i for i, b in enumerate(boxes) if b is not None]
        result: list[np.ndarray | None] = [None] * len(images)
        if not todo:
            return result
        pixels = self.pre([images[i] for i in todo], self.placement.device, self.model.dtype)
        scaled = []
        for i in todo:
            h, w = images[i].shape[:2]
            x0, y0, x1, y1 = boxes[i]  # type: ignore[misc]
            sx, sy = self.pre.width / w, self.pre.height / h
            scaled.append([[x0 * sx, y0 * sy, x1 * sx, y1 * sy]])
        input_boxes = torch.tensor(scaled, device=self.placement.device, dtype=self.model.dtype)
        out = self.model(pixel_values=pixels, input_boxes=input_boxes, multimask_output=False)
        masks = [upsample(out.pred_masks[k, 0, 0], images[i].shape[:2]) > 0.0 for k, i in enumerate(todo)]
        for i, mask in zip(todo, masks, strict=True):  # all queued before the first copy back waits
            result[i] = mask.cpu().numpy()
        return result
