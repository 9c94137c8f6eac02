"""The lab trainer's models by hub name, from the model location: Difix3D's `Difix()` loads
`stabilityai/sd-turbo` with `from_pretrained(<hub name>, subfolder=...)` and VGG16 from torch's hub; the
wrapper lays the model location's copies out as those caches, and they load offline here through
transformers' and diffusers' own loaders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from scripts.tiny_models import save_tiny_difix  # noqa: E402

from genfab.stages.tuning.lab import HUB_BASE, hub_cache, torch_hub_checkpoint  # noqa: E402
from genfab.stages.tuning.perceptual import save_random_perceptual  # noqa: E402

LOAD = """
from transformers import AutoTokenizer, CLIPTextModel
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
name = "stabilityai/sd-turbo"
print(type(AutoTokenizer.from_pretrained(name, subfolder="tokenizer")).__name__)
CLIPTextModel.from_pretrained(name, subfolder="text_encoder")
DDPMScheduler.from_pretrained(name, subfolder="scheduler")
AutoencoderKL.from_pretrained(name, subfolder="vae")
UNet2DConditionModel.from_pretrained(name, subfolder="unet")
print("loaded offline")
"""


def test_sd_turbo_loads_by_its_hub_name_offline(tmp_path: Path) -> None:
    folder = save_tiny_difix(tmp_path / "models", model_id=HUB_BASE)
    home = hub_cache(tmp_path / "hf", HUB_BASE, folder)
    assert hub_cache(tmp_path / "hf", HUB_BASE, folder) == home  # a restarted Pod lays it out again
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["CLIPTokenizer", "loaded", "offline"]


def test_without_the_hubs_record_of_what_sd_turbo_lacks_the_tokenizer_does_not_load(tmp_path: Path) -> None:
    """The `.no_exist` records are what one online load leaves: transformers 5 asks for the tokenizer
    folder's model config, which SD-Turbo's repository does not have."""
    folder = save_tiny_difix(tmp_path / "models", model_id=HUB_BASE)
    home = hub_cache(tmp_path / "hf", HUB_BASE, folder)
    for marker in (home / "hub").rglob(".no_exist"):
        shutil.rmtree(marker)
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and done.stdout == ""  # the first loader, the tokenizer's, failed


def test_vgg16_in_torchs_hub_cache(tmp_path: Path) -> None:
    # torchvision's layout, classifier included (small widths: the link is what is tested here; the full
    # size loads in torchvision's vgg16 on the GPU tier, tests/gpu/test_difix3d_trainer_gpu.py)
    tiny = [4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    whole = save_random_perceptual(tmp_path / "whole", tiny)
    state = torch.load(whole / "vgg16.pth", weights_only=True)
    state.update({"classifier.6.weight": torch.zeros(10, 4), "classifier.6.bias": torch.zeros(10)})
    torch.save(state, whole / "vgg16.pth")
    home = torch_hub_checkpoint(tmp_path / "torch", whole)
    assert home is not None
    cached = home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert cached.resolve() == (whole / "vgg16.pth").resolve()
    # what torchvision's vgg16(pretrained=True) calls (VGG16_Weights.IMAGENET1K_V1.get_state_dict): the cached
    # file, no download
    env = {**os.environ, "TORCH_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", "import torch; sd = torch.hub.load_state_dict_from_url("
                           "'https://download.pytorch.org/models/vgg16-397923af.pth', check_hash=True); "
                           "print('classifier.6.weight' in sd, tuple(sd['features.0.weight'].shape))"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "(4,", "3,", "3,", "3)"]
    features_only = save_random_perceptual(tmp_path / "tiny", tiny)
    assert torch_hub_checkpoint(tmp_path / "torch2", features_only) is None
    assert torch_hub_checkpoint(tmp_path / "torch3", tmp_path) is None  # no config.json
