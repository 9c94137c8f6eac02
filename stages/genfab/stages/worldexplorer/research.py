"""What the SEVA and VGGT adapters share: the similarity that puts another model's cameras into the
scene's frame (importing their code: genfab.stages.models.research)."""

from __future__ import annotations

import numpy as np


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, R, t) minimising |scale · R · source + t - target|² over corresponding (N, 3) points
    (Umeyama 1991: least squares, a proper rotation). Needs three points not on one line."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 3:
        raise ValueError(f"similarity needs matching (N >= 3, 3) point sets, got {source.shape} and {target.shape}")
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    variance = float((s ** 2).sum()) / len(source)
    if variance < 1e-12:
        raise ValueError("similarity needs source points that are not all in one place")
    u, d, vt = np.linalg.svd(t.T @ s / len(source))
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / variance
    return scale, rotation, mu_t - scale * rotation @ mu_s
