"""Stage 3's new illumination (the lab's relighting "degradation synthesis"): normals, Lambertian soft shading,
procedural hard shadows and Phong specular highlights.

Conventions: image x to the right, y down, z towards the viewer; normals and light directions are
unit vectors in that frame, (H, W, 3) float32. Shading multiplies the albedo (float32 BGR, 0..1).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

VIEW = np.array([0.0, 0.0, 1.0], np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)


def hemisphere_direction(rng: np.random.Generator, min_elevation_deg: float = 0.0) -> list[float]:
    """A light direction drawn uniformly from the hemisphere facing the viewer (z >= sin(min elev))."""
    z = rng.uniform(math.sin(math.radians(min_elevation_deg)), 1.0)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    r = math.sqrt(max(0.0, 1.0 - z * z))
    return [r * math.cos(phi), r * math.sin(phi), z]


def normals_from_height(height: np.ndarray) -> np.ndarray:
    """Normals of a height field given in pixel units (z towards the viewer)."""
    height = height.astype(np.float32, copy=False)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    # (-gx, -gy, 1) over its length, without building the (H, W, 3) array first: the same float32
    # operations as `_unit` of it (its length is at least 1), in 40 % of the time.
    norm = np.sqrt(gx * gx + gy * gy + np.float32(1.0))
    return cv2.merge([-gx / norm, -gy / norm, np.float32(1.0) / norm])


def normals_from_mask(mask: np.ndarray) -> np.ndarray:
    """Classical normals from the silhouette alone (no model): the mask inflated into a height field
    with a circular profile, sqrt(R² − (R − d)²) for distance d to the edge and R the largest
    distance, which is exactly a sphere for a disc. Outside the mask the normals face the viewer."""
    m = mask.astype(np.uint8)
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    radius = float(dist.max())
    if radius <= 0:
        return np.broadcast_to(VIEW, (*mask.shape, 3)).copy()
    height = np.sqrt(np.maximum(radius**2 - (radius - dist) ** 2, 0.0)).astype(np.float32)
    # Smooth the medial-axis creases of the distance transform, not the silhouette.
    height = cv2.GaussianBlur(height, (0, 0), max(1.0, radius / 8.0)) * (m > 0)
    normals = normals_from_height(height)
    normals[m == 0] = VIEW
    return normals


def normals_from_depth(disparity: np.ndarray, mask: np.ndarray, relief: float = 0.35) -> np.ndarray:
    """Normals from a relative depth model's output (inverse depth: larger is closer), scaled so the
    person's depth range spans `relief` × the image width (relative depth has no metric scale)."""
    d = disparity.astype(np.float32)
    inside = d[mask] if mask.any() else d.ravel()
    lo, hi = np.percentile(inside, (2.0, 98.0))
    height = (np.clip((d - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0) * relief * d.shape[1]).astype(np.float32)
    height = cv2.GaussianBlur(height, (0, 0), max(1.0, d.shape[1] / 256.0))
    normals = normals_from_height(height)
    normals[~mask] = VIEW
    return normals


def lambert(normals: np.ndarray, light: np.ndarray | list[float], ambient: float) -> np.ndarray:
    """Shading factor `ambient + (1 − ambient) × max(0, N·L)`, (H, W)."""
    n_dot_l = np.einsum("hwc,c->hw", normals, _unit(np.asarray(light, np.float32)))
    return (ambient + (1.0 - ambient) * np.maximum(n_dot_l, 0.0)).astype(np.float32)


def phong(normals: np.ndarray, light: np.ndarray | list[float], shininess: float) -> np.ndarray:
    """Phong highlight `max(0, R·V)^shininess` with R = 2(N·L)N − L and the viewer along +z, (H, W)."""
    ll = _unit(np.asarray(light, np.float32))
    n_dot_l = np.einsum("hwc,c->hw", normals, ll)
    reflect = 2.0 * n_dot_l[..., None] * normals - ll
    r_dot_v = np.maximum(np.einsum("hwc,c->hw", reflect, VIEW), 0.0) * (n_dot_l > 0)
    return np.power(r_dot_v, shininess).astype(np.float32)


# -- procedural shadow patterns: (H, W) float32 in 0..1, 1 = fully in shadow, regenerated from a seed

def perlin(shape: tuple[int, int], cells: float, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal gradient (Perlin) noise in 0..1 with about `cells` lattice cells across the short side."""
    h, w = shape
    rng = np.random.default_rng(seed)
    total = np.zeros((h, w), np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        res = cells * 2**octave
        step = res / min(h, w)
        gh, gw = int(h * step) + 2, int(w * step) + 2
        angles = rng.uniform(0, 2 * math.pi, (gh, gw)).astype(np.float32)
        grad = np.dstack([np.cos(angles), np.sin(angles)])
        ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) * step, np.arange(w, dtype=np.float32) * step,
                             indexing="ij")
        y0, x0 = ys.astype(np.int32), xs.astype(np.int32)
        fy, fx = ys - y0, xs - x0

        def dot(oy: int, ox: int, y0: np.ndarray = y0, x0: np.ndarray = x0, fy: np.ndarray = fy,
                fx: np.ndarray = fx, grad: np.ndarray = grad) -> np.ndarray:
            g = grad[y0 + oy, x0 + ox]
            return g[..., 0] * (fx - ox) + g[..., 1] * (fy - oy)

        uy, ux = fy**3 * (fy * (fy * 6 - 15) + 10), fx**3 * (fx * (fx * 6 - 15) + 10)
        top = dot(0, 0) + ux * (dot(0, 1) - dot(0, 0))
        bottom = dot(1, 0) + ux * (dot(1, 1) - dot(1, 0))
        total += amplitude * (top + uy * (bottom - top))
        norm += amplitude
        amplitude *= 0.5
    return np.clip(total / norm * 1.2 + 0.5, 0.0, 1.0)


def geometric(shape: tuple[int, int], seed: int, softness: float = 0.01) -> np.ndarray:
    """A hard-edged cast shadow: a random polygon (a window frame, a wall edge) with a narrow penumbra."""
    h, w = shape
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 6))
    centre = rng.uniform(0.2, 0.8, 2) * (w, h)
    radius = rng.uniform(0.25, 0.6) * max(h, w)
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    pts = np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], 1)
    out = np.zeros((h, w), np.float32)
    cv2.fillPoly(out, [pts.round().astype(np.int32)], 1.0)
    return cv2.GaussianBlur(out, (0, 0), max(0.5, softness * min(h, w)))


def blob(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Soft blobs (foliage, a hand's shadow): a few random ellipses, strongly blurred."""
    h, w = shape
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(0.05, 0.25) * w), int(rng.uniform(0.05, 0.25) * h))
        cv2.ellipse(out, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    return np.clip(cv2.GaussianBlur(out, (0, 0), 0.04 * min(h, w)) * 1.5, 0.0, 1.0)


def pattern(kind: str, shape: tuple[int, int], seed: int, cells: float = 3.0) -> np.ndarray:
    if kind == "perlin":
        return perlin(shape, cells, seed)
    if kind == "geometric":
        return geometric(shape, seed)
    if kind == "blob":
        return blob(shape, seed)
    raise ValueError(f"unknown shadow pattern {kind!r} (allowed: perlin, geometric, blob)")
