"""The classical CPU segmentation: OpenCV's bundled Haar cascades find the person, their boxes seed
GrabCut, and the result is cleaned and refined to a soft alpha (see `matte`). No model weights."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np

from genfab.stages.relighting.matte import clean_mask

WORK_SIDE = 384
"""GrabCut runs at this size (it is O(pixels × iterations)); the mask is upsampled after."""
ITERATIONS = 5


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
    if cascade.empty():
        raise RuntimeError(f"OpenCV cascade {name} is missing from this OpenCV build "
                           "(opencv-python-headless>=4.9,<5 bundles it)")
    return cascade


@dataclass(frozen=True)
class Seed:
    """How GrabCut was initialised: from a face, an upper body, or the centre of the frame."""

    source: str
    box: tuple[int, int, int, int]
    """Probable person (x, y, w, h) at work size."""
    core: tuple[int, int, int, int] | None = None
    """Certainly-person box (the face), if any."""


def _largest(boxes: Any) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    x, y, w, h = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return int(x), int(y), int(w), int(h)


def find_person(gray: np.ndarray) -> Seed:
    """A person box for a portrait at work size: face (extended to head and shoulders), else upper
    body, else a centred box."""
    h, w = gray.shape
    eq = cv2.equalizeHist(gray)
    min_face = max(16, min(h, w) // 10)
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
        face = _largest(_cascade(name).detectMultiScale(eq, 1.1, 5, minSize=(min_face, min_face)))
        if face is not None:
            fx, fy, fw, fh = face
            x0, x1 = max(0, fx - int(1.4 * fw)), min(w, fx + int(2.4 * fw))
            y0 = max(0, fy - int(0.6 * fh))
            inset = (fx + fw // 5, fy + fh // 5, max(1, 3 * fw // 5), max(1, 3 * fh // 5))
            return Seed("face", (x0, y0, x1 - x0, h - y0), inset)
    body = _largest(_cascade("haarcascade_upperbody.xml").detectMultiScale(eq, 1.1, 3, minSize=(w // 4, h // 4)))
    if body is not None:
        bx, by, bw, _ = body
        return Seed("upper-body", (bx, by, bw, h - by))
    mx, my = int(w * 0.12), int(h * 0.06)
    return Seed("center", (mx, my, w - 2 * mx, h - my))


def segment_classical(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Binary person mask (bool, input size) of a BGR image, and how it was found."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    found = find_person(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    labels = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    x, y, bw, bh = found.box
    labels[y:y + bh, x:x + bw] = cv2.GC_PR_FGD
    # GrabCut needs background samples: the top, left and right frame edges are background
    # (a portrait's subject may touch the bottom edge).
    edge = max(1, min(sh, sw) // 50)
    labels[:edge], labels[:, :edge], labels[:, -edge:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    if found.core is not None:
        cx, cy, cw, ch = found.core
        labels[cy:cy + ch, cx:cx + cw] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed % (2**31))
    cv2.grabCut(small, labels, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
    full = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
    mask = clean_mask(full)
    return mask, {"detector": found.source, "box": [round(v / scale) for v in found.box]}
