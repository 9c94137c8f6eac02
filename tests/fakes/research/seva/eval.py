"""`seva.eval.infer_prior_stats` and `run_one_scene` with SEVA's signatures and output layout.

The stand-in checks what SEVA's code relies on (camera tensors of shape (N, 3, 4) and (N, 3, 3), one
image path per input and None per target, or (H, W, 3) uint8 arrays for both, the targets' white;
prior indices among the targets, a generator whose
module-level `save_output` saves the first pass (unless `options.save_first_pass` is False) and then
the targets in order as `samples-rgb/NNN.png`, from (N, 3, H, W) samples in [-1, 1] under
`samples-rgb/image`) and paints target k a flat colour: red = k, green = the rounded yaw of its camera
in degrees / 2, blue = 7. Calls are recorded in CALLS, saves in SAVES and `load_model` calls in LOADS
for the tests."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

CALLS: list[dict[str, Any]] = []
SAVES: list[str] = []
LOADS: list[Any] = []
lowvram_mode = False


def load_model(model: Any, device: str = "cuda") -> None:
    """SEVA's: `model.to(device)`, called for each model before each chunk's use."""
    LOADS.append(model)


def save_output(samples: dict[str, Any], save_path: str, video_save_fps: float = 2) -> None:
    """SEVA's: every `name/image` entry as `save_path/name/NNN.png` (8-bit, SEVA's conversion; SEVA
    also writes `name.mp4`, which the stand-in leaves out)."""
    SAVES.append(save_path)
    for key, value in samples.items():
        name, media = key.split("/")
        assert media == "image", key
        pixels = ((value.permute(0, 2, 3, 1) + 1) / 2.0 * 255).clamp(0, 255).to(torch.uint8).numpy()
        os.makedirs(os.path.join(save_path, name), exist_ok=True)
        for i, frame in enumerate(pixels):
            Image.fromarray(frame).save(os.path.join(save_path, name, f"{i:03d}.png"))


def infer_prior_stats(T: Any, num_input_frames: int, num_total_frames: int, version_dict: dict[str, Any]) -> int:
    t = T[0] if isinstance(T, (list, tuple)) else T
    return max(1, min(num_total_frames, math.ceil(num_total_frames / max(1, t - 2 - num_input_frames)) + 1))


def run_one_scene(task: str, version_dict: dict[str, Any], model: Any, ae: Any, conditioner: Any, denoiser: Any,
                  image_cond: dict[str, Any], camera_cond: dict[str, Any], save_path: str, use_traj_prior: bool,
                  traj_prior_Ks: torch.Tensor | None, traj_prior_c2ws: torch.Tensor | None, seed: int = 23,
                  **_: Any) -> Iterator[str]:
    c2w, K = camera_cond["c2w"], camera_cond["K"]
    n = len(image_cond["img"])
    assert task in ("img2img", "img2vid", "img2trajvid", "img2trajvid_s-prob"), task
    assert tuple(c2w.shape) == (n, 3, 4) and tuple(K.shape) == (n, 3, 3), (c2w.shape, K.shape)
    inputs = image_cond["input_indices"]
    images = image_cond["img"]
    targets = [i for i in range(n) if i not in inputs]
    if all(isinstance(image, np.ndarray) for image in images):
        assert all(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 for image in images)
        assert all((images[i] == 255).all() for i in targets)  # what SEVA makes of None: white
    else:
        assert all(isinstance(images[i], str) and os.path.isfile(images[i]) for i in inputs)
        assert all(images[i] is None for i in targets)
    for part in (model, ae, conditioner):
        load_model(part)
    assert all(min(targets) <= p <= max(targets) for p in image_cond["prior_indices"])
    if use_traj_prior:
        assert traj_prior_c2ws is not None and traj_prior_Ks is not None
        assert traj_prior_c2ws.shape[1:] == (3, 4) and len(traj_prior_Ks) == len(traj_prior_c2ws)
    CALLS.append({"task": task, "inputs": len(inputs), "targets": len(targets), "seed": seed,
                  "arrays": isinstance(images[0], np.ndarray),
                  "cfg": version_dict["options"]["cfg"], "steps": version_dict["options"]["num_steps"]})
    height, width = version_dict["H"], version_dict["W"]
    frames = []
    for k, i in enumerate(targets):
        forward = c2w[i, :, 2].numpy()
        yaw = math.degrees(math.atan2(float(forward[0]), float(forward[2]))) % 360
        colour = torch.tensor([k % 256, round(yaw / 2) % 256, 7], dtype=torch.float32)
        # in [-1, 1], half a level above the colour: SEVA's conversion truncates back to it
        frames.append(((colour + 0.5) / 255 * 2 - 1).view(3, 1, 1).expand(3, height, width))
    samples = {"samples-rgb/image": torch.stack(frames)}
    if version_dict["options"].get("save_first_pass", True):
        save_output({"samples-rgb/image": samples["samples-rgb/image"][:1]}, os.path.join(save_path, "first-pass"))
        yield os.path.join(save_path, "first-pass", "samples-rgb.mp4")
    save_output(samples, save_path=save_path)
    yield os.path.join(save_path, "samples-rgb.mp4")
