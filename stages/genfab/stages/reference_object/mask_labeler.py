"""`genfab mask`: the reference-object pipeline's `inputMask` from one image (the lab's document starts
with `utilities/sam_mask_labeler.py`: click the object, get its mask). Run by `genfab mask` as
`python -m genfab.stages.reference_object.mask_labeler SPEC_JSON` (the control plane never imports
torch); prints one JSON line, the record also written beside the mask as `<mask>.json`.

Methods, never substituted for each other:
- `sam2` (the default): SAM2's `SAM2ImagePredictor` from the model location (`--models`, else
  `GENFAB_MODELS`; `facebook/sam2.1-hiera-large` by default), prompted with the points and/or box; of
  its three masks the one it scores best is kept. No weights there: exit 2 naming them and the
  classical method.
- `grabcut`: OpenCV's GrabCut, no weights: the box (else the image less a 5 % margin) is the probable
  object, each point a definite seed (positive: object, negative: background).

The record (`method`, `model`, `prompts`, `score`, `foregroundRatio`) says which produced the mask.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXIT_BAD_INPUT, EXIT_REFUSED = 1, 2
SAM2_DEFAULT = "facebook/sam2.1-hiera-large"
GRABCUT_ITERATIONS = 5
SEED_RADIUS = 0.01
"""A point's seed disk for GrabCut, as a fraction of the image's longer side."""


class LabelerError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Prompts:
    points: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]
    """1 for an object point, 0 for a background one (SAM2's labels)."""
    box: tuple[float, float, float, float] | None

    def check(self, width: int, height: int) -> None:
        """Every prompt inside the image (one line naming the first that is not)."""
        for (x, y), label in zip(self.points, self.labels, strict=True):
            if not (0 <= x < width and 0 <= y < height):
                which = "--point" if label else "--negative"
                raise LabelerError(f"{which} {x:g},{y:g} is outside the {width}x{height} image", EXIT_BAD_INPUT)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise LabelerError(f"--box {x0:g},{y0:g},{x1:g},{y1:g} is not a box inside the {width}x{height} "
                                   "image (x0,y0,x1,y1 with x0 < x1, y0 < y1)", EXIT_BAD_INPUT)
        if not self.points and self.box is None:
            raise LabelerError("give the object: at least one --point X,Y or a --box X0,Y0,X1,Y1", EXIT_BAD_INPUT)

    def record(self) -> dict[str, Any]:
        return {"points": [list(p) for p, label in zip(self.points, self.labels, strict=True) if label],
                "negative": [list(p) for p, label in zip(self.points, self.labels, strict=True) if not label],
                "box": list(self.box) if self.box is not None else None}


def grabcut_mask(rgb: np.ndarray, prompts: Prompts) -> np.ndarray:
    """GrabCut from the box (else the image less a 5 % margin) with the points as definite seeds."""
    import cv2

    height, width = rgb.shape[:2]
    margin_x, margin_y = max(1, round(0.05 * width)), max(1, round(0.05 * height))
    x0, y0, x1, y1 = (round(v) for v in prompts.box) if prompts.box else (margin_x, margin_y, width - margin_x,
                                                                           height - margin_y)
    labels = np.full((height, width), cv2.GC_BGD, np.uint8)
    labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    radius = max(1, round(SEED_RADIUS * max(width, height)))
    for (x, y), label in zip(prompts.points, prompts.labels, strict=True):
        cv2.circle(labels, (round(x), round(y)), radius, int(cv2.GC_FGD if label else cv2.GC_BGD), -1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), labels, None, bgd, fgd, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    return np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))


def sam2_mask(rgb: np.ndarray, prompts: Prompts, folder: Path) -> tuple[np.ndarray, float]:
    """SAM2's best-scored mask of its three for the prompts."""
    import torch

    from genfab.stages.reference_object.sam_models import UnsafeConfig, load_sam2

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        predictor = load_sam2(folder, None, None, device)
    except UnsafeConfig as exc:
        raise LabelerError(str(exc), EXIT_BAD_INPUT) from None
    with torch.inference_mode():
        predictor.set_image(rgb)
        masks, scores, _ = predictor.predict(
            point_coords=np.array(prompts.points, np.float32) if prompts.points else None,
            point_labels=np.array(prompts.labels, np.int32) if prompts.points else None,
            box=np.array(prompts.box, np.float32) if prompts.box is not None else None, multimask_output=True)
    best = int(np.argmax(scores))
    return np.asarray(masks[best]) > 0, float(scores[best])


