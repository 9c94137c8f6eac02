"""Masks to ultralytics' YOLO segmentation format, and back.

A label file has one line per object: `<class> x1 y1 x2 y2 ...`, the polygon's vertices normalised
by the image width and height (ultralytics' documented segmentation format). One object is one
polygon, so a mask with several parts or with holes becomes one outline: its contours (outer
boundaries and holes) are chained by zero-width bridges between their nearest points, walked
there and back (the way ultralytics' own COCO converter merges segments). Filling that outline
gives back the mask: bridges enclose no area and holes are walked inside the outer boundary.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import cv2
import numpy as np

MIN_PART_AREA = 4.0
"""Contours enclosing fewer pixels than this are noise, not object parts."""
MIN_PART_FRACTION = 1e-4
"""Nor parts or holes under this fraction of the image (105 px at 1024²): SAM2's own speckle and hole
removal needs its CUDA extension, which the images do not build, and thousands of speckles made
the merge of outlines take a second per image (benchmarks/results/reference_object.md)."""
BRUTE_FORCE_PAIRS = 4096
"""Nearest points between two outlines by all pairs up to this many pairs, by a k-d tree beyond."""


def mask_contours(mask: np.ndarray, simplify: float = 0.5) -> list[np.ndarray]:
    """The outer boundaries and holes of a binary mask, largest first, each (N, 2) float pixel
    coordinates, simplified to within `simplify` pixels."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    smallest = max(MIN_PART_AREA, MIN_PART_FRACTION * binary.size)
    kept = [c for c in contours if len(c) >= 3 and cv2.contourArea(c) >= smallest]
    kept.sort(key=lambda c: -cv2.contourArea(c))
    out = []
    for c in kept:
        approx = cv2.approxPolyDP(c, simplify, True) if simplify > 0 else c
        if len(approx) >= 3:
            out.append(approx.reshape(-1, 2).astype(np.float64))
    return out


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(index in `a`, index in `b`) of the closest pair of points."""
    if len(a) * len(b) <= BRUTE_FORCE_PAIRS:
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        pair = np.unravel_index(int(np.argmin(d)), d.shape)
        return int(pair[0]), int(pair[1])
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(b).query(a)
    best = int(np.argmin(dist))
    return best, int(idx[best])


def merge_segments(segments: Sequence[np.ndarray]) -> np.ndarray:
    """One closed outline through every segment: segment k is entered at the point nearest to
    segment k-1, left toward segment k+1 at its point nearest to it, and the walk comes back the
    same bridges, finishing each segment's loop on the way back."""
    if not segments:
        return np.zeros((0, 2))
    if len(segments) == 1:
        return np.asarray(segments[0], dtype=np.float64)
    segs = [np.asarray(s, dtype=np.float64) for s in segments]
    links = [_nearest(segs[k], segs[k + 1]) for k in range(len(segs) - 1)]  # (exit of k, entry of k+1)
    # Rotate each segment so it starts at its entry point (segment 0 at its exit point).
    entry = [links[0][0]] + [links[k - 1][1] for k in range(1, len(segs))]
    rotated = [np.roll(s, -e, axis=0) for s, e in zip(segs, entry, strict=True)]
    exits = [(links[k][0] - entry[k]) % len(segs[k]) if k < len(links) else 0 for k in range(len(segs))]
    forward: list[np.ndarray] = []
    backward: list[np.ndarray] = []
    for k, s in enumerate(rotated):
        if k == 0:
            forward.append(s)  # the whole loop, back at its exit point
            forward.append(s[:1])
        elif k == len(rotated) - 1:
            forward.append(s)
            forward.append(s[:1])
        else:
            e = exits[k]
            forward.append(s[: e + 1])  # entry -> exit one way round
            backward.append(np.concatenate([s[e:], s[:1]]))  # exit -> entry the rest of the way
    path = forward + backward[::-1]
    return np.concatenate(path, axis=0)


def mask_to_polygon(mask: np.ndarray, simplify: float = 0.5) -> np.ndarray:
    """One outline (N, 2) in pixels for the whole mask; empty when the mask is empty."""
    return merge_segments(mask_contours(mask, simplify))


def label_line(polygon: np.ndarray, width: int, height: int, cls: int = 0) -> str:
    """One object's line: `<class> x1 y1 ...` normalised to [0, 1], 6 decimals."""
    if len(polygon) < 3:
        raise ValueError("a polygon needs at least 3 points")
    norm = np.clip(np.asarray(polygon, dtype=np.float64) / [width, height], 0.0, 1.0)
    return f"{cls} " + " ".join(f"{v:.6f}" for v in norm.reshape(-1))


def parse_label(text: str) -> list[tuple[int, np.ndarray]]:
    """(class, (N, 2) normalised points) per line of a YOLO segmentation label."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        values = [float(v) for v in parts[1:]]
        if len(values) < 6 or len(values) % 2:
            raise ValueError(f"line {n}: a segment needs an even number (>= 6) of coordinates, got {len(values)}")
        out.append((int(parts[0]), np.asarray(values).reshape(-1, 2)))
    return out


def rasterize(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The mask (uint8 0/1) a normalised outline fills at this image size."""
    mask = np.zeros((height, width), np.uint8)
    if len(points):
        pts = np.round(np.asarray(points) * [width, height]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def split_assignment(ids: Sequence[str], ratio: float, seed: int) -> dict[str, str]:
    """`train` or `val` per id: a seeded shuffle of the sorted ids, the first round(n x ratio) train
    (at least one of each when there are two or more). The same ids, ratio and seed always give the
    same split, so every shard of the stage agrees."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n = len(order)
    train = round(n * ratio)
    if n >= 2:
        train = min(max(train, 1), n - 1)
    return {i: ("train" if k < train else "val") for k, i in enumerate(order)}


def dataset_yaml(names: Sequence[str], path: str | None) -> str:
    """ultralytics' dataset file for the `train/images`, `val/images` layout. `path` is the dataset
    root on the machine that reads it; None leaves it out, and ultralytics then uses the folder the
    YAML file is in (a dataset copied down from object storage)."""
    lines = ["# YOLO segmentation dataset written by genfab (reference-object)"]
    if path is None:
        lines.append("# path: not set: ultralytics uses this file's folder")
    else:
        lines.append(f"path: {path}")
    lines += ["train: train/images", "val: val/images", f"nc: {len(names)}", "names:"]
    lines += [f"  {i}: {name}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"
