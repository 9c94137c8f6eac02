"""Optional stage `caption` (the lab's relighting document's disabled Stage 4): one caption per output pair ->
data/stage_4/{id}_caption.txt. Backend `transformers` runs an image-to-text model from the model
location (BLIP by default), batched; any other name is a plug-in from the entry-point group
`genfab.caption_backends` (`load(model_dir | None) -> callable(list of RGB uint8 arrays) -> list[str]`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genfab.api.pipelines.relighting import CaptionSettings
from genfab.stages.common.imaging import decode_png
from genfab.stages.models.base import Held, ModelSet, hold
from genfab.stages.models.placement import Placement
from genfab.stages.models.plugins import load_plugin
from genfab.stages.runtime import Sample, SampleStage, StageContext
from genfab.storage import Storage

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


@dataclass(frozen=True)
class Captioning:
    """The captioner (a callable of RGB images) and where the composites it captions are, opened once."""

    captioner: Any
    composites: Storage


Captioner = Held[CaptionSettings, Captioning]
"""What a worker of the stage holds: its settings and its captioning."""


def load_captioner(models: ModelSet, settings: CaptionSettings) -> Any:
    cfg = settings.captioning
    if cfg.backend == "transformers":
        return models.load("captioner", cfg.model, TransformersCaptioner)
    factory = load_plugin(PLUGIN_GROUP, cfg.backend)  # a plug-in gets the model folder and places its model itself
    return models.load("captioner", cfg.model, lambda path, _: factory(path))


def load(settings: CaptionSettings, ctx: StageContext) -> Captioner:
    return hold(settings, ctx, lambda models, s: Captioning(load_captioner(models, s), ctx.stage_output("recombine")))


def caption(held: Captioner, samples: list[Sample]) -> list[Exception | None]:
    cfg, images = held.settings.captioning, held.model.composites
    rgb = [decode_png(images.read_bytes(f"{s.id}_composite.png"))[..., :3] for s in samples]
    for sample, text in zip(samples, held.model.captioner(rgb), strict=True):
        sample.write(f"{sample.id}_caption.txt", (text + "\n").encode())
        sample.params.update({"backend": cfg.backend, "model": cfg.model, "caption": text})
    return [None] * len(samples)


CAPTION = SampleStage("caption", load, make_batch=caption,
                      made_by=lambda held: f"{held.settings.captioning.backend}:{held.settings.captioning.model}",
                      batch_size=16, marker_dir="_markers")
