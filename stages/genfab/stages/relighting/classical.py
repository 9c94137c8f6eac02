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


ROTATIONS = (0.0, -20.0, 20.0, -35.0, 35.0)
"""Face detection also runs on the image turned by these angles (degrees): a tilted head is still
found, and its box is mapped back (the cascades only see upright faces)."""


@dataclass(frozen=True)
class Seed:
    """How GrabCut was initialised: from a face or an upper body (never a guess: without either,
    the sample is dropped as `EmptyMask`)."""

    source: str
    box: tuple[int, int, int, int]
    """Probable person (x, y, w, h) at work size: GrabCut may grow past it (hair, shoulders)."""
    cores: tuple[tuple[int, int, int, int], ...] = ()
    """Certainly-person boxes (the face's centre, the neck below it)."""


def _largest(boxes: Any) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    x, y, w, h = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return int(x), int(y), int(w), int(h)


def _detect_face(eq: np.ndarray) -> tuple[tuple[int, int, int, int], float] | None:
    """The largest face, upright or turned by one of `ROTATIONS`, as an upright box in `eq`'s frame."""
    h, w = eq.shape
    min_face = max(16, min(h, w) // 10)
    for angle in ROTATIONS:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        view = eq if angle == 0 else cv2.warpAffine(eq, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
        for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
            face = _largest(_cascade(name).detectMultiScale(view, 1.1, 5, minSize=(min_face, min_face)))
            if face is None:
                continue
            if angle == 0:
                return face, angle
            fx, fy, fw, fh = face
            back = cv2.invertAffineTransform(turn)
            corners = np.array([[fx, fy], [fx + fw, fy], [fx, fy + fh], [fx + fw, fy + fh]], np.float32)
            mapped = cv2.transform(corners[None], back)[0]
            x0, y0 = np.clip(mapped.min(axis=0), 0, [w - 1, h - 1])
            x1, y1 = np.clip(mapped.max(axis=0), 0, [w, h])
            return (int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0))), angle
    return None


def find_person(gray: np.ndarray) -> Seed | None:
    """Where the person is in a portrait at work size: a face (upright or tilted), grown to head,
    hair and shoulders, with its centre and the neck below it certain; else an upper body; else
    None (no person: the sample is dropped rather than a guessed box segmented)."""
    h, w = gray.shape
    eq = cv2.equalizeHist(gray)
    found = _detect_face(eq)
    if found is not None:
        (fx, fy, fw, fh), angle = found
        x0, x1 = max(0, fx - int(1.4 * fw)), min(w, fx + int(2.4 * fw))
        y0 = max(0, fy - int(0.6 * fh))
        face_core = (fx + fw // 5, fy + fh // 5, max(1, 3 * fw // 5), max(1, 3 * fh // 5))
        neck_top = min(h - 1, fy + fh)
        neck = (fx + fw // 3, neck_top, max(1, fw // 3), max(1, min(h - neck_top, fh // 3)))
        source = "face" if angle == 0 else f"face (turned {angle:+.0f}°)"
        return Seed(source, (x0, y0, x1 - x0, h - y0), (face_core, neck))
    body = _largest(_cascade("haarcascade_upperbody.xml").detectMultiScale(eq, 1.1, 3, minSize=(w // 4, h // 4)))
    if body is not None:
        bx, by, bw, _ = body
        return Seed("upper-body", (bx, by, bw, h - by))
    return None


def segment_classical(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Binary person mask (bool, input size) of a BGR image, and how it was found; an empty mask
    when no face or upper body is found.

    GrabCut starts from the seed's box as probable person and everything else as probable
    background, so the mask follows the image's own edges past the box (hair, shoulders) and never
    a straight box edge; the frame's top and sides outside the box are certain background (a
    portrait's subject may touch the bottom edge), the seed's cores certain person."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    found = find_person(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    if found is None:
        return np.zeros((h, w), bool), {"detector": "none"}
    labels = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    edge = max(1, min(sh, sw) // 50)
    labels[:edge], labels[:, :edge], labels[:, -edge:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    x, y, bw, bh = found.box
    inside = labels[y:y + bh, x:x + bw]
    inside[inside == cv2.GC_PR_BGD] = cv2.GC_PR_FGD
    for cx, cy, cw, ch in found.cores:
        labels[cy:cy + ch, cx:cx + cw] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed % (2**31))
    cv2.grabCut(small, labels, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
    full = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
    mask = clean_mask(full)
    return mask, {"detector": found.source, "box": [round(v / scale) for v in found.box]}
