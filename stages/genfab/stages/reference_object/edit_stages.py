"""reference-object's Qwen Image Edit steps: 1 `white-background`, 2 `perspectives` (multi-camera
LoRA, or Zero123++), 4 `scenes` and 5 `qwen-augmentation`, on `qwen_edit.Editor`. Each is a `SampleStage`:
what its worker loads once (`open_editor`, and the step's own inputs), then one edit per unit."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

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
from genfab.stages.models.base import ModelSet, model_params, open_models, required_models
from genfab.stages.models.placement import Placement
from genfab.stages.reference_object import edit_speed
from genfab.stages.reference_object.duplicates import nearest_earlier, phash, phash_value
from genfab.stages.reference_object.prompt_files import PromptFile, own_text_note, prompt_file
from genfab.stages.reference_object.qwen_edit import (
    LORA_MARKERS,
    Editor,
    decode,
    fuse_lora,
    load_lora,
    load_pipeline,
)
from genfab.stages.reference_object.state import state_after_shard
from genfab.stages.reference_object.summary import ShardParts
from genfab.stages.reference_object.units import AUG_RE, PERSPECTIVE_RE, SceneUnit
from genfab.stages.reference_object.views import camera_prompt, views, white_background_prompt
from genfab.stages.reference_object.zero123 import PIPELINE_MARKERS, Zero123
from genfab.stages.runtime import BadInput, Sample, SampleError, SampleStage, StageContext
from genfab.storage import Storage

E = TypeVar("E", bound=EditSettings)
WHITE_BACKGROUND = "01_white_background.png"


def scene_prompt(object_name: str, scene: str) -> str:
    """Step 4's instruction: the object, as it is in the view, placed in the LLM's scene."""
    return (f"Place the {object_name} from this image into the following scene, keeping its shape, colours and "
            f"details exactly as they are: {scene}")


@dataclass
class Editing(Generic[E]):
    """What an edit step's worker holds: its settings and models, and the Qwen Image Edit pipeline of
    `modelPath` (after any LoRA, with `editRuntime` applied) that edits one unit at a time."""

    settings: E
    ctx: StageContext
    models: ModelSet
    editor: Editor | None = None
    runtime: list[str] = field(default_factory=list)

    def pixels(self, sample: Sample, image_bytes: bytes, prompt: str, seed: int, what: str) -> np.ndarray:
        """The edited image as RGB pixels; the edit's facts go to the sample's params."""
        assert self.editor is not None
        started = time.monotonic()
        result, info = self.editor.edit(decode(image_bytes, what), prompt, seed, key=f"{sample.id}/{what}")
        sample.params.update({"prompt": prompt, **info, "editSeconds": round(time.monotonic() - started, 3),
                              "editRuntime": self.runtime, **model_params(self.models)})
        return np.asarray(result.convert("RGB"))

    def png(self, sample: Sample, image_bytes: bytes, prompt: str, seed: int, what: str) -> bytes:
        return encode_png(self.pixels(sample, image_bytes, prompt, seed, what))


def open_editor(settings: E, ctx: StageContext, camera_lora: str | None = None,
                adapt: Callable[[ModelSet, Any], None] | None = None) -> Editing[E]:
    """Load the edit pipeline once per worker. `camera_lora`: the multi-camera LoRA this run's perspectives
    apply to this edit model, checked against it here, before the first sample (no image is made for a run
    the LoRA cannot finish); `adapt` changes the pipeline before the runtime options apply (the
    perspectives' LoRA)."""
    editing = Editing(settings, ctx, open_models(ctx))
    with required_models():
        load_edit_pipeline(editing, camera_lora, adapt)
    return editing


def load_edit_pipeline(editing: Editing[Any], camera_lora: str | None,
                       adapt: Callable[[ModelSet, Any], None] | None) -> None:
    s, models = editing.settings, editing.models
    pipe = models.load("qwen-image-edit", s.model_path, load_pipeline)
    mismatch = lora_mismatch(camera_lora, type(pipe).__name__, s.model_path) if camera_lora else None
    if mismatch:
        raise BadInput(mismatch)
    placement = models.placement
    dequantized = edit_speed.dequantize(pipe.transformer, s.edit_runtime, placement.device, placement.offload)
    if adapt is not None:
        adapt(models, pipe)
    editing.runtime = dequantized + edit_speed.apply(pipe.transformer, s.edit_runtime, placement.device,
                                                     true_cfg=s.true_cfg_scale > 1)
    editing.editor = Editor(pipe, s.steps, s.true_cfg_scale, int(editing.ctx.options.get("maxRetries", 0) or 0))


def step_one_lora(settings: WhiteBackgroundSettings) -> str | None:
    """Step 1 is the run's first: it refuses a LoRA that does not fit the edit model before step 2 would
    (the pair is read at plan time too, where the executor can read the model location)."""
    return settings.camera_lora


def white_background(editing: Editing[WhiteBackgroundSettings], sample: Sample) -> None:
    s = editing.settings
    sample.write(WHITE_BACKGROUND, editing.png(sample, sample.read_source(), white_background_prompt(s.object_name),
                                               s.seed, "inputImage"))


@dataclass
class Perspectives:
    """Step 2's worker: the white-background image, this config's views, and what makes them (the edit
    model with the multi-camera LoRA, or Zero123++ and the grids it made, by seed)."""

    editing: Editing[PerspectivesSettings]
    source: bytes
    views: dict[str, Any]
    zero123: Zero123 | None = None
    grid: dict[int, list[np.ndarray]] = field(default_factory=dict)
    grid_seconds: float = 0.0


def load_perspectives(s: PerspectivesSettings, ctx: StageContext) -> Perspectives:
    cfg = s.perspectives
    if cfg.generator == "zero123":  # Zero123++ makes the views: the edit model is not loaded here
        editing = Editing(s, ctx, open_models(ctx))
        with required_models():
            code = editing.models.path(cfg.zero123_pipeline, PIPELINE_MARKERS)
            zero123: Zero123 | None = editing.models.load("zero123", cfg.zero123_model, lambda path, placement: Zero123(
                path, code, placement, cfg.zero123_steps, cfg.zero123_guidance))
    else:
        def lora(models: ModelSet, pipe: Any) -> None:
            def fuse(path: Path, placement: Placement) -> str:
                load_lora(pipe, path)
                fuse_lora(pipe)
                return cfg.lora

            models.load("camera-lora", cfg.lora, fuse, LORA_MARKERS)
        editing, zero123 = open_editor(s, ctx, camera_lora=cfg.lora, adapt=lora), None
    source = ctx.stage_output("white-background").read_bytes(WHITE_BACKGROUND)
    return Perspectives(editing, source, {v.id: v for v in views(cfg)}, zero123)


def perspective(held: Perspectives, sample: Sample) -> None:
    view = held.views.get(sample.id)
    if view is None:
        raise SampleError("UnknownView", f"{sample.id} is not one of this config's views")
    if held.zero123 is not None:
        sample.write(f"{view.id}.png", encode_png(zero123_view(held, sample, view.index)))
        return
    s = held.editing.settings
    prompt = camera_prompt(view, s.perspectives.lora)
    sample.write(f"{view.id}.png", held.editing.png(sample, held.source, prompt, sample.seed(s.seed), WHITE_BACKGROUND))
    sample.produced_by = f"qwen_multicamera: {s.model_path} + {s.perspectives.lora}"


def zero123_view(held: Perspectives, sample: Sample, view: int) -> np.ndarray:
    """One of Zero123++'s six views: its one call per shard makes them all (same seed in every shard, so a
    view is the same whichever shard makes it)."""
    assert held.zero123 is not None
    cfg, seed = held.editing.settings.perspectives, held.editing.settings.seed
    if seed not in held.grid:
        started = time.monotonic()
        held.grid[seed] = held.zero123.views(np.asarray(decode(held.source, WHITE_BACKGROUND).convert("RGB")), seed)
        held.grid_seconds = round(time.monotonic() - started, 3)
    sample.params.update({"generator": "zero123", "seed": seed, "steps": cfg.zero123_steps,
                          "guidanceScale": cfg.zero123_guidance, "gridSeconds": held.grid_seconds,
                          "zero123Pipeline": cfg.zero123_pipeline, **model_params(held.editing.models)})
    sample.produced_by = f"zero123: {cfg.zero123_model}"
    return held.grid[seed][view]


@dataclass
class Scenes:
    """Step 4's worker: the edit model, step 3's prompts, step 2's perspectives, and this shard's records
    of `04_dataset/metadata.json` (each image's source perspective, prompt, seed and timing, merged from
    every shard)."""

    editing: Editing[ScenesSettings]
    prompts: list[str]
    perspective_store: Storage
    perspectives: dict[int, str]
    parts: ShardParts


def load_scenes(s: ScenesSettings, ctx: StageContext) -> Scenes:
    editing = open_editor(s, ctx)
    doc = json.loads(ctx.stage_output("prompts").read_bytes("prompts.json"))
    store = ctx.stage_output("perspectives")
    found = {int(m[1]): obj.key for obj in store.list()
             if (m := PERSPECTIVE_RE.match(obj.key)) and obj.key.endswith(".png") and "/" not in obj.key}
    return Scenes(editing, list(doc["prompts"]), store, found, ShardParts(ctx))


def scene(held: Scenes, sample: Sample) -> None:
    unit = SceneUnit.parse(sample.id)
    if unit.prompt >= len(held.prompts) or unit.perspective not in held.perspectives:
        raise SampleError("MissingInput", f"{sample.id}: no prompt {unit.prompt} or perspective {unit.perspective}")
    source = held.perspectives[unit.perspective]
    text = held.prompts[unit.prompt]
    instruction = scene_prompt(held.editing.settings.object_name, text)
    pixels = held.editing.pixels(sample, held.perspective_store.read_bytes(source), instruction, unit.seed, source)
    sample.write(f"{sample.id}.png", encode_png(pixels))
    held.parts.add(f"{sample.id}.png", {"perspective": source, "prompt_index": unit.prompt, "prompt": text,
                                        "seed": sample.params["seed"], "attempts": sample.params["attempts"],
                                        "seconds": sample.params["editSeconds"], "phash": f"{phash(pixels):016x}"})


def publish_scenes(held: Scenes | None, ctx: StageContext) -> None:
    parts = held.parts if held is not None else ShardParts(ctx)
    parts.publish(lambda merged: ctx.output.write_bytes("metadata.json", json.dumps(
        {"images": with_duplicates(merged), "total": len(merged)}, indent=2, sort_keys=True).encode()))


def with_duplicates(images: dict[str, Any]) -> dict[str, Any]:
    """The merged scenes' records, each with `duplicateDistance` and `duplicateOf` (the nearest scene
    before it, `duplicates.nearest_earlier`) where every scene so far has its hash."""
    hashes = {name: value for name, rec in images.items()
              if isinstance(rec, dict) and (value := phash_value(rec.get("phash"))) is not None}
    nearest = nearest_earlier(hashes)
    return {name: {**rec, "duplicateDistance": nearest[name][0], "duplicateOf": nearest[name][1]}
            if name in nearest else rec for name, rec in images.items()}


@dataclass
class Augmenting:
    """Step 5's worker: the edit model, the predefined prompts and step 4's scenes."""

    editing: Editing[QwenAugmentationSettings]
    prompt_file: PromptFile
    prompts: list[str]
    scenes: Storage


def load_augmentation(s: QwenAugmentationSettings, ctx: StageContext) -> Augmenting:
    editing = open_editor(s, ctx)
    uri = s.qwen_augmentation.predefined_prompts_uri
    found = prompt_file(ctx, uri, "qwenAugmentation.predefinedPromptsUri", "qwen_edit_augmentations.txt")
    prompts = [line.strip() for line in found.text.splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise BadInput(f"qwenAugmentation.predefinedPromptsUri {uri}: no prompt lines")
    note = own_text_note({"predefinedPrompts": found})
    if note:  # about the shard, once: the stage's status shows it
        ctx.note(note)
    return Augmenting(editing, found, prompts, ctx.stage_output("scenes"))


def augment(held: Augmenting, sample: Sample) -> None:
    """`count` variants of every scene, each edited with one prompt drawn (seeded per variant) from the
    predefined prompts file; `05_qwen_augmented_images/` holds the variants and `05_qwen_combined_images/`
    the originals and the variants (step 6 reads that folder)."""
    m = AUG_RE.match(sample.id)
    if m is None:
        raise SampleError("UnknownUnit", f"{sample.id} is not <scene>_aug_<k>")
    scene_id, k = m["scene"], int(m["k"])
    original = held.scenes.read_bytes(f"{scene_id}.png")
    seed = sample.seed(held.editing.settings.seed)
    prompt = random.Random(seed).choice(held.prompts)
    png = held.editing.png(sample, original, prompt, seed, f"{scene_id}.png")
    sample.write(f"05_qwen_augmented_images/{sample.id}.png", png)
    sample.write(f"05_qwen_combined_images/{sample.id}.png", png)
    if k == 0:  # the original joins the combined folder once, with its first variant
        sample.write(f"05_qwen_combined_images/{scene_id}.png", original)
    sample.params["source"] = f"04_dataset/{scene_id}.png"
    sample.params["prompt"], sample.params["promptFiles"] = prompt, {"predefinedPrompts": held.prompt_file.source}


MARKERS_DIR = "_genfab/markers"


def step(name: str, load: Callable[[Any, StageContext], Any], make: Callable[[Any, Sample], None],
         marker_dir: str = MARKERS_DIR, finish: Callable[[Any, StageContext], None] | None = None
         ) -> SampleStage[Any, Any]:
    """A reference-object step: `pipeline_state.json` after each shard, and numbered folders that hold only
    what the current config made."""
    return SampleStage(name, load, make, marker_dir=marker_dir, finish=finish, after_shard=state_after_shard,
                       prunes_outputs=True)


WHITE_BACKGROUND_STAGE = step("white-background", lambda s, ctx: open_editor(s, ctx, camera_lora=step_one_lora(s)),
                              white_background, f"{MARKERS_DIR}/white-background")  # its output: the folder itself
PERSPECTIVES = step("perspectives", load_perspectives, perspective)
SCENES = step("scenes", load_scenes, scene, finish=publish_scenes)
QWEN_AUGMENTATION = step("qwen-augmentation", load_augmentation, augment,
                         f"{MARKERS_DIR}/qwen-augmentation")  # its outputs are two folders of the execution folder
