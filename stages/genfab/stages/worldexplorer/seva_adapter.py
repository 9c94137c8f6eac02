"""SEVA (Stable Virtual Camera, Stability AI) behind one narrow call: given posed input views and
target cameras, the generated target views.

SEVA is research code installed from its repository at a pinned commit by `images/seva/Dockerfile`;
this module imports it at run time (`seva.eval.run_one_scene` with SEVA's own model, autoencoder,
CLIP conditioner and denoiser, as its `demo.py` wires them) and is the only genfab code that knows
its interface. SEVA's `AutoEncoder` and `CLIPConditioner` fetch their weights from the hub when
built (Stable Diffusion 2.1's VAE, open_clip's ViT-H-14): genfab builds them as SEVA's classes with
the weights from the model location instead (`seva.vaeModel`, `seva.clipModel`), so a Pod needs no
network. Its task is `img2trajvid` with procedural two-pass sampling (`use_traj_prior`,
`chunk_strategy: interp-gt`): anchors spread along the targets are generated first, then every
target between its nearest anchors. Cameras go in as OpenCV camera-to-world and pixel intrinsics
(SEVA's convention). The targets come back in target order as the 8-bit frames SEVA's `save_output`
would write to `<work>/samples-rgb/NNN.png`.

By default (`in_memory`) nothing goes through files, with the same pixels: the input views go to
SEVA as arrays (its `run_one_scene` takes an (H, W, 3) uint8 array where its demo passes a PNG's path,
and a white one where it passes None for a target, which is what it makes of None), the final frames
come back from its `save_output` call instead of its PNGs and mp4s, and its per-chunk
`load_model` (a `.to("cuda")` walk over every module of the network, autoencoder and conditioner,
four times per chunk, which moves nothing when everything is already on the GPU and SEVA's low-VRAM
mode is off) is skipped. `in_memory = False` runs SEVA as its own `img2trajvid` does: PNG paths in,
files written and the PNGs read back (benchmarks/seva_speed.py's baseline).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genfab.api.scenejob import SevaModelConfig, SevaRuntime
from genfab.stages.common.imaging import decode_rgb, encode_png
from genfab.stages.models.base import ModelSet
from genfab.stages.models.placement import Placement
from genfab.stages.models.research import import_research, provenance
from genfab.stages.runtime import BadInput, SampleError

MODEL_VERSION = 1.1
CONTEXT = 21
"""SEVA's context window T (frames per forward pass), its released default."""
WEIGHTS = ("modelv1.1.safetensors", "model.safetensors")
"""The weights file in the model folder: the hub repository's name for version 1.1 first, then the
name SEVA's `load_model` uses for a local folder."""
CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
"""open_clip's weights files in a hub repository such as laion/CLIP-ViT-H-14-laion2B-s32B-b79K."""
CLIP_ARCHITECTURE = "ViT-H-14"
"""The open_clip architecture SEVA's conditioner builds."""


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


def without_constructor(cls: Any) -> Any:
    """An instance of one of SEVA's torch modules whose constructor would download weights: the
    module's own state set up, the rest left to the caller."""
    import torch

    instance = cls.__new__(cls)
    torch.nn.Module.__init__(instance)
    return instance


def seva_autoencoder(path: Path, placement: Placement) -> Any:
    """SEVA's `AutoEncoder` (its encode/decode, scale factor and chunking) around the Stable Diffusion
    2.1 VAE in `path/vae` (a model folder) instead of the one its constructor downloads."""

    module = import_research("seva", "modules.autoencoder")

    ae = without_constructor(module.AutoEncoder)
    ae.module = module.AutoencoderKL.from_pretrained(path, subfolder="vae").eval().requires_grad_(False)
    ae.chunk_size = 1
    return placement.place(ae)


