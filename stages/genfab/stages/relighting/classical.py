"""The classical CPU segmentation: OpenCV's bundled Haar cascades find the person, their boxes seed
GrabCut, and the result is cleaned and refined to a soft alpha (see `matte`). No model weights."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np

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
    """Where the person probably is (x, y, w, h) at work size, for the sample's metadata."""
    face: tuple[int, int, int, int] | None = None
    """The face (x, y, w, h) at work size: the person's shape is laid out around it (`prior`)."""


def _largest(boxes: Any) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    x, y, w, h = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return int(x), int(y), int(w), int(h)


def _upright(box: tuple[int, int, int, int], angle: float, turn: np.ndarray, shape: tuple[int, int]
             ) -> tuple[int, int, int, int]:
    """A face box found in the image turned by `angle`, as an upright box in the image's frame."""
    if angle == 0:
        return box
    h, w = shape
    fx, fy, fw, fh = box
    back = cv2.invertAffineTransform(turn)
    corners = np.array([[fx, fy], [fx + fw, fy], [fx, fy + fh], [fx + fw, fy + fh]], np.float32)
    mapped = cv2.transform(corners[None], back)[0]
    x0, y0 = np.clip(mapped.min(axis=0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(mapped.max(axis=0), 0, [w, h])
    return int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0))


FACE_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")
OTHERS_SHARE = 0.5
"""Another face is a person of the picture when it is at least this share of the largest face's width
(smaller ones are people far behind, or face-like patches of a flag or a curtain)."""


def faces_in(gray_eq: np.ndarray, min_face: int) -> list[tuple[int, int, int, int]]:
    """Every upright face (both cascades), largest first, one box per face (a box whose centre lies in a
    larger one is the same face)."""
    boxes: list[tuple[int, int, int, int]] = []
    for name in FACE_CASCADES:
        boxes += [tuple(int(v) for v in b) for b in  # type: ignore[misc]
                  _cascade(name).detectMultiScale(gray_eq, 1.1, 5, minSize=(min_face, min_face))]
    kept: list[tuple[int, int, int, int]] = []
    for x, y, w, h in sorted(boxes, key=lambda b: -b[2] * b[3]):
        cx, cy = x + w / 2, y + h / 2
        if not any(kx <= cx <= kx + kw and ky <= cy <= ky + kh for kx, ky, kw, kh in kept):
            kept.append((x, y, w, h))
    return kept


