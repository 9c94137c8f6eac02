"""Custom stage example: a CPU person matte from a centred box (OpenCV GrabCut), in the lab's
relighting script's stage-1 layout (`{id}_foreground.png`, `{id}_background.png`, `{id}_mask.png`).

It replaces the built-in `segment` stage in `examples/datasetjob-custom-stage.yaml`: any program
that honours the stage contract can, in any image. This one uses the genfab stage runtime, which
handles the contract (config, shards, resume, failure records, progress, metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from genfab.stages.runtime import Sample, SampleError, SampleStage, StageContext, run


@dataclass(frozen=True)
class Matte:
    """What the stage reads from its config once (a custom stage's config is a plain dict)."""

    margin: float
    iterations: int
    feather: int
    seed: int


def load(config: dict[str, Any], ctx: StageContext) -> Matte:
    cfg = config.get("custom", config)
    return Matte(margin=float(cfg.get("margin", 0.08)), iterations=int(cfg.get("iterations", 3)),
                 feather=int(cfg.get("feather", 7)) | 1,
                 seed=int(config.get("seed", 0)))  # the job's seed, when the stage replaces a built-in


def matte(m: Matte, sample: Sample) -> None:
    image = cv2.imdecode(np.frombuffer(sample.read_source(), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError("DecodeError", f"{sample.ref.source} is not a readable image")
    h, w = image.shape[:2]
    mx, my = int(w * m.margin), int(h * m.margin)
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(sample.seed(m.seed) % (2**31))
    cv2.grabCut(image, mask, (mx, my, w - 2 * mx, h - my), bgd, fgd, m.iterations, cv2.GC_INIT_WITH_RECT)
    hard = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 1.0, 0.0).astype(np.float32)
    if hard.mean() < 0.01:
        raise SampleError("EmptyMask", "GrabCut found no foreground")
    alpha = cv2.GaussianBlur(hard, (m.feather, m.feather), 0)
    a3 = alpha[..., None]
    fg = (image * a3).round().astype(np.uint8)
    bg = (image * (1 - a3)).round().astype(np.uint8)
    sample.params["foregroundFraction"] = round(float(alpha.mean()), 4)
    sample.produced_by = "grabcut"
    alpha8 = (alpha * 255).round().astype(np.uint8)
    for suffix, pixels in (("foreground", fg), ("background", bg), ("mask", alpha8)):
        _, png = cv2.imencode(".png", pixels)
        sample.write(f"{sample.id}_{suffix}.png", png.tobytes())


# flat layout: markers live in _markers/{id}/_SUCCESS.json
CENTER_MATTE = SampleStage("segment", load, matte, marker_dir="_markers")

if __name__ == "__main__":
    run(CENTER_MATTE)