def seva_conditioner(path: Path, placement: Placement) -> Any:
    """SEVA's `CLIPConditioner` (its preprocessing and encode_image) around open_clip's ViT-H-14 built
    from the weights in `path` instead of the ones its constructor downloads."""
    import torch

    module = import_research("seva", "modules.conditioner")
    open_clip = module.open_clip
    weights = next((path / n for n in CLIP_WEIGHTS if (path / n).is_file()), None)
    if weights is None:
        raise BadInput(f"SEVA's CLIP conditioner: {path} holds none of {', '.join(CLIP_WEIGHTS)} "
                       "(worldexplorer.seva.clipModel names a copy of laion/CLIP-ViT-H-14-laion2B-s32B-b79K)")

    conditioner = without_constructor(module.CLIPConditioner)
    clip = open_clip.create_model_and_transforms(CLIP_ARCHITECTURE, pretrained=str(weights))[0]
    conditioner.module = clip.eval().requires_grad_(False)
    # CLIP's normalisation: the constants SEVA's constructor registers (open_clip's OpenAI ones).
    conditioner.register_buffer("mean", torch.tensor(open_clip.OPENAI_DATASET_MEAN), persistent=False)
    conditioner.register_buffer("std", torch.tensor(open_clip.OPENAI_DATASET_STD), persistent=False)
    return placement.place(conditioner)


def load_seva(models: ModelSet, settings: SevaModelConfig) -> Seva:
    """SEVA and the two models it runs with, each loaded (and recorded) from the model location."""
    ae = models.load("seva-autoencoder", settings.vae_model, seva_autoencoder)
    conditioner = models.load("seva-conditioner", settings.clip_model, seva_conditioner, CLIP_WEIGHTS)
    return models.load("seva", settings.model, lambda path, placement: Seva(
        path, placement, ae, conditioner, settings.steps, settings.cfg, settings.camera_scale, settings.runtime))


class Seva:
    """SEVA loaded once per Pod; `__call__` per set of views."""

    def __init__(self, weights: Path, placement: Placement, ae: Any, conditioner: Any, steps: int, cfg: float,
                 camera_scale: float, runtime: SevaRuntime | None = None) -> None:
        import torch

        from genfab.stages.worldexplorer import seva_speed

        utils = import_research("seva", "utils")
        model = import_research("seva", "model")
        sampling = import_research("seva", "sampling")
        self.eval = import_research("seva", "eval")
        self.source = provenance("seva")
        """Which SEVA code this is (its commit), for producedBy."""
        self.torch = torch
        device = placement.device
        name = next((n for n in WEIGHTS if (weights / n).is_file()), None)
        if name is None:
            raise BadInput(f"SEVA weights: {weights} holds none of {', '.join(WEIGHTS)} (worldexplorer.seva.model "
                           "names a copy of stabilityai/stable-virtual-camera under the model location)")
        network = utils.load_model(model_version=MODEL_VERSION, pretrained_model_name_or_path=str(weights),
                                   weight_name=name, device="cpu", verbose=False)
        self.model = model.SGMWrapper(network.eval()).to(device)
        self.applied: list[str] = seva_speed.apply(self.model.module, runtime or SevaRuntime(), device, ae)
        """The speed options applied (`sevaRuntime` in each sample's marker)."""
        self.ae, self.conditioner = ae, conditioner
        self.denoiser = sampling.DiscreteDenoiser(num_idx=1000, device=device)
        self.steps, self.cfg, self.camera_scale = steps, cfg, camera_scale
        self.in_memory = True
        """Views in and frames out in memory, no files (the same pixels; the module's docstring);
        False: SEVA's own paths in, its writes and a read back (benchmarks/seva_speed.py's baseline)."""

    def __call__(self, inputs: list[PosedView], targets: list[PosedView], seed: int, work: Path) -> list[np.ndarray]:
        """The target views, generated from the inputs (all views square, one size)."""
        torch = self.torch
        if not inputs or not targets:
            raise ValueError("SEVA needs at least one input view and one target")
        side = int(inputs[0].rgb.shape[0]) if inputs[0].rgb is not None else 0
        work.mkdir(parents=True, exist_ok=True)
        images: list[Any] = (self.in_memory_images(inputs, targets, side) if self.in_memory
                             else self.image_files(inputs, targets, work))
        views = inputs + targets
        c2ws = torch.tensor(np.stack([np.linalg.inv(v.cam_T_world)[:3] for v in views]), dtype=torch.float32)
        Ks = torch.tensor(np.stack([v.K for v in views]), dtype=torch.float32)
        settings = version_dict(side, self.steps, self.cfg, self.camera_scale)
        n_in, n_out = len(inputs), len(targets)
        anchors = self.eval.infer_prior_stats(settings["T"], n_in, num_total_frames=n_out, version_dict=settings)
        picked = np.linspace(0, n_out - 1, anchors).round().astype(np.int64)
        out = work / "seva"
        if self.in_memory:
            settings["options"]["save_first_pass"] = False  # SEVA's option: the anchors' mp4 and PNGs
        with final_samples(self.eval, out, keep=self.in_memory) as kept, resident(self.eval, self.in_memory):
            for _ in self.eval.run_one_scene(
                    "img2trajvid", settings, model=self.model, ae=self.ae, conditioner=self.conditioner,
                    denoiser=self.denoiser,
                    image_cond={"img": images, "input_indices": list(range(n_in)),
                                "prior_indices": np.linspace(n_in, n_in + n_out - 1, anchors).tolist()},
                    camera_cond={"c2w": c2ws, "K": Ks, "input_indices": list(range(n_in + n_out))},
                    save_path=str(out), use_traj_prior=True, traj_prior_Ks=Ks[n_in:][picked],
                    traj_prior_c2ws=c2ws[n_in:][picked], seed=seed):
                pass
        if self.in_memory:
            frames = as_written(kept.get(RGB))
        else:
            frames = [decode_rgb(path.read_bytes()) for path in sorted((out / "samples-rgb").glob("*.png"))]
        if len(frames) != n_out:
            raise SampleError("SevaOutput", f"SEVA gave {len(frames)} frames, expected {n_out}")
        return frames


    @staticmethod
    def image_files(inputs: list[PosedView], targets: list[PosedView], work: Path) -> list[str | None]:
        """As SEVA's demo hands views to `run_one_scene`: a PNG's path per input, None per target."""
        paths: list[str | None] = []
        for i, view in enumerate(inputs):
            assert view.rgb is not None
            path = work / f"input_{i:03d}.png"
            path.write_bytes(encode_png(view.rgb))
            paths.append(str(path))
        return paths + [None] * len(targets)

    @staticmethod
    def in_memory_images(inputs: list[PosedView], targets: list[PosedView], side: int) -> list[np.ndarray]:
        """The same views as arrays: each input's pixels, and for every target one white image (SEVA
        turns None into a transparent image composited on white: 1.0 everywhere, as 255 gives)."""
        blank = np.full((side, side, 3), 255, np.uint8)
        arrays = []
        for view in inputs:
            assert view.rgb is not None  # an input view has pixels (as in image_files)
            arrays.append(np.ascontiguousarray(view.rgb))
        return arrays + [blank] * len(targets)