def _detect_faces(eq: np.ndarray) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]], float]:
    """The picture's people's faces (`OTHERS_SHARE`) and every face seen, largest first, upright or all
    turned by one of `ROTATIONS`, as upright boxes in `eq`'s frame, and the angle they were found at."""
    h, w = eq.shape
    min_face = max(16, min(h, w) // 10)
    for angle in ROTATIONS:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        view = eq if angle == 0 else cv2.warpAffine(eq, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
        found = faces_in(view, min_face)
        if found:
            upright = [_upright(b, angle, turn, (h, w)) for b in found]
            people = [b for b, f in zip(upright, found, strict=True) if f[2] >= OTHERS_SHARE * found[0][2]]
            return people, upright, angle
    return [], [], 0.0


def find_people(gray: np.ndarray) -> tuple[list[Seed], list[tuple[int, int, int, int]]]:
    """Where the people are in a picture at work size, largest face first: each face (upright or
    tilted) grown to head, hair and shoulders, with its centre and the neck below it certain; else one
    upper body; else none (nobody: the sample is dropped rather than a guessed box segmented). And every
    face seen (smaller ones too: `facesOutside` counts those the mask leaves out)."""
    h, w = gray.shape
    eq = cv2.equalizeHist(gray)
    faces, seen, angle = _detect_faces(eq)
    if faces:
        source = "face" if angle == 0 else f"face (turned {angle:+.0f}°)"
        seeds = []
        for fx, fy, fw, fh in faces:
            x0, x1 = max(0, fx - int(1.4 * fw)), min(w, fx + int(2.4 * fw))
            y0 = max(0, fy - int(0.6 * fh))
            seeds.append(Seed(source, (x0, y0, x1 - x0, h - y0), (fx, fy, fw, fh)))
        return seeds, seen
    body = _largest(_cascade("haarcascade_upperbody.xml").detectMultiScale(eq, 1.1, 3, minSize=(w // 4, h // 4)))
    if body is not None:
        bx, by, bw, _ = body
        return [Seed("upper-body", (bx, by, bw, h - by))], []
    return [], []


def _ellipse(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    return ((xx - centre[0]) / max(axes[0], 1.0)) ** 2 + ((yy - centre[1]) / max(axes[1], 1.0)) ** 2 <= 1.0


HEAD, BESIDE = 0.55, 0.75
"""Half the width of the probable-person head ellipse and of the ellipse outside which the frame beside
the head is certain background, in face widths. Both hug the head: hair and ears beyond the first join
the person by their colour, and a flag's stripes between the head and a pole no longer start as
person (Hopper's portrait at 0.7 and 1.05: a strip of flag down the pole was in the mask)."""
NECK = 0.3
"""Half the width of the probable-person column at the chin, in face widths (a neck's): it widens by a
face width per face height below to `SHOULDERS`. At 0.5 the curtain beside Biden's neck started as person
and stayed."""
CHEST, BODY, BODY_AT = 0.6, 0.6, 2.0
"""Certain person below the face, in face widths and heights: the neck and chest (an ellipse `CHEST`
wide from the chin down) and the body below the shoulders (an ellipse `BODY` wide, centred `BODY_AT`
below the chin): a strip of the astronaut's suit beside the helmet she holds, or an elbow's sleeve, is
the person's whatever the background's colours (the shuttle's orange tank took the suit's)."""
REACH = 1.3
"""How far beside the face's centre (face widths) the frame's sides below the chin may be the person's:
beyond it they are certain background (a desk or a flag at the edge beside Obama's arm), within it a body
reaching the frame is left to GrabCut (Hopper's shoulders)."""
SHOULDERS, FAR = 0.8, 2.1
"""Half the width of the probable-person column below the chin, in face widths, and how far from the
face's centre the body may reach. The column is narrower than most shoulders on purpose: what lies
outside it starts as probable background and joins the person only by its colour, so a block of
light floor beside a dark coat (Biden's portrait at 1.3) is not taken in with the body."""


def prior(seed: Seed, shape: tuple[int, int]) -> np.ndarray:
    """GrabCut's starting labels at work size: a person's head-and-shoulders shape laid out around
    the face, curved everywhere (an ellipse or a widening column, never a box, so no straight edge
    can carry into the mask).

    - certain person: the face's centre, the forehead above it (hair or hat start there), and the
      neck and chest below the chin (a white shirt or a dark collar between face and body is the
      person's, whatever its colour);
    - probable person: the head (an ellipse a little narrower and taller than the face box, `HEAD`)
      and below the chin a column widening to the shoulders (`SHOULDERS`);
    - certain background: the frame's top edge, beside and above the head down to the chin outside
      a larger ellipse (`BESIDE`: flags, poles and props next to a head), below it well outside the column,
      the frame's sides beside the head, and below the chin farther than `REACH` from the face's
      centre (nearer, a body often reaches the frame's sides: certain background there cut it along
      a straight line a few pixels from the frame);
    - probable background: the rest (GrabCut decides by colour).
    Without a face (an upper-body detection), the body box is probable person."""
    h, w = shape
    labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    edge = max(1, min(h, w) // 50)
    if seed.face is None:
        x, y, bw, bh = seed.box
        labels[y:y + bh, x:x + bw] = cv2.GC_PR_FGD
        labels[:edge], labels[:, :edge], labels[:, -edge:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
        return labels
    fx, fy, fw, fh = seed.face
    cx, cy = fx + fw / 2.0, fy + fh / 2.0
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    head_centre = (cx, fy + 0.35 * fh)
    chin = fy + fh
    below = np.clip((yy - chin) / fh, 0.0, None)  # face heights below the chin
    half = fw * np.minimum(SHOULDERS, NECK + 1.0 * np.minimum(below, 1.0))  # the column's half width
    column = (yy >= chin) & (np.abs(xx - cx) <= half)
    labels[_ellipse(shape, head_centre, (HEAD * fw, 0.95 * fh)) | column] = cv2.GC_PR_FGD
    beside = (yy < chin) & ~_ellipse(shape, head_centre, (BESIDE * fw, 1.35 * fh))
    far = (yy >= chin) & (np.abs(xx - cx) > fw * np.minimum(FAR, 0.9 + 1.2 * np.minimum(below, 1.0)))
    labels[beside | far] = cv2.GC_BGD
    labels[:edge] = cv2.GC_BGD
    sides = np.zeros((h, w), bool)
    sides[:, :edge], sides[:, -edge:] = True, True
    reach = (yy >= chin) & (np.abs(xx - cx) <= fw * np.minimum(REACH, 0.5 + 1.0 * np.minimum(below, 1.0)))
    labels[sides & ~reach] = cv2.GC_BGD
    certain = (_ellipse(shape, (cx, cy), (0.3 * fw, 0.35 * fh))  # the face
               | _ellipse(shape, (cx, fy + 0.05 * fh), (0.25 * fw, 0.12 * fh))  # forehead, hairline
               | _ellipse(shape, (cx, chin + 1.2 * fh), (CHEST * fw, 1.3 * fh))  # neck and chest
               | _ellipse(shape, (cx, chin + BODY_AT * fh), (BODY * fw, 0.9 * fh)))  # the body below the shoulders
    labels[certain] = cv2.GC_FGD
    return labels


def person_only(mask: np.ndarray, certain: np.ndarray, width: int) -> np.ndarray:
    """The parts of `mask` joined to the certainly-person pixels, without thin spikes: a patch of
    background GrabCut took for the person by its colour (a flag's stripe beside the head) that does
    not touch the person is left out, and so is a strip narrower than `width` pixels running off it
    (a flagpole, a cord: the mask is opened, then every pixel within `width` of what is left is
    given back, so the outline keeps its own detail)."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disc)
    _, labels = cv2.connectedComponents(opened, connectivity=8)
    keep = np.unique(labels[certain & (opened > 0)])
    body = np.isin(labels, keep[keep > 0]).astype(np.uint8)
    return mask & (cv2.dilate(body, disc) > 0)


def people_prior(seeds: list[Seed], shape: tuple[int, int]) -> np.ndarray:
    """GrabCut's starting labels for everyone found: a pixel is certain person where any person's
    `prior` says so, probable person where any says probable, certain background only where every one
    says certain (one person's "beside the head" is often where another stands)."""
    each = np.stack([prior(s, shape) for s in seeds])
    labels = np.full(shape, cv2.GC_PR_BGD, np.uint8)
    labels[(each == cv2.GC_BGD).all(axis=0)] = cv2.GC_BGD
    labels[(each == cv2.GC_PR_FGD).any(axis=0)] = cv2.GC_PR_FGD
    labels[(each == cv2.GC_FGD).any(axis=0)] = cv2.GC_FGD
    return labels


def segment_classical(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Binary mask of every person found (bool, input size) in a BGR image, and how they were found;
    an empty mask when no face or upper body is found.

    GrabCut starts from each person's shape laid out around their face (`prior`, `people_prior`), so
    the mask follows the image's own edges (hair, shoulders) and never a straight box edge; only the
    parts joined to the certainly-person pixels are kept (`person_only`)."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    found, seen = find_people(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    if not found:
        return np.zeros((h, w), bool), {"detector": "none", "faces": []}
    labels = people_prior(found, (sh, sw))
    certain = labels == cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed % (2**31))
    cv2.grabCut(small, labels, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
    first = found[0]
    fg = person_only(fg > 0, certain, max(3, (first.face[2] if first.face else sw) // 20 | 1)).astype(np.float32)
    full = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
    return full, {"detector": first.source, "people": len(found), "box": [round(v / scale) for v in first.box],
                  "faces": [[round(v / scale) for v in face] for face in seen]}
