"""reference-object's Qwen Image Edit steps: 1 `white-background`, 2 `perspectives` (multi-camera
LoRA), 4 `scenes` and 5 `qwen-augmentation`, on `qwen_edit.Editor`. The pipeline loads once per
shard (a Pod), then one edit per unit."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from genfab.api.pipelines.reference_object import (
    EditSettings,
    PerspectivesSettings,
    QwenAugmentationSettings,
    ScenesSettings,
    WhiteBackgroundSettings,
)
from genfab.api.reference_object import lora_mismatch
from genfab.stages.common.imaging import encode_png
from genfab.stages.models.base import ModelStage
from genfab.stages.models.placement import Placement
from genfab.stages.reference_object import edit_speed
from genfab.stages.reference_object.duplicates import nearest_earlier, phash
from genfab.stages.reference_object.prompt_files import own_text_note, prompt_file
from genfab.stages.reference_object.qwen_edit import (
    LORA_MARKERS,
    Editor,
    decode,
    fuse_lora,
    load_lora,
    load_pipeline,
)
from genfab.stages.reference_object.state import WritesPipelineState
from genfab.stages.reference_object.summary import ShardParts
from genfab.stages.reference_object.units import AUG_RE, PERSPECTIVE_RE, SceneUnit
from genfab.stages.reference_object.views import camera_prompt, views, white_background_prompt
from genfab.stages.reference_object.zero123 import PIPELINE_MARKERS, Zero123
from genfab.stages.runtime import BadInput, Sample, SampleError, StageContext

E = TypeVar("E", bound=EditSettings)
WHITE_BACKGROUND = "01_white_background.png"


def scene_prompt(object_name: str, scene: str) -> str:
    """Step 4's instruction: the object, as it is in the view, placed in the LLM's scene."""
    return (f"Place the {object_name} from this image into the following scene, keeping its shape, colours and "
            f"details exactly as they are: {scene}")


class EditStage(WritesPipelineState, ModelStage[E]):
    """Loads the Qwen Image Edit pipeline of `modelPath`, applies `editRuntime` (after any LoRA) and
    edits one unit at a time."""

    marker_dir: ClassVar[str] = "_genfab/markers"

    def load_models(self, ctx: StageContext) -> None:
        s = self.settings
        pipe = self.models.load("qwen-image-edit", s.model_path, load_pipeline)
        lora = self.camera_lora()
        mismatch = lora_mismatch(lora, type(pipe).__name__, s.model_path) if lora else None
        if mismatch:  # before the first sample: no image is made for a run the LoRA cannot finish
            raise BadInput(mismatch)
        dequantized = edit_speed.dequantize(pipe.transformer, s.edit_runtime, self.placement.device,
                                            self.placement.offload)
        self.adapt(pipe)
        self.runtime = dequantized + edit_speed.apply(pipe.transformer, s.edit_runtime, self.placement.device,
                                                      true_cfg=s.true_cfg_scale > 1)
        retries = int(ctx.options.get("maxRetries", 0) or 0)
        self.editor = Editor(pipe, s.steps, s.true_cfg_scale, retries)

    def camera_lora(self) -> str | None:
        """The multi-camera LoRA this run's perspectives apply to this stage's edit model, checked
        against it when the model loads (`lora_mismatch`); None when there is none to check."""
        return None

    def adapt(self, pipe: Any) -> None:
        """Changes to the pipeline before the runtime options apply (the perspectives' LoRA)."""

    def edit_pixels(self, sample: Sample, image_bytes: bytes, prompt: str, seed: int, what: str) -> np.ndarray:
        """The edited image as RGB pixels; the edit's facts go to the sample's params."""
        started = time.monotonic()
        result, info = self.editor.edit(decode(image_bytes, what), prompt, seed, key=f"{sample.id}/{what}")
        sample.params.update({"prompt": prompt, **info, "editSeconds": round(time.monotonic() - started, 3),
                              "editRuntime": self.runtime, **self.model_params()})
        return np.asarray(result.convert("RGB"))

    def edit(self, sample: Sample, image_bytes: bytes, prompt: str, seed: int, what: str) -> bytes:
        return encode_png(self.edit_pixels(sample, image_bytes, prompt, seed, what))


class WhiteBackgroundStage(EditStage[WhiteBackgroundSettings]):
    name = "white-background"
    marker_dir = "_genfab/markers/white-background"  # its output is the execution folder itself

    def camera_lora(self) -> str | None:
        """Step 1 is the run's first: it refuses a LoRA that does not fit the edit model before step 2
        would (the pair is read at plan time too, where the executor can read the model location)."""
        return self.settings.camera_lora

    def process(self, sample: Sample) -> None:
        s = self.settings
        png = self.edit(sample, sample.read_source(), white_background_prompt(s.object_name), s.seed, "inputImage")
        sample.write(WHITE_BACKGROUND, png)


class PerspectivesStage(EditStage[PerspectivesSettings]):
    name = "perspectives"

    def load_models(self, ctx: StageContext) -> None:
        cfg = self.settings.perspectives
        self.zero123: Zero123 | None = None
        if cfg.generator == "zero123":  # Zero123++ makes the views: the edit model is not loaded here
            code = self.models.path(cfg.zero123_pipeline, PIPELINE_MARKERS)
            self.zero123 = self.models.load("zero123", cfg.zero123_model, lambda path, placement: Zero123(
                path, code, placement, cfg.zero123_steps, cfg.zero123_guidance))
            self.grid: dict[int, list[np.ndarray]] = {}
        else:
            super().load_models(ctx)
        self.source = ctx.stage_output("white-background").read_bytes(WHITE_BACKGROUND)
        self.views = {v.id: v for v in views(cfg)}

    def camera_lora(self) -> str | None:
        return self.settings.perspectives.lora

    def adapt(self, pipe: Any) -> None:
        cfg = self.settings.perspectives

        def lora(path: Path, placement: Placement) -> str:
            load_lora(pipe, path)
            fuse_lora(pipe)
            return cfg.lora

        self.models.load("camera-lora", cfg.lora, lora, LORA_MARKERS)

    def process(self, sample: Sample) -> None:
        view = self.views.get(sample.id)
        if view is None:
            raise SampleError("UnknownView", f"{sample.id} is not one of this config's views")
        if self.zero123 is not None:
            sample.write(f"{view.id}.png", encode_png(self.zero123_view(sample, view.index)))
            return
        prompt = camera_prompt(view, self.settings.perspectives.lora)
        sample.write(f"{view.id}.png", self.edit(sample, self.source, prompt, sample.seed(self.settings.seed),
                                                 WHITE_BACKGROUND))
        sample.produced_by = f"qwen_multicamera: {self.settings.model_path} + {self.settings.perspectives.lora}"

    def zero123_view(self, sample: Sample, view: int) -> np.ndarray:
        """One of Zero123++'s six views: its one call per shard makes them all (same seed in every
        shard, so a view is the same whichever shard makes it)."""
        assert self.zero123 is not None
        cfg, seed = self.settings.perspectives, self.settings.seed
        if seed not in self.grid:
            started = time.monotonic()
            self.grid[seed] = self.zero123.views(np.asarray(decode(self.source, WHITE_BACKGROUND).convert("RGB")), seed)
            self.grid_seconds = round(time.monotonic() - started, 3)
        sample.params.update({"generator": "zero123", "seed": seed, "steps": cfg.zero123_steps,
                              "guidanceScale": cfg.zero123_guidance, "gridSeconds": self.grid_seconds,
                              "zero123Pipeline": cfg.zero123_pipeline, **self.model_params()})
        sample.produced_by = f"zero123: {cfg.zero123_model}"
        return self.grid[seed][view]


class ScenesStage(EditStage[ScenesSettings]):
    """Step 4; `04_dataset/metadata.json` gives each image's source perspective, prompt, seed and
    timing (merged from every shard)."""

    name = "scenes"

    def load_models(self, ctx: StageContext) -> None:
        super().load_models(ctx)
        doc = json.loads(ctx.stage_output("prompts").read_bytes("prompts.json"))
        self.prompts: list[str] = list(doc["prompts"])
        self.perspective_store = perspectives = ctx.stage_output("perspectives")
        self.perspectives: dict[int, str] = {}
        for obj in perspectives.list():
            m = PERSPECTIVE_RE.match(obj.key)
            if m and obj.key.endswith(".png") and "/" not in obj.key:
                self.perspectives[int(m[1])] = obj.key
        self.parts = ShardParts(ctx)

    def process(self, sample: Sample) -> None:
        unit = SceneUnit.parse(sample.id)
        if unit.prompt >= len(self.prompts) or unit.perspective not in self.perspectives:
            raise SampleError("MissingInput", f"{sample.id}: no prompt {unit.prompt} or perspective {unit.perspective}")
        source = self.perspectives[unit.perspective]
        scene = self.prompts[unit.prompt]
        instruction = scene_prompt(self.settings.object_name, scene)
        pixels = self.edit_pixels(sample, self.perspective_store.read_bytes(source), instruction, unit.seed, source)
        sample.write(f"{sample.id}.png", encode_png(pixels))
        self.parts.add(f"{sample.id}.png", {"perspective": source, "prompt_index": unit.prompt, "prompt": scene,
                                            "seed": sample.params["seed"], "attempts": sample.params["attempts"],
                                            "seconds": sample.params["editSeconds"], "phash": f"{phash(pixels):016x}"})

    def finish(self, ctx: StageContext) -> None:
        parts = getattr(self, "parts", None) or ShardParts(ctx)
        parts.publish(lambda merged: ctx.output.write_bytes("metadata.json", json.dumps(
            {"images": with_duplicates(merged), "total": len(merged)}, indent=2, sort_keys=True).encode()))


def with_duplicates(images: dict[str, Any]) -> dict[str, Any]:
    """The merged scenes' records, each with `duplicateDistance` and `duplicateOf` (the nearest scene
    before it, `duplicates.nearest_earlier`) where every scene so far has its hash."""
    hashes = {name: int(rec["phash"], 16) for name, rec in images.items()
              if isinstance(rec, dict) and isinstance(rec.get("phash"), str)}
    nearest = nearest_earlier(hashes)
    return {name: {**rec, "duplicateDistance": nearest[name][0], "duplicateOf": nearest[name][1]}
            if name in nearest else rec for name, rec in images.items()}


class QwenAugmentationStage(EditStage[QwenAugmentationSettings]):
    """Step 5: `count` variants of every scene, each edited with one prompt drawn (seeded per
    variant) from the predefined prompts file; `05_qwen_augmented_images/` holds the variants and
    `05_qwen_combined_images/` the originals and the variants (step 6 reads that folder)."""

    name = "qwen-augmentation"
    marker_dir = "_genfab/markers/qwen-augmentation"  # its outputs are two folders of the execution folder

    def load_models(self, ctx: StageContext) -> None:
        super().load_models(ctx)
        uri = self.settings.qwen_augmentation.predefined_prompts_uri
        self.prompt_file = prompt_file(ctx, uri, "qwenAugmentation.predefinedPromptsUri", "qwen_edit_augmentations.txt")
        self.prompts = [line.strip() for line in self.prompt_file.text.splitlines()
                        if line.strip() and not line.startswith("#")]
        if not self.prompts:
            raise BadInput(f"qwenAugmentation.predefinedPromptsUri {uri}: no prompt lines")
        note = own_text_note({"predefinedPrompts": self.prompt_file})
        if note:  # about the shard, once: the stage's status shows it
            ctx.note(note)
        self.scenes = ctx.stage_output("scenes")

    def process(self, sample: Sample) -> None:
        m = AUG_RE.match(sample.id)
        if m is None:
            raise SampleError("UnknownUnit", f"{sample.id} is not <scene>_aug_<k>")
        scene_id, k = m["scene"], int(m["k"])
        original = self.scenes.read_bytes(f"{scene_id}.png")
        seed = sample.seed(self.settings.seed)
        prompt = random.Random(seed).choice(self.prompts)
        png = self.edit(sample, original, prompt, seed, f"{scene_id}.png")
        sample.write(f"05_qwen_augmented_images/{sample.id}.png", png)
        sample.write(f"05_qwen_combined_images/{sample.id}.png", png)
        if k == 0:  # the original joins the combined folder once, with its first variant
            sample.write(f"05_qwen_combined_images/{scene_id}.png", original)
        sample.params["source"] = f"04_dataset/{scene_id}.png"
        sample.params["prompt"], sample.params["promptFiles"] = prompt, {"predefinedPrompts": self.prompt_file.source}

