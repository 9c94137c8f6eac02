"""The relighting mask's quality figures (declared in `genfab.api.quality.RELIGHTING_MASK`: names,
formulas, ranges and what a bad value looks like), computed in the segment stage's worker for every
sample, on the working-size image and the mask as written."""

from __future__ import annotations

import cv2
import numpy as np

from genfab.api.quality import (
    CANNY_THRESHOLDS,
    EDGE_TOLERANCE_PX,
    MIN_HOLE_SHARE,
    OFF_EDGE_SHARE,
    ORIENTATIONS,
    RELIGHTING_MASK,
    STRAIGHT_EPSILON_PX,
)
from genfab.stages.relighting.matte import Cleaned


def oriented_edges(image_bgr: np.ndarray) -> np.ndarray:
    """Where the image has a strong edge of each direction: `ORIENTATIONS` maps (bool, the image's size)
    of the Canny edges whose gradient lies in that bin of 180 / ORIENTATIONS degrees, each widened by
    `EDGE_TOLERANCE_PX`. A boundary agrees with the image only where an edge runs along it: the stripes
    of a flag crossing a straight cut are edges, but not along the cut."""
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    blurred = cv2.GaussianBlur(gray, (0, 0), 1.0)
    edges = cv2.Canny(blurred, *CANNY_THRESHOLDS) > 0
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    bins = np.rint(np.degrees(np.arctan2(gy, gx)) % 180.0 / (180.0 / ORIENTATIONS)).astype(np.int8) % ORIENTATIONS
    size = 2 * EDGE_TOLERANCE_PX + 1
    kernel = np.ones((size, size), np.uint8)
    return np.stack([cv2.dilate((edges & (bins == k)).astype(np.uint8), kernel) > 0 for k in range(ORIENTATIONS)])


def along(maps: np.ndarray, xs: np.ndarray, ys: np.ndarray, normal_deg: np.ndarray | float) -> np.ndarray:
    """Whether an image edge runs along the boundary at each point: an edge whose gradient is within one
    bin of the boundary's normal (about 34 degrees)."""
    k = np.rint(np.asarray(normal_deg) % 180.0 / (180.0 / ORIENTATIONS)).astype(int) % ORIENTATIONS
    n = ORIENTATIONS
    return maps[k, ys, xs] | maps[(k + 1) % n, ys, xs] | maps[(k - 1) % n, ys, xs]


def contour_normals(contour: np.ndarray) -> np.ndarray:
    """Each contour point's normal direction in degrees (from the tangent over 3 points either side)."""
    pts = contour.reshape(-1, 2).astype(np.float32)
    tangent = np.roll(pts, -3, axis=0) - np.roll(pts, 3, axis=0)
    return np.degrees(np.arctan2(tangent[:, 1], tangent[:, 0])) + 90.0


def _on_frame(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    return (points[:, 0] == 0) | (points[:, 1] == 0) | (points[:, 0] == w - 1) | (points[:, 1] == h - 1)


def straight_runs(contours: list[np.ndarray], maps: np.ndarray) -> tuple[float, float]:
    """(the longest straight boundary segment not on the frame, the longest of those mostly not along an
    image edge), in px."""
    h, w = maps.shape[1:]
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
            if 1.0 - along(maps, xs, ys, normal).mean() >= OFF_EDGE_SHARE:
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


def mask_figures(image_bgr: np.ndarray, cleaned: Cleaned) -> dict[str, float]:
    """Every figure of `RELIGHTING_MASK` for one sample (rounded for its metadata)."""
    mask = cleaned.mask.astype(bool)
    area = int(np.count_nonzero(mask))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate([c.reshape(-1, 2) for c in contours]) if contours else np.zeros((0, 2), int)
    normals = np.concatenate([contour_normals(c) for c in contours]) if contours else np.zeros(0)
    frame = _on_frame(points, mask.shape)
    inner, inner_normals = points[~frame], normals[~frame]
    maps = oriented_edges(image_bgr)
    run, cut = straight_runs(list(contours), maps) if area else (0.0, 0.0)
    figures = {
        "maskArea": area / mask.size,
        "boundaryOnEdge": float(along(maps, inner[:, 0], inner[:, 1], inner_normals).mean()) if len(inner) else 1.0,
        "straightRunPx": run,
        "straightCutPx": cut,
        "straightCutShare": cut / len(inner) if len(inner) else 0.0,
        "holes": float(enclosed_holes(mask)) if area else 0.0,
        "components": float(cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1),
        "frameTouch": float(frame.mean()) if len(points) else 0.0,
        "cleanupFilled": cleaned.filled / area if area else 0.0,
        "cleanupRemoved": cleaned.removed / (area - cleaned.filled + cleaned.removed)
        if area - cleaned.filled + cleaned.removed else 0.0,
    }
    assert list(figures) == [f.name for f in RELIGHTING_MASK]  # one declaration: the same names, in order
    return {name: round(value, 4) for name, value in figures.items()}
