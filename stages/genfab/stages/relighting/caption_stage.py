"""Optional stage `caption` (the lab's relighting document's disabled Stage 4): one caption per output pair ->
data/stage_4/{id}_caption.txt. Backend `transformers` runs an image-to-text model from the model
location (BLIP by default), batched; any other name is a plug-in from the entry-point group
`genfab.caption_backends` (`load(model_dir | None) -> callable(list of RGB uint8 arrays) -> list[str]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genfab.api.pipelines.relighting import CaptionSettings
from genfab.stages.common.imaging import decode_png
from genfab.stages.models.base import ModelStage
from genfab.stages.models.placement import Placement
from genfab.stages.models.plugins import load_plugin
from genfab.stages.runtime import Sample, StageContext

PLUGIN_GROUP = "genfab.caption_backends"


class TransformersCaptioner:
    """`from_pretrained` image-to-text model (BLIP, GIT, ...) on the GPU when there is one."""

    def __init__(self, path: Path, placement: Placement, max_new_tokens: int = 30) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.device = placement.device
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = placement.place(AutoModelForImageTextToText.from_pretrained(path, dtype=placement.dtype))
        self.max_new_tokens = max_new_tokens

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.device, self.model.dtype)
        with self.torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]


class CaptionStage(ModelStage[CaptionSettings]):
    name = "caption"
    marker_dir = "_markers"
    batch_size = 16

    def load_models(self, ctx: StageContext) -> None:
        cfg = self.settings.captioning
        self.backend = cfg.backend
        self.model_id = cfg.model
        if self.backend == "transformers":
            self.captioner: Any = self.models.load("captioner", self.model_id, TransformersCaptioner)
        else:  # a plug-in gets the model folder and places its model itself
            factory = load_plugin(PLUGIN_GROUP, self.backend)
            self.captioner = self.models.load("captioner", self.model_id, lambda path, _: factory(path))
        self.images = ctx.stage_output("recombine")

    def process_batch(self, samples: list[Sample]) -> list[Exception | None]:
        rgb = [decode_png(self.images.read_bytes(f"{s.id}_composite.png"))[..., :3]
               for s in samples]
        captions = self.captioner(rgb)
        for sample, text in zip(samples, captions, strict=True):
            sample.write(f"{sample.id}_caption.txt", (text + "\n").encode())
            sample.params.update({"backend": self.backend, "model": self.model_id, "caption": text})
        return [None] * len(samples)
