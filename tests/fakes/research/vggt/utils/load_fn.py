"""`load_and_preprocess_images` as VGGT's default mode: width 518, height scaled and rounded to a
multiple of 14, values in [0, 1], (S, 3, H, W)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

TARGET = 518


def load_and_preprocess_images(image_path_list: list[str], mode: str = "crop") -> torch.Tensor:
    out = []
    for path in image_path_list:
        with Image.open(path) as im:
            im = im.convert("RGB")
            height = round(im.height * TARGET / im.width / 14) * 14
            out.append(torch.from_numpy(np.asarray(im.resize((TARGET, height)), np.float32) / 255).permute(2, 0, 1))
    return torch.stack(out)
