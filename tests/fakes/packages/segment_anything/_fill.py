"""The stand-ins' 'segmentation': a flood fill of similar colour from a point, limited to a box."""

from __future__ import annotations

import cv2
import numpy as np


def flood(image: np.ndarray, point: tuple[float, float], tolerance: int, box: np.ndarray | None = None) -> np.ndarray:
    h, w = image.shape[:2]
    x, y = int(np.clip(point[0], 0, w - 1)), int(np.clip(point[1], 0, h - 1))
    mask = np.zeros((h + 2, w + 2), np.uint8)
    diff = (tolerance,) * 3
    cv2.floodFill(image.copy(), mask, (x, y), (0, 0, 0), diff, diff, cv2.FLOODFILL_MASK_ONLY | (255 << 8) | 8)
    out = mask[1:-1, 1:-1] > 0
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in np.asarray(box).reshape(-1)[:4])
        limit = np.zeros_like(out)
        limit[max(0, y0 - 2):y1 + 3, max(0, x0 - 2):x1 + 3] = True
        out &= limit
    return out


def features(image: np.ndarray, grid: int) -> np.ndarray:
    """(9, grid, grid) colour and gradient energy of the image padded to a square, per cell,
    normalised over channels per cell."""
    h, w = image.shape[:2]
    side = max(h, w)
    padded = np.zeros((side, side, 3), np.float32)
    padded[:h, :w] = image.astype(np.float32) / 255
    chans = [padded[..., c] for c in range(3)]
    chans += [np.abs(cv2.Sobel(padded[..., c], cv2.CV_32F, 1, 0)) for c in range(3)]
    chans += [np.abs(cv2.Sobel(padded[..., c], cv2.CV_32F, 0, 1)) for c in range(3)]
    cells = np.stack([cv2.resize(c, (grid, grid), interpolation=cv2.INTER_AREA) for c in chans])
    return (cells - cells.mean(0, keepdims=True)) / np.maximum(cells.std(0, keepdims=True), 1e-6)
