"""LPIPS (AlexNet, v0.1) from weight files: the distance against a direct functional reference built
from the state dicts alone, and every way a model folder can be wrong as one line (nothing is ever
downloaded). The GPU tier compares it with torchmetrics' LPIPS on the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from genfab.stages.gaussians.losses import Lpips  # noqa: E402
from genfab.stages.models.lpips import load_alexnet_lpips, save_random_alexnet_lpips  # noqa: E402

WIDTHS = [4, 8, 8, 8, 8]


def reference_lpips(folder: Path, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS as the `lpips` package defines it, written out with functional ops over the two files."""
    config = json.loads((folder / "config.json").read_text())
    net = torch.load(folder / config["alexnet"], weights_only=True)
    heads = torch.load(folder / config["lpips"], weights_only=True)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        x = (x * 2 - 1 - shift) / scale
        out = []
        for i, (idx, stride, pad) in enumerate(((0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1))):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, net[f"features.{idx}.weight"], net[f"features.{idx}.bias"], stride, pad))
            out.append(x)
        return out
    total = torch.zeros(a.shape[0])
    for i, (fa, fb) in enumerate(zip(features(a), features(b), strict=True)):
        fa = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        fb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        total += F.conv2d((fa - fb) ** 2, heads[f"lin{i}.model.1.weight"]).mean((1, 2, 3))
    return total


def test_alexnet_lpips_is_the_papers_distance(tmp_path: Path) -> None:
    folder = save_random_alexnet_lpips(tmp_path / "lpips", WIDTHS)
    net = load_alexnet_lpips(folder)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 96, 80, generator=g), torch.rand(2, 3, 96, 80, generator=g)
    got, want = net(a, b), reference_lpips(folder, a, b)
    assert got.shape == (2,) and torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    assert float(net(a, a).abs().max()) < 1e-6 and float(got.min()) > 0
    metric = Lpips.load(folder, torch.device("cpu"))
    assert metric.available and metric(a[:1], b[:1]) == pytest.approx(float(want[0]), rel=1e-4)


def test_production_layout_is_torchvisions_and_lpips_files(tmp_path: Path) -> None:
    folder = save_random_alexnet_lpips(tmp_path / "lpips")
    assert json.loads((folder / "config.json").read_text()) == {"alexnet": "alexnet-owt-7be5be79.pth",
                                                                "lpips": "alex.pth"}
    net = load_alexnet_lpips(folder)
    assert [int(h.shape[1]) for h in net.heads] == [64, 192, 384, 256, 256]


@pytest.mark.parametrize("breakage, says", [
    ("no-config", "config.json: expected {\"alexnet\": FILE, \"lpips\": FILE}"),
    ("missing-file", "names alex.pth, which is not in"),
    ("not-alexnet", "not AlexNet's features (no features.0.weight)"),
    ("not-lpips", "alex.pth: not an lpips v0.1 weight file (no lin0.model.1.weight)"),
])
def test_a_broken_folder_is_one_line_in_the_metrics(tmp_path: Path, breakage: str, says: str) -> None:
    folder = save_random_alexnet_lpips(tmp_path / "lpips", WIDTHS)
    if breakage == "no-config":
        (folder / "config.json").unlink()
    elif breakage == "missing-file":
        (folder / "alex.pth").unlink()
    elif breakage == "not-alexnet":
        torch.save({"classifier.1.weight": torch.zeros(1)}, folder / "alexnet.pth")
    else:
        torch.save({"something": torch.zeros(1)}, folder / "alex.pth")
    metric = Lpips.load(folder, torch.device("cpu"))
    assert not metric.available and says in metric.reason and "\n" not in metric.reason
    assert metric(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)) is None


def test_without_a_folder_the_reason_is_the_callers() -> None:
    metric = Lpips.load(None, torch.device("cpu"), "lpipsModel: model 'genfab/alexnet-lpips': neither ...")
    assert not metric.available and metric.reason.startswith("lpipsModel: model 'genfab/alexnet-lpips'")
    assert Lpips().reason == "no LPIPS model given"
