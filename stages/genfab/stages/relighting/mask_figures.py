"""The relighting mask's quality figures (declared in `genfab.api.quality.RELIGHTING_MASK`: names,
formulas, ranges and what a bad value looks like), computed in the segment stage's worker for every
sample, on the working-size image and the mask as written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from genfab.api.quality import (
    CANNY_THRESHOLDS,
    EDGE_TOLERANCE_PX,
    FACE_SIDE_PX,
    MIN_HOLE_SHARE,
    OFF_EDGE_SHARE,
    ORIENTATIONS,
    RELIGHTING_MASK,
    STRAIGHT_EPSILON_PX,
)
from genfab.stages.relighting.classical import faces_in
from genfab.stages.relighting.matte import Cleaned


@dataclass(frozen=True)
class Edges:
    """The image's strong edges (Canny) and each pixel's gradient direction (degrees, 0-360)."""

    strong: np.ndarray
    angle: np.ndarray


def oriented_edges(image_bgr: np.ndarray) -> Edges:
    """A boundary agrees with the image only where an edge runs along it: the stripes of a flag crossing
    a straight cut are edges, but not along the cut."""
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    blurred = cv2.GaussianBlur(gray, (0, 0), 1.0)
    strong = cv2.Canny(blurred, *CANNY_THRESHOLDS) > 0
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    return Edges(strong, cv2.phase(gx, gy, angleInDegrees=True))  # binned only where looked up


WINDOW = np.stack(np.meshgrid(np.arange(-EDGE_TOLERANCE_PX, EDGE_TOLERANCE_PX + 1),
                              np.arange(-EDGE_TOLERANCE_PX, EDGE_TOLERANCE_PX + 1)), -1).reshape(-1, 2)
"""Offsets within `EDGE_TOLERANCE_PX` of a point (a square window)."""


def along(edges: Edges, xs: np.ndarray, ys: np.ndarray, normal_deg: np.ndarray | float) -> np.ndarray:
    """Whether an image edge runs along the boundary at each point: a strong edge within the tolerance
    whose gradient is within one bin of the boundary's normal (about 34 degrees). Looked up only around
    the points asked about (a window each), never over the whole image."""
    h, w = edges.strong.shape
    k = np.broadcast_to(np.rint(np.asarray(normal_deg) % 180.0 / (180.0 / ORIENTATIONS)).astype(int) % ORIENTATIONS,
                        np.shape(xs))
    wx = np.clip(np.asarray(xs)[:, None] + WINDOW[None, :, 0], 0, w - 1)
    wy = np.clip(np.asarray(ys)[:, None] + WINDOW[None, :, 1], 0, h - 1)
    bins = np.rint(edges.angle[wy, wx] % 180.0 / (180.0 / ORIENTATIONS)).astype(int) % ORIENTATIONS
    off = (bins - k[:, None]) % ORIENTATIONS
    return (edges.strong[wy, wx] & ((off <= 1) | (off == ORIENTATIONS - 1))).any(axis=1)


def contour_normals(contour: np.ndarray) -> np.ndarray:
    """Each contour point's normal direction in degrees (from the tangent over 3 points either side)."""
    pts = contour.reshape(-1, 2).astype(np.float32)
    tangent = np.roll(pts, -3, axis=0) - np.roll(pts, 3, axis=0)
    return np.degrees(np.arctan2(tangent[:, 1], tangent[:, 0])) + 90.0


def _on_frame(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    return (points[:, 0] == 0) | (points[:, 1] == 0) | (points[:, 0] == w - 1) | (points[:, 1] == h - 1)


def straight_runs(contours: list[np.ndarray], edges: Edges) -> tuple[float, float]:
    """(the longest straight boundary segment not on the frame, the longest of those mostly not along an
    image edge), in px."""
    h, w = edges.strong.shape
    longest = cut = 0.0
    for contour in contours:
        if len(contour) < 3:
            continue
        poly = cv2.approxPolyDP(contour, STRAIGHT_EPSILON_PX, True).reshape(-1, 2)
        for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
            length = float(np.hypot(*(b - a)))
            if length <= cut:
                continue
            steps = max(2, int(length) + 1)
            xs = np.rint(np.linspace(a[0], b[0], steps)).astype(int)
            ys = np.rint(np.linspace(a[1], b[1], steps)).astype(int)
            if _on_frame(np.stack([xs, ys], 1), (h, w)).mean() > 0.5:
                continue  # the frame's own edge: `frameTouch`
            longest = max(longest, length)
            normal = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0]))) + 90.0
            if 1.0 - along(edges, xs, ys, normal).mean() >= OFF_EDGE_SHARE:
                cut = length
    return longest, cut


def enclosed_holes(mask: np.ndarray) -> int:
    """Background regions the mask encloses (not joined to the frame), specks left out."""
    background = (~mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    if count <= 1:
        return 0
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    least = MIN_HOLE_SHARE * mask.size
    return int(sum(1 for i in range(1, count) if i not in border and stats[i, cv2.CC_STAT_AREA] >= least))


def faces_seen(image_bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Upright faces in the image (`classical.faces_in` at most `FACE_SIDE_PX` a side), in its pixels."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, FACE_SIDE_PX / max(h, w))
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return [(round(x / scale), round(y / scale), round(fw / scale), round(fh / scale))
            for x, y, fw, fh in faces_in(cv2.equalizeHist(small), max(16, min(small.shape) // 10))]


def faces_outside(mask: np.ndarray, faces: Sequence[Sequence[int]]) -> int:
    """The faces (x, y, w, h) whose centre is not on the mask: a person the mask left out."""
    h, w = mask.shape
    return sum(1 for x, y, fw, fh in faces if not mask[min(h - 1, int(y + fh / 2)), min(w - 1, int(x + fw / 2))])


def mask_figures(image_bgr: np.ndarray, cleaned: Cleaned, faces: Sequence[Sequence[int]] | None = None
                 ) -> dict[str, float]:
    """Every figure of `RELIGHTING_MASK` for one sample (rounded for its metadata); `faces`: those the
    segmentation already found in the image (the classical backend's), else they are looked for."""
    mask = cleaned.mask.astype(bool)
    area = int(np.count_nonzero(mask))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate([c.reshape(-1, 2) for c in contours]) if contours else np.zeros((0, 2), int)
    normals = np.concatenate([contour_normals(c) for c in contours]) if contours else np.zeros(0)
    frame = _on_frame(points, mask.shape)
    inner, inner_normals = points[~frame], normals[~frame]
    edges = oriented_edges(image_bgr)
    run, cut = straight_runs(list(contours), edges) if area else (0.0, 0.0)
    figures = {
        "maskArea": area / mask.size,
        "boundaryOnEdge": float(along(edges, inner[:, 0], inner[:, 1], inner_normals).mean()) if len(inner) else 1.0,
        "straightRunPx": run,
        "straightCutPx": cut,
        "straightCutShare": cut / len(inner) if len(inner) else 0.0,
        "holes": float(enclosed_holes(mask)) if area else 0.0,
        "components": float(cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1),
        "frameTouch": float(frame.mean()) if len(points) else 0.0,
        "cleanupFilled": cleaned.filled / area if area else 0.0,
        "cleanupRemoved": cleaned.removed / (area - cleaned.filled + cleaned.removed)
        if area - cleaned.filled + cleaned.removed else 0.0,
        "facesOutside": float(faces_outside(mask, faces_seen(image_bgr) if faces is None else faces)),
    }
    assert list(figures) == [f.name for f in RELIGHTING_MASK]  # one declaration: the same names, in order
    return {name: round(value, 4) for name, value in figures.items()}
