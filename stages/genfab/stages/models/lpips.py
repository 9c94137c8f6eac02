"""LPIPS v0.1 (Zhang et al. 2018) from weight files in the model location, never from the network.

The distance is the `lpips` package's: inputs in [-1, 1] pass its scaling layer, each tapped feature
map is unit-normalised over channels, the squared difference is weighted per channel by the linear
head and averaged over space, and the layers are summed. Two backbones use it: AlexNet (3DGS
evaluation, as the 3DGS papers and gsplat's simple trainer report it) and VGG16 (Difix3D's training
loss, `genfab.stages.tuning.perceptual`).

An AlexNet LPIPS model folder (`gaussians.lpipsModel`) holds a `config.json` naming two files:
`alexnet` (torchvision's `alexnet-owt-7be5be79.pth`, or any state dict with its `features.N.*` keys)
and `lpips` (the `lpips` package's `weights/v0.1/alex.pth`, which torchmetrics also ships). The conv
widths are read from the weights' shapes, so tiny test weights load through the same code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""LPIPS' input scaling layer (its inputs are in [-1, 1])."""
ALEX_CONVS = ((11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1))
"""torchvision AlexNet's conv layers: (kernel, stride, padding)."""
ALEX_CONV_INDICES = (0, 3, 6, 8, 10)
ALEX_POOL_INDICES = (2, 5)
ALEX_TAPS = (1, 4, 7, 9, 11)
"""`features` indices of the ReLUs LPIPS compares (relu1 .. relu5)."""
ALEX_WIDTHS = (64, 192, 384, 256, 256)


def lpips_distance(taps_a: Sequence[torch.Tensor], taps_b: Sequence[torch.Tensor],
                   heads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image LPIPS from the tapped features of both images ([B, C, h, w] each) -> [B]."""
    total = taps_a[0].new_zeros(taps_a[0].shape[0], dtype=torch.float32)
    for fa, fb, head in zip(taps_a, taps_b, heads, strict=True):
        fa, fb = fa.float(), fb.float()
        fa = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        fb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + ((fa - fb).pow(2) * head.float().reshape(1, -1, 1, 1)).sum(1).mean((1, 2))
    return total


class TappedFeatures(nn.Module):
    """A torchvision `features` Sequential (subclasses build it) returning the outputs at `TAPS`."""

    TAPS: tuple[int, ...] = ()
    features: nn.Sequential

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                taps.append(x)
            if i == self.TAPS[-1]:
                break
        return taps


class AlexNetFeatures(TappedFeatures):
    """torchvision's `alexnet().features` up to relu5 (same module indices, so its state dict loads
    as is), returning the five LPIPS taps."""

    TAPS = ALEX_TAPS

    def __init__(self, widths: Sequence[int] = ALEX_WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, convs = 3, iter(zip(widths, ALEX_CONVS, strict=True))
        for i in range(ALEX_TAPS[-1] + 1):
            if i in ALEX_POOL_INDICES:
                layers.append(nn.MaxPool2d(3, 2))
            elif i in ALEX_CONV_INDICES:
                c_out, (k, stride, pad) = next(convs)
                layers.append(nn.Conv2d(c_in, c_out, k, stride, pad))
                c_in = c_out
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)


class LpipsHeads(nn.Module):
    """LPIPS' input scaling and linear heads over a frozen backbone's taps (subclasses add the backbone)."""

    def __init__(self, heads: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.heads = nn.ParameterList([nn.Parameter(h.reshape(1, -1, 1, 1), requires_grad=False) for h in heads])
        self.shift: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def distance(self, backbone: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS of [B, 3, H, W] images in [-1, 1] through `backbone`'s taps -> [B]."""
        n = a.shape[0]
        taps = backbone(torch.cat([(a - self.shift) / self.scale, (b - self.shift) / self.scale]))
        return lpips_distance([t[:n] for t in taps], [t[n:] for t in taps], list(self.heads))


