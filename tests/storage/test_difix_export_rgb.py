"""A DiFix export from RGBA renders and grayscale ground truth loads in Difix3D's own dataset code: the
export writes 8-bit RGB (and says what it converted in each sample's `meta.json`).

Difix3D's `PairedDataset` is rebuilt here from its published source (nv-tlabs/Difix3D at c76edc5,
`src/dataset.py`): the same reads and the same `torch.stack` of the render with the reference, with
two fixes to make it run (the published `__getitem__` passes the undefined names `img_t`, `output_t`
and `ref_t` to `to_tensor` where it opened `input_img`, `output_img` and `ref_img`). torchvision's
`to_tensor`, `resize` and `normalize` are written out with torch (torchvision is not installed in the
test tier): `to_tensor` keeps PIL's channels (RGBA: 4, L: 1), which is what broke the stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import genfab_run
from tests.storage.difix_sources import hi4d_source, job

torch = pytest.importorskip("torch")


def to_tensor(pic: Image.Image) -> Any:
    """torchvision.transforms.functional.to_tensor for 8-bit PIL images: C x H x W in 0..1, one channel
    per PIL band."""
    array = np.array(pic, dtype=np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255)


def resize(t: Any, size: tuple[int, int]) -> Any:
    return torch.nn.functional.interpolate(t[None], size=size, mode="bilinear", antialias=True)[0]


def normalize(t: Any, mean: list[float], std: list[float]) -> Any:
    return (t - mean[0]) / std[0]


class PairedDataset(torch.utils.data.Dataset):  # type: ignore[misc]
    """Difix3D's src/dataset.py (c76edc5), torchvision calls as above."""

    def __init__(self, dataset_path: str, split: str, height: int = 576, width: int = 1024) -> None:
        super().__init__()
        with open(dataset_path) as f:
            self.data = json.load(f)[split]
        self.img_ids = list(self.data.keys())
        self.image_size = (height, width)

    def __len__(self) -> int:
        return len(self.img_ids)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        entry = self.data[self.img_ids[idx]]
        input_img, output_img = Image.open(entry["image"]), Image.open(entry["target_image"])
        ref_img = entry.get("ref_image")
        img_t = normalize(resize(to_tensor(input_img), self.image_size), mean=[0.5], std=[0.5])
        output_t = normalize(resize(to_tensor(output_img), self.image_size), mean=[0.5], std=[0.5])
        if ref_img is not None:
            ref_t = normalize(resize(to_tensor(Image.open(ref_img)), self.image_size), mean=[0.5], std=[0.5])
            img_t = torch.stack([img_t, ref_t], dim=0)
            output_t = torch.stack([output_t, ref_t], dim=0)
        else:
            img_t, output_t = img_t.unsqueeze(0), output_t.unsqueeze(0)
        return {"output_pixel_values": output_t, "conditioning_pixel_values": img_t, "caption": entry["prompt"]}


def test_rgba_renders_and_grayscale_ground_truth_load_in_difix3ds_dataset(tmp_path: Path) -> None:
    root, renders = hi4d_source(tmp_path)
    for png in renders.rglob("*.png"):  # renders with an alpha channel, as gsplat and nerfstudio save them
        rgb = Image.open(png).convert("RGB")
        Image.merge("RGBA", (*rgb.split(), Image.new("L", rgb.size, 200))).save(png)
    for jpg in (root / "pair00" / "dance00" / "images").rglob("*.jpg"):  # a monochrome camera rig
        Image.open(jpg).convert("L").save(jpg, quality=95)
    out = tmp_path / "out"
    spec = job(f"file://{out}", f"file://{root}", fields={"name": "hi4d", "dataset": "hi4d",
                                                          "rendersUri": f"file://{renders}", "targetCameras": [16]})
    spec["spec"]["difix"]["sources"][0] = {k: v for k, v in spec["spec"]["difix"]["sources"][0].items()
                                           if k not in ("groupBy", "groupPattern")}
    result = genfab_run(tmp_path, spec)
    assert result.returncode == 0, result.stdout + result.stderr

    data_json = out / "difix" / "data.json"
    entries = {**json.loads(data_json.read_text())["train"], **json.loads(data_json.read_text())["test"]}
    assert len(entries) == 5
    for split in ("train", "test"):
        dataset = PairedDataset(str(data_json), split, height=64, width=96)
        for i in range(len(dataset)):
            item = dataset[i]
            assert tuple(item["conditioning_pixel_values"].shape) == (2, 3, 64, 96)
            assert tuple(item["output_pixel_values"].shape) == (2, 3, 64, 96)
    sample = next((out / "samples").iterdir())
    for name in ("image.png", "target_image.jpg", "ref_image.jpg"):
        assert Image.open(sample / name).mode == "RGB", name
    converted = json.loads((sample / "meta.json").read_text())["provenance"]["converted"]
    assert converted == {"image": "RGBA -> RGB (alpha dropped)", "target_image": "L -> RGB (grey to 3 channels)",
                         "ref_image": "L -> RGB (grey to 3 channels)"}
