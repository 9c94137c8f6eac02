"""SEVA (Stable Virtual Camera, Stability AI) behind one narrow call: given posed input views and
target cameras, the generated target views.

SEVA is research code installed from its repository at a pinned commit by `images/seva/Dockerfile`;
this module imports it at run time (`seva.eval.run_one_scene` with SEVA's own model, autoencoder,
CLIP conditioner and denoiser, as its `demo.py` wires them) and is the only genfab code that knows
its interface. Its task is `img2trajvid` with procedural two-pass sampling (`use_traj_prior`,
`chunk_strategy: interp-gt`): anchors spread along the targets are generated first, then every
target between its nearest anchors. Cameras go in as OpenCV camera-to-world and pixel intrinsics
(SEVA's convention); the targets come back from `<work>/samples-rgb/NNN.png` in target order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genfab.stages.common.imaging import decode_rgb, encode_png
from genfab.stages.models.placement import Placement
from genfab.stages.runtime import BadInput, SampleError
from genfab.stages.worldexplorer.research import import_research

MODEL_VERSION = 1.1
CONTEXT = 21
"""SEVA's context window T (frames per forward pass), its released default."""
WEIGHTS = ("modelv1.1.safetensors", "model.safetensors")
"""The weights file in the model folder: the hub repository's name for version 1.1 first, then the
name SEVA's `load_model` uses for a local folder."""


@dataclass(frozen=True)
class PosedView:
    K: np.ndarray
    """3x3 pixel intrinsics."""
    cam_T_world: np.ndarray
    """4x4 world-to-camera (OpenCV axes)."""
    rgb: np.ndarray | None = None
    """(H, W, 3) uint8 for an input view, None for a target."""


def version_dict(side: int, steps: int, cfg: float, camera_scale: float) -> dict[str, Any]:
    """SEVA's sampling settings (its demo's defaults, with ours for size, steps, guidance and scale)."""
    return {"H": side, "W": side, "T": CONTEXT, "C": 4, "f": 8,
            "options": {"chunk_strategy": "interp-gt", "video_save_fps": 30.0, "beta_linear_start": 5e-6,
                        "log_snr_shift": 2.4, "guider_types": 1, "cfg": cfg, "camera_scale": camera_scale,
                        "num_steps": steps, "cfg_min": 1.2, "encoding_t": 1, "decoding_t": 1}}


class Seva:
    """SEVA loaded once per Pod; `__call__` per set of views."""

    def __init__(self, weights: Path, placement: Placement, steps: int, cfg: float, camera_scale: float) -> None:
        import torch

        utils = import_research("seva", "utils")
        model = import_research("seva", "model")
        autoencoder = import_research("seva", "modules.autoencoder")
        conditioner = import_research("seva", "modules.conditioner")
        sampling = import_research("seva", "sampling")
        self.eval = import_research("seva", "eval")
        self.torch = torch
        device = placement.device
        name = next((n for n in WEIGHTS if (weights / n).is_file()), None)
        if name is None:
            raise BadInput(f"SEVA weights: {weights} holds none of {', '.join(WEIGHTS)} (worldexplorer.seva.model "
                           "names a copy of stabilityai/stable-virtual-camera under the model location)")
        network = utils.load_model(model_version=MODEL_VERSION, pretrained_model_name_or_path=str(weights),
                                   weight_name=name, device="cpu", verbose=False)
        self.model = model.SGMWrapper(network.eval()).to(device)
        self.ae = autoencoder.AutoEncoder(chunk_size=1).to(device)
        self.conditioner = conditioner.CLIPConditioner().to(device)
        self.denoiser = sampling.DiscreteDenoiser(num_idx=1000, device=device)
        self.steps, self.cfg, self.camera_scale = steps, cfg, camera_scale

    def __call__(self, inputs: list[PosedView], targets: list[PosedView], seed: int, work: Path) -> list[np.ndarray]:
        """The target views, generated from the inputs (all views square, one size)."""
        torch = self.torch
        if not inputs or not targets:
            raise ValueError("SEVA needs at least one input view and one target")
        side = int(inputs[0].rgb.shape[0]) if inputs[0].rgb is not None else 0
        work.mkdir(parents=True, exist_ok=True)
        paths: list[str | None] = []
        for i, view in enumerate(inputs):
            assert view.rgb is not None
            path = work / f"input_{i:03d}.png"
            path.write_bytes(encode_png(view.rgb))
            paths.append(str(path))
        paths += [None] * len(targets)
        views = inputs + targets
        c2ws = torch.tensor(np.stack([np.linalg.inv(v.cam_T_world)[:3] for v in views]), dtype=torch.float32)
        Ks = torch.tensor(np.stack([v.K for v in views]), dtype=torch.float32)
        settings = version_dict(side, self.steps, self.cfg, self.camera_scale)
        n_in, n_out = len(inputs), len(targets)
        anchors = self.eval.infer_prior_stats(settings["T"], n_in, num_total_frames=n_out, version_dict=settings)
        picked = np.linspace(0, n_out - 1, anchors).round().astype(np.int64)
        out = work / "seva"
        for _ in self.eval.run_one_scene(
                "img2trajvid", settings, model=self.model, ae=self.ae, conditioner=self.conditioner,
                denoiser=self.denoiser,
                image_cond={"img": paths, "input_indices": list(range(n_in)),
                            "prior_indices": np.linspace(n_in, n_in + n_out - 1, anchors).tolist()},
                camera_cond={"c2w": c2ws, "K": Ks, "input_indices": list(range(n_in + n_out))},
                save_path=str(out), use_traj_prior=True, traj_prior_Ks=Ks[n_in:][picked],
                traj_prior_c2ws=c2ws[n_in:][picked], seed=seed):
            pass
        frames = sorted((out / "samples-rgb").glob("*.png"))
        if len(frames) != n_out:
            raise SampleError("SevaOutput", f"SEVA wrote {len(frames)} frames to samples-rgb/, expected {n_out}")
        return [decode_rgb(path.read_bytes()) for path in frames]
