"""The perceptual networks of Difix3D's losses: VGG16 features (LPIPS and the Gram loss) and the
LPIPS v0.1 linear heads, built from weight files rather than downloaded.

The model folder (`perceptualModel` under the model location) holds a `config.json` naming two
files: `vgg16` (torchvision's `vgg16-397923af.pth`, or any state dict with its `features.N.*` keys)
and `lpips` (the `lpips` package's `weights/v0.1/vgg.pth`). The architecture is read from the
weights' shapes, so the tiny test weights load through the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genfab.stages.models.lpips import LpipsHeads, TappedFeatures, load_heads, weight_files

POOLS = (4, 9, 16, 23, 30)
"""torchvision VGG16 `features` indices of the max-pools (configuration D)."""
LPIPS_TAPS = (3, 8, 15, 22, 29)
"""ReLU outputs LPIPS compares (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3); Difix3D's Gram loss
uses the same layers."""
GRAM_WEIGHTS = (1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10.0 / 1.5)
"""Difix3D's per-layer Gram loss weights, relu1_2 .. relu5_3."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Vgg16Features(TappedFeatures):
    """torchvision's `vgg16().features` (same module indices, so its state dict loads as is),
    returning the five LPIPS taps."""

    TAPS = LPIPS_TAPS

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, convs = 3, iter(widths)
        for i in range(31):
            if i in POOLS:
                layers.append(nn.MaxPool2d(2, 2))
            elif not layers or isinstance(layers[-1], (nn.MaxPool2d, nn.ReLU)):
                c_out = next(convs)
                layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                c_in = c_out
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)


def conv_widths(state: dict[str, torch.Tensor]) -> list[int]:
    """The 13 conv output widths of a VGG16 `features` state dict."""
    keys = sorted((int(k.split(".")[1]), k) for k in state if k.startswith("features.") and k.endswith(".weight"))
    widths = [int(state[k].shape[0]) for _, k in keys]
    if len(widths) != 13:
        raise ValueError(f"expected the 13 conv layers of VGG16 features, found {len(widths)}")
    return widths


class Perceptual(LpipsHeads):
    """LPIPS (VGG, v0.1) and the Gram loss over one frozen VGG16."""

    def __init__(self, vgg: Vgg16Features, heads: list[torch.Tensor]) -> None:
        super().__init__(heads)
        self.vgg = vgg
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def lpips(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS of [B, 3, H, W] images in [-1, 1] -> [B]."""
        return self.distance(self.vgg, a, b)

    def gram(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Difix3D's Gram (style) loss of [B, 3, H, W] images in [-1, 1], per image Gram matrices
        (Difix3D trains with one image per GPU, where both agree) averaged over the batch."""
        n = a.shape[0]
        x = torch.cat([a, b]) * 0.5 + 0.5
        taps = self.vgg((x - self.mean) / self.std)
        total = a.new_zeros((), dtype=torch.float32)
        for tap, weight in zip(taps, GRAM_WEIGHTS, strict=True):
            _, d, h, w = tap.shape
            f = tap.float().flatten(2)                      # [2B, d, hw]
            g = torch.bmm(f, f.transpose(1, 2))             # [2B, d, d]
            total = total + weight * (g[:n] - g[n:]).pow(2).mean() / (d * h * w)
        return total


@dataclass(frozen=True)
class PerceptualFiles:
    vgg16: Path
    lpips: Path


def perceptual_files(folder: Path) -> PerceptualFiles:
    """The two weight files a perceptual model folder names in its `config.json`."""
    return PerceptualFiles(*weight_files(folder, ("vgg16", "lpips")))


def load_perceptual(folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
                    ) -> Perceptual:
    """The frozen perceptual networks from a model folder."""
    files = perceptual_files(folder)
    vgg_state = torch.load(files.vgg16, map_location="cpu", weights_only=True)
    features = {k: v for k, v in vgg_state.items() if k.startswith("features.")}
    vgg = Vgg16Features(conv_widths(features))
    vgg.load_state_dict(features)
    return Perceptual(vgg, load_heads(files.lpips, len(LPIPS_TAPS))).to(device=device, dtype=dtype)


VGG16_CLASSIFIER = {"classifier.0": (4096, 512 * 7 * 7), "classifier.3": (4096, 4096), "classifier.6": (1000, 4096)}
"""torchvision VGG16's classifier (linear layers: out, in), which its `vgg16-397923af.pth` holds beside the features."""


def save_random_perceptual(folder: Path, widths: list[int] | None = None, seed: int = 0) -> Path:
    """Random VGG16 + LPIPS weights in the layout `load_perceptual` reads (tests, tiny models,
    benchmarks at full size with `widths` None). At full size the VGG16 file is torchvision's whole
    `vgg16-397923af.pth` layout, classifier included (what `torchvision.models.vgg16(pretrained=True)` loads:
    the lab's Difix3D trainer reads it from torch's hub cache), though only the features are used."""
    torch.manual_seed(seed)
    full = widths is None
    widths = widths or [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    vgg = Vgg16Features(widths)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in vgg.state_dict().items()}
    if full:
        for name, (out, inp) in VGG16_CLASSIFIER.items():
            state[f"{name}.weight"] = torch.randn(out, inp) * 0.01
            state[f"{name}.bias"] = torch.zeros(out)
    torch.save(state, folder / "vgg16.pth")
    taps = [widths[1], widths[3], widths[6], widths[9], widths[12]]
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) / c for i, c in enumerate(taps)},
               folder / "lpips_vgg_v0.1.pth")
    (folder / "config.json").write_text(json.dumps({"vgg16": "vgg16.pth", "lpips": "lpips_vgg_v0.1.pth"}))
    return folder


def l2_lpips_gram(pred: torch.Tensor, target: torch.Tensor, net: Perceptual, lambdas: tuple[float, float, float],
                  gram_on: bool, crop: tuple[int, int, int, int] | None) -> dict[str, torch.Tensor]:
    """Difix3D's training loss on [N, 3, H, W] images in [-1, 1]: L2 + LPIPS, plus the Gram loss on
    one crop (`crop` = top, left, height, width; None: the whole image) once `gram_on`."""
    l2_w, lpips_w, gram_w = lambdas
    losses = {"l2": F.mse_loss(pred.float(), target.float()) * l2_w,
              "lpips": net.lpips(pred.float(), target.float()).mean() * lpips_w}
    if gram_w > 0 and gram_on:
        p, t = pred, target
        if crop is not None:
            top, left, h, w = crop
            p, t = p[..., top:top + h, left:left + w], t[..., top:top + h, left:left + w]
        losses["gram"] = net.gram(p, t) * gram_w
    losses["total"] = sum(losses.values(), pred.new_zeros((), dtype=torch.float32))
    return losses