class AlexNetLpips(LpipsHeads):
    """LPIPS (AlexNet, v0.1), frozen."""

    def __init__(self, net: AlexNetFeatures, heads: Sequence[torch.Tensor]) -> None:
        super().__init__(heads)
        self.net = net
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS of [B, 3, H, W] images in [0, 1] -> [B]."""
        return self.distance(self.net, a.clamp(0, 1) * 2 - 1, b.clamp(0, 1) * 2 - 1)


def weight_files(folder: Path, names: tuple[str, str]) -> tuple[Path, Path]:
    """The two weight files a perceptual model folder's `config.json` names (`names`: its keys)."""
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
        files = (folder / config[names[0]], folder / config[names[1]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{config_path}: expected {{\"{names[0]}\": FILE, \"{names[1]}\": FILE}} ({exc})") from None
    for path in files:
        if not path.is_file():
            raise ValueError(f"{config_path} names {path.name}, which is not in {folder}")
    return files


def load_heads(path: Path, count: int) -> list[torch.Tensor]:
    """The linear heads of an `lpips` v0.1 weight file (`lin{i}.model.1.weight`)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        return [state[f"lin{i}.model.1.weight"] for i in range(count)]
    except KeyError as exc:
        raise ValueError(f"{path.name}: not an lpips v0.1 weight file (no {exc.args[0]})") from None


def load_alexnet_lpips(folder: Path, device: torch.device | str = "cpu") -> AlexNetLpips:
    """AlexNet LPIPS from a model folder (see the module's docstring); ValueError names what is wrong."""
    alexnet_file, heads_file = weight_files(folder, ("alexnet", "lpips"))
    state = torch.load(alexnet_file, map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    try:
        widths = [int(features[f"features.{i}.weight"].shape[0]) for i in ALEX_CONV_INDICES]
    except KeyError as exc:
        raise ValueError(f"{alexnet_file.name}: not AlexNet's features (no {exc.args[0]})") from None
    net = AlexNetFeatures(widths)
    net.load_state_dict(features)
    return AlexNetLpips(net, load_heads(heads_file, len(ALEX_TAPS))).to(device)


def save_random_alexnet_lpips(folder: Path, widths: Sequence[int] | None = None, seed: int = 0) -> Path:
    """Random AlexNet + LPIPS weights in the layout `load_alexnet_lpips` reads (tests, tiny models;
    `widths` None: torchvision's sizes, under torchvision's file name)."""
    torch.manual_seed(seed)
    net = AlexNetFeatures(widths or ALEX_WIDTHS)
    folder.mkdir(parents=True, exist_ok=True)
    name = "alexnet-owt-7be5be79.pth" if widths is None else "alexnet.pth"
    torch.save({f"features.{k}": v.contiguous() for k, v in net.features.state_dict().items()}, folder / name)
    taps = list(widths or ALEX_WIDTHS)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) / c for i, c in enumerate(taps)},
               folder / "alex.pth")
    (folder / "config.json").write_text(json.dumps({"alexnet": name, "lpips": "alex.pth"}))
    return folder


def save_torchmetrics_twin(folder: Path, torch_home: Path, seed: int = 0) -> Path:
    """One random torchvision AlexNet and torchmetrics' own LPIPS heads, in genfab's layout at
    `folder` and, for torchmetrics (gsplat's simple trainer measures LPIPS with it), the same AlexNet
    in torchvision's hub cache under `torch_home` (set TORCH_HOME to it): both metrics then agree
    and neither touches the network. Needs torchvision and torchmetrics (GPU tier, benchmarks)."""
    import shutil

    import torchmetrics
    import torchvision

    save_random_alexnet_lpips(folder, seed=seed)
    torch.manual_seed(seed)
    torch.save(torchvision.models.alexnet().state_dict(), folder / "alexnet-owt-7be5be79.pth")
    shutil.copy(Path(torchmetrics.__file__).parent / "functional" / "image" / "lpips_models" / "alex.pth",
                folder / "alex.pth")
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "alexnet-owt-7be5be79.pth", cache)
    return folder
