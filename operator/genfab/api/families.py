"""Stage image families: one container image each (images/, the chart's `stages.images`).

Standard library only: images/build.sh loads this file by path, without installing genfab. A
pipeline's stages name their family; the families in use (`genfab.api.pipeline.used_families`)
are the ones at least one registered pipeline runs.
"""

from __future__ import annotations

FAMILIES: dict[str, str] = {
    "cv": "CPU computer-vision stages (OpenCV, albumentations).",
    "scene": "CUDA + torch + gsplat stages (3D Gaussian splatting, rendering).",
    "segment": "Segmentation and depth stages (transformers, SAM2/SAM3).",
    "diffusion": "Generative stages (diffusers, transformers, accelerate).",
}
"""Family name -> what its image holds (the ImageOverrides field docs)."""

TORCH_VERSION = "2.8.0"
"""The CUDA torch every GPU image pins (images/scene/Dockerfile's TORCH_VERSION default too). PyPI's
torch 2.8.0 for Linux x86_64 is the CUDA 12.8 build, the same as the PyTorch index's cu128 wheel."""

TORCHAO_VERSION = "0.14.1"
"""The torchao the torch images pin beside TORCH_VERSION (the images' TORCHAO_VERSION default too).
torchao is built for one torch release and declares no torch requirement, so the extras' `torchao>=0.14`
alone resolves to the newest: 0.18.0 under torch 2.8.0 breaks `import peft` (ImportError: cannot
import name 'ScalingType' from 'torch.nn.functional'). 0.14 is the first with the `Float8Tensor`
(`qdata`, `scale`) that genfab's FP8 paths read (genfab.stages.flux.fp8_mlp), so 0.13.0 (torchao's
release for torch 2.8) cannot serve; 0.14.1 under torch 2.8.0 says "Skipping import of cpp
extensions" at import: its FP8 dynamic quantisation is Python over `torch._scaled_mm` and needs none."""

TORCH_INDEX = "https://pypi.org/simple"
"""Where the images' torch comes from by default (images/build.sh --torch-index changes it, e.g. to
https://download.pytorch.org/whl/cu128 or a lab's mirror): PyPI, so that a build needs one index."""

TEMPLATE_IMAGES: dict[str, tuple[str, str, bool]] = {
    "cv": ("cv", "cv2, albumentations, openai, genfab.stages.runtime", False),
    "segment": ("segment", "torch, transformers, cv2, segment_anything, sam2, genfab.stages.relighting", True),
    "diffusion": ("diffusion", "torch, torchvision, diffusers, transformers, accelerate, peft, genfab.stages.runtime",
                  True),
}
"""Families built from images/stage/Dockerfile: (pyproject extra, smoke import, needs CUDA torch).
The others (scene: gsplat compiled ahead of time) have their own images/<family>/Dockerfile."""

RESEARCH_IMAGES: dict[str, str] = {
    "seva": "SEVA (Stable Virtual Camera): worldexplorer's single_image scaffold and img2trajvid frames.",
    "vggt": "VGGT: worldexplorer's expansion geometry.",
    "moge": "MoGe v1: vistadream's depth (depthBackend: moge).",
}
"""Research code that is not a package, installed at a pinned commit on top of a genfab image by
images/<name>/Dockerfile (images/build-research.sh) and imported by genfab's adapter at run time."""

TRAINER_IMAGES: dict[str, str] = {
    "difix3d": "Difix3D's src/train_difix.py: a TuningRun's custom `train` stage (the lab's DiFix trainer).",
}
"""A lab's own trainer (research code, not a package) at a pinned commit, its image's patches applied, on
top of a genfab image by images/<name>/Dockerfile (images/build-research.sh --<name>), with the source
record that names it (genfab.stages.tuning.provenance); genfab's wrapper launches it."""

CUSTOM_FAMILY = "custom"
"""The family of a custom stage (its own image)."""
