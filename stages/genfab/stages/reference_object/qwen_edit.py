"""Qwen Image Edit for reference-object's steps 1, 2, 4 and 5: diffusers' pipeline loaded from the
model location with `from_pretrained` (the folder's `model_index.json` picks `QwenImageEditPipeline`
or the 2509/2511 `QwenImageEditPlusPipeline`; a bitsandbytes-quantised export such as the default
`ovedrive/qwen-image-edit-4bit` loads quantised, as saved, when bitsandbytes is in the image), and
a LoRA (the multi-camera one) through diffusers' LoRA loading.

Every edit is one call: the input image, the instruction, true CFG against a blank negative prompt
(`trueCfgScale`, 1 = off), `steps`, and a generator seeded per image. A call that raises or returns
a blank image (NaN or one flat colour) is tried again with the next seed, `maxRetries` times."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genfab.stages.models.placement import Placement
from genfab.stages.runtime import FatalError, SampleError, retry_seed
from genfab.stages.runtime.pictures import open_image

log = logging.getLogger("genfab.stages")
NEGATIVE = " "
"""The blank negative prompt diffusers' Qwen Image Edit examples use for true CFG."""
LORA_MARKERS = ("pytorch_lora_weights.safetensors", "README.md", "adapter_config.json")
"""What makes a local folder a LoRA repository (hub LoRAs ship a model card and one .safetensors)."""


def load_pipeline(path: Path, placement: Placement) -> Any:
    from diffusers import DiffusionPipeline

    pipe: Any = DiffusionPipeline.from_pretrained(path, dtype=placement.dtype)  # type: ignore[no-untyped-call]
    if type(pipe).__name__ not in ("QwenImageEditPipeline", "QwenImageEditPlusPipeline"):
        raise SampleError("WrongModel", f"{path} holds a {type(pipe).__name__}, not a Qwen Image Edit pipeline")
    pipe.set_progress_bar_config(disable=True)
    return placement.place(pipe)


def lora_file(folder: Path) -> str:
    """The LoRA's weight file in its folder: `pytorch_lora_weights.safetensors`, else the only
    `.safetensors` there."""
    if (folder / "pytorch_lora_weights.safetensors").is_file():
        return "pytorch_lora_weights.safetensors"
    found = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(found) != 1:
        raise FileNotFoundError(f"{folder}: expected one .safetensors LoRA file, found {found or 'none'}")
    return found[0]


def load_lora(pipe: Any, folder: Path, adapter: str = "camera") -> None:
    pipe.load_lora_weights(str(folder), weight_name=lora_file(folder), adapter_name=adapter)


def fuse_lora(pipe: Any) -> None:
    """Merge the loaded LoRA into the transformer's weights and drop its layers: no extra matmuls per
    edit, and plain linear layers for `editRuntime` (FP8, compilation). A quantised (bitsandbytes)
    transformer keeps the LoRA as separate layers."""
    from genfab.stages.reference_object.edit_speed import quantised

    if not quantised(pipe.transformer):
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()


def blank(image: Image.Image) -> bool:
    arr = np.asarray(image, dtype=np.float32)
    return bool(not np.isfinite(arr).all() or arr.std() < 1e-3)


@dataclass
class Editor:
    pipe: Any
    steps: int
    true_cfg_scale: float
    retries: int

    def edit_once(self, image: Image.Image, prompt: str, seed: int) -> Image.Image:
        import torch

        from genfab.stages.reference_object.edit_speed import reset

        generator = torch.Generator(device="cpu").manual_seed(seed)
        reset(self.pipe.transformer)
        plus = type(self.pipe).__name__ == "QwenImageEditPlusPipeline"
        out = self.pipe(image=[image] if plus else image, prompt=prompt,
                        negative_prompt=NEGATIVE if self.true_cfg_scale > 1 else None,
                        true_cfg_scale=self.true_cfg_scale, num_inference_steps=self.steps, generator=generator)
        result: Image.Image = out.images[0]
        return result

    def edit(self, image: Image.Image, prompt: str, seed: int, key: str = "") -> tuple[Image.Image, dict[str, Any]]:
        """The edited image and how it was made (`seed` actually used, attempts). A retry's seed is
        `retry_seed(seed, attempt, key)`: `key` names the output, so no retry reuses another's seed."""
        errors: list[str] = []
        for attempt in range(self.retries + 1):
            used = retry_seed(seed, attempt, key)
            try:
                result = self.edit_once(image, prompt, used)
            except MemoryError:
                raise
            except Exception as exc:  # CUDA errors and the like: tried again, then recorded
                if "out of memory" in str(exc).lower():
                    raise FatalError(f"Qwen Image Edit ran out of GPU memory: {exc}") from None
                errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                continue
            if blank(result):
                errors.append("blank image")
                continue
            return result, {"seed": used, "attempts": attempt + 1, **({"errors": errors} if errors else {})}
        raise SampleError("EditFailed", f"{self.retries + 1} attempts failed: {'; '.join(errors)}")


def decode(data: bytes, what: str) -> Image.Image:
    """An image to edit, upright, as the decoding policy opens it (`Empty`, `Unreadable`, `TooLarge`)."""
    return open_image(data, what)