def label(spec: dict[str, Any]) -> dict[str, Any]:
    """Make the mask `spec` asks for, write it and its record; the record."""
    from genfab.stages.common.imaging import encode_png
    from genfab.stages.runtime.pictures import open_image

    image, out = Path(spec["image"]), Path(spec["out"])
    try:
        rgb = np.asarray(open_image(image.read_bytes(), str(image)).convert("RGB"))
    except Exception as exc:
        raise LabelerError(f"{image}: not an image genfab can read ({str(exc).splitlines()[0] if str(exc) else exc})",
                           EXIT_BAD_INPUT) from None
    height, width = rgb.shape[:2]
    prompts = Prompts(tuple((float(x), float(y)) for x, y in spec["points"] + spec["negative"]),
                      tuple([1] * len(spec["points"]) + [0] * len(spec["negative"])),
                      tuple(float(v) for v in spec["box"]) if spec.get("box") else None)  # type: ignore[arg-type]
    prompts.check(width, height)
    record: dict[str, Any] = {"image": str(image), "mask": str(out), "method": spec["method"],
                              "prompts": prompts.record(), "size": [width, height]}
    if spec["method"] == "sam2":
        sam2_runtime()
        folder = sam2_folder(spec["model"], spec.get("models"), out.parent)
        mask, score = sam2_mask(rgb, prompts, folder)
        record.update(model=spec["model"], score=round(score, 4))
    else:
        mask = grabcut_mask(rgb, prompts)
        record.update(model=None, score=None)
    if not mask.any():
        raise LabelerError(f"{record['method']} found no object at the prompts: nothing written (try a box around "
                           "the object, or more points)", EXIT_BAD_INPUT)
    record["foregroundRatio"] = round(float(mask.mean()), 4)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_png(mask.astype(np.uint8) * 255))
    Path(f"{out}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


SAM2_RUNTIME = ("torch", "sam2")
"""What `--method sam2` imports (the `segment` extra)."""


def sam2_runtime() -> None:
    """The one line for a Python without PyTorch or SAM2 (a CPU install without the `segment` extra)."""
    import importlib

    missing = []
    for name in SAM2_RUNTIME:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise LabelerError(f"--method sam2 needs {' and '.join(missing)}, which this Python lacks: pip install "
                           "'genfab[segment]', or name the classical method with --method grabcut (no weights, "
                           "no PyTorch)", EXIT_REFUSED)


def sam2_folder(model: str, models: str | None, scratch: Path) -> Path:
    """SAM2's folder in the model location, or the one line saying what to set."""
    import os

    from genfab.contract.names import ENV_MODELS
    from genfab.stages.models.location import ModelUnavailable, resolve_model
    from genfab.stages.reference_object.sam_models import SAM2_CONFIG

    env = {**os.environ, **({ENV_MODELS: models} if models else {})}
    if not env.get(ENV_MODELS):
        raise LabelerError(f"--method sam2 needs SAM2's weights from a model location: pass --models URI (or set "
                           f"{ENV_MODELS}) to one holding {model}/, or name the classical method with --method "
                           "grabcut (no weights)", EXIT_REFUSED)
    try:
        return resolve_model(model, scratch / ".genfab-models", env, markers=(SAM2_CONFIG,))
    except ModelUnavailable as exc:
        raise LabelerError(f"--method sam2 needs SAM2's weights: {exc}; or name the classical method with "
                           "--method grabcut (no weights)", EXIT_REFUSED) from None


def main(argv: list[str]) -> int:
    try:
        record = label(json.loads(argv[0]))
    except LabelerError as exc:
        print(f"genfab mask: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