RGB = "samples-rgb/image"
"""The key of the generated frames in what SEVA's `run_one_scene` hands its `save_output`."""


@contextmanager
def final_samples(eval_module: Any, final: Path, keep: bool) -> Iterator[dict[str, Any]]:
    """With `keep`, SEVA's `save_output` (looked up in its module by `run_one_scene` on each call) is
    replaced for the duration: the call that saves the final samples to `final` hands them here
    instead of writing files, and the others write nothing. Without `keep`, SEVA writes as it does."""
    kept: dict[str, Any] = {}
    if not keep:
        yield kept
        return

    def save_output(samples: dict[str, Any], save_path: str, video_save_fps: float = 2) -> None:
        if os.path.normpath(save_path) == os.path.normpath(final):
            kept.update(samples)

    with swapped(eval_module, "save_output", save_output):
        yield kept


@contextmanager
def resident(eval_module: Any, skip: bool) -> Iterator[None]:
    """With `skip` (and SEVA's low-VRAM mode off), SEVA's `load_model` does nothing for the duration:
    the models already sit on the GPU, and its `.to("cuda")` walk over every module costs about a
    second per sample on the host while moving nothing."""
    if not skip or getattr(eval_module, "lowvram_mode", False):
        yield
        return
    with swapped(eval_module, "load_model", lambda model, device="cuda": None):
        yield


@contextmanager
def swapped(module: Any, name: str, value: Any) -> Iterator[None]:
    """`module.<name>` is `value` for the duration: SEVA's `run_one_scene` looks its helpers up in its
    module on every call, so this reaches it without editing SEVA's source."""
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def as_written(samples: Any) -> list[np.ndarray]:
    """SEVA's frames ((N, 3, H, W) in [-1, 1]) as its `save_output` writes them to 8-bit PNGs: the
    same conversion, so the frames are those files' pixels exactly."""
    if samples is None:
        raise SampleError("SevaOutput", f"SEVA saved no {RGB!r} samples")
    import torch

    value = torch.as_tensor(samples).detach().cpu()
    value = ((value.permute(0, 2, 3, 1) + 1) / 2.0 * 255).clamp(0, 255).to(torch.uint8)
    return [np.ascontiguousarray(frame) for frame in value.numpy()]
