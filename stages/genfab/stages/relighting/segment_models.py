"""Model-backed person segmentation (transformers): SAM3 with a text prompt; SAM2 prompted with the
best box of an open-vocabulary detector (Grounding DINO or OWLv2). Batched on the GPU; weights come
from the model location (`genfab.stages.runtime.models`), never from a hub at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genfab.api.relighting import SegmentationConfig
from genfab.stages.relighting.torch_util import Preprocess, device, dtype_for, upsample
from genfab.stages.runtime import StageContext
from genfab.stages.runtime.models import resolve_model


class Sam3Backend:
    """SAM3 promptable concept segmentation: every instance of the text prompt above `box_threshold`,
    merged into one person mask."""

    name = "sam3"

    def __init__(self, path: Path, model_id: str, prompt: str, score_threshold: float, mask_threshold: float) -> None:
        from transformers import AutoTokenizer, Sam3Model

        self.model_id = model_id
        self.device = device()
        self.model = Sam3Model.from_pretrained(path, dtype=dtype_for(self.device)).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.pre = Preprocess.from_model_dir(path, 1008)
        self.prompt, self.score_threshold, self.mask_threshold = prompt, score_threshold, mask_threshold

    @torch.inference_mode()
    def masks(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        pixels = self.pre(images, self.device, self.model.dtype)
        text = self.tokenizer([self.prompt] * len(images), padding="max_length", truncation=True,
                              max_length=32, return_tensors="pt").to(self.device)
        out = self.model(pixel_values=pixels, input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        scores = out.pred_logits.float().sigmoid()  # (B, Q)
        if getattr(out, "presence_logits", None) is not None:
            scores = scores * out.presence_logits.float().sigmoid()
        result: list[np.ndarray | None] = []
        for b, img in enumerate(images):
            keep = torch.nonzero(scores[b] > self.score_threshold).flatten()
            if len(keep) == 0:
                result.append(None)
                continue
            probs = np.max([1.0 / (1.0 + np.exp(-upsample(out.pred_masks[b, q], img.shape[:2]))) for q in keep], axis=0)
            result.append(probs > self.mask_threshold)
        return result


class Sam2Backend:
    """A detector finds the best box for the prompt; SAM2 segments inside it (single-mask output)."""

    name = "sam2"

    def __init__(self, path: Path, model_id: str, detector_path: Path, prompt: str, box_threshold: float) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor, Sam2Model

        self.model_id = model_id
        self.device = device()
        dtype = dtype_for(self.device)
        self.model = Sam2Model.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.pre = Preprocess.from_model_dir(path, 1024, ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
        self.det_processor = AutoProcessor.from_pretrained(detector_path)
        self.detector = AutoModelForZeroShotObjectDetection.from_pretrained(detector_path).to(self.device).eval()
        self.prompt, self.box_threshold = prompt, box_threshold

    def _boxes(self, images: list[np.ndarray]) -> list[list[float] | None]:
        rgb = [np.ascontiguousarray(img[..., ::-1]) for img in images]
        # Grounding DINO wants "a person." style text, OWLv2 a list of queries per image.
        text: Any = [[self.prompt]] * len(images)
        inputs = self.det_processor(images=rgb, text=text, return_tensors="pt").to(self.device)
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
        pixels = self.pre([images[i] for i in todo], self.device, self.model.dtype)
        scaled = []
        for i in todo:
            h, w = images[i].shape[:2]
            x0, y0, x1, y1 = boxes[i]  # type: ignore[misc]
            sx, sy = self.pre.width / w, self.pre.height / h
            scaled.append([[x0 * sx, y0 * sy, x1 * sx, y1 * sy]])
        input_boxes = torch.tensor(scaled, device=self.device, dtype=self.model.dtype)
        out = self.model(pixel_values=pixels, input_boxes=input_boxes, multimask_output=False)
        for k, i in enumerate(todo):
            result[i] = upsample(out.pred_masks[k, 0, 0], images[i].shape[:2]) > 0.0
        return result


def load_backend(name: str, cfg: SegmentationConfig, ctx: StageContext) -> Sam3Backend | Sam2Backend:
    """Load a model backend from the model location (raises ModelUnavailable when it is not there)."""
    cache = ctx.workdir / "models"
    if name == "sam3":
        return Sam3Backend(resolve_model(cfg.sam3_model, cache, ctx.env), cfg.sam3_model, cfg.text_prompt,
                           cfg.box_threshold, cfg.mask_threshold)
    if name == "sam2":
        return Sam2Backend(resolve_model(cfg.sam2_model, cache, ctx.env), cfg.sam2_model,
                           resolve_model(cfg.detector_model, cache, ctx.env), cfg.text_prompt, cfg.box_threshold)
    raise ValueError(f"unknown segmentation backend {name!r} (allowed: sam3, sam2, classical)")
