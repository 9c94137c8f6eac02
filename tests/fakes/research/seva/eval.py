"""`seva.eval.infer_prior_stats` and `run_one_scene` with SEVA's signatures and output layout.

The stand-in checks what SEVA's code relies on (camera tensors of shape (N, 3, 4) and (N, 3, 3), one
image path per input and None per target, prior indices among the targets, a generator that saves
`samples-rgb/NNN.png` for the targets in order) and paints target k a flat colour: red = k, green =
the rounded yaw of its camera in degrees / 2, blue = 7. Calls are recorded in CALLS for the tests."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

CALLS: list[dict[str, Any]] = []


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
    assert all(isinstance(image_cond["img"][i], str) and os.path.isfile(image_cond["img"][i]) for i in inputs)
    targets = [i for i in range(n) if i not in inputs]
    assert all(image_cond["img"][i] is None for i in targets)
    assert all(min(targets) <= p <= max(targets) for p in image_cond["prior_indices"])
    if use_traj_prior:
        assert traj_prior_c2ws is not None and traj_prior_Ks is not None
        assert traj_prior_c2ws.shape[1:] == (3, 4) and len(traj_prior_Ks) == len(traj_prior_c2ws)
    CALLS.append({"task": task, "inputs": len(inputs), "targets": len(targets), "seed": seed,
                  "cfg": version_dict["options"]["cfg"], "steps": version_dict["options"]["num_steps"]})
    height, width = version_dict["H"], version_dict["W"]
    os.makedirs(os.path.join(save_path, "samples-rgb"), exist_ok=True)
    for k, i in enumerate(targets):
        forward = c2w[i, :, 2].numpy()
        yaw = math.degrees(math.atan2(float(forward[0]), float(forward[2]))) % 360
        colour = np.array([k % 256, round(yaw / 2) % 256, 7], np.uint8)
        path = os.path.join(save_path, "samples-rgb", f"{k:03d}.png")
        Image.fromarray(np.tile(colour, (height, width, 1))).save(path)
    yield os.path.join(save_path, "samples-rgb.mp4")
