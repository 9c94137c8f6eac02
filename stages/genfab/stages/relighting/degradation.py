"""Stage 3's decisions and rendering, split so that a sample's params JSON fully describes it:
`draw_params` (config + seed -> params) and `render` (albedo, normals, mask, params -> image)."""

from __future__ import annotations

import numpy as np

from genfab.api.common import FloatRange
from genfab.api.relighting import DegradationConfig, DegradationWeights
from genfab.api.relighting_params import LightingParams, ShadowPattern
from genfab.stages.relighting import shading

METHODS = ("softShading", "hardShadow", "specular", "ambientOnly")
SUBTLE_SHADOW = (0.05, 0.15)
"""Strength range of soft shading's optional "subtle shadow patterns" (the lab's relighting document)."""


def _uniform(rng: np.random.Generator, r: FloatRange) -> float:
    return float(rng.uniform(r.min, r.max))


def _weight(weights: DegradationWeights, method: str) -> float:
    return float(weights.model_dump(by_alias=True)[method])


def choose(weights: DegradationWeights, rng: np.random.Generator) -> str:
    """A method drawn with the configured relative weights (one uniform draw over their sum, methods
    in a fixed order)."""
    u, acc = rng.random() * weights.total(), 0.0
    for name in METHODS:
        acc += _weight(weights, name)
        if u < acc:
            return name
    return max(METHODS, key=lambda n: _weight(weights, n))  # u ~ the sum with rounding


def draw_params(config: DegradationConfig, seed: int) -> LightingParams:
    """Everything random about one sample's new lighting, drawn from the resource's `degradation`
    block with the sample's seed: the params JSON, which reproduces the image (`render`)."""
    rng = np.random.default_rng(seed)
    method = choose(config.weights, rng)
    soft = config.soft_shading
    params = LightingParams(method=method, seed=seed)
    if method in ("softShading", "specular"):
        params.ambient = _uniform(rng, soft.ambient)
        params.light_direction = shading.hemisphere_direction(rng)
        if soft.shadow_patterns:
            params.shadow_pattern = ShadowPattern(kind="perlin", seed=int(rng.integers(2**31)),
                                                  cells=float(rng.uniform(2.0, 5.0)),
                                                  strength=float(rng.uniform(*SUBTLE_SHADOW)))
    if method == "specular":
        spec = config.specular
        params.shininess = _uniform(rng, spec.shininess)
        params.specular_strength = _uniform(rng, spec.strength)
    if method == "hardShadow":
        hard = config.hard_shadow
        params.shadow_pattern = ShadowPattern(kind=str(rng.choice(hard.patterns)), seed=int(rng.integers(2**31)),
                                              cells=float(rng.uniform(1.5, 3.0)), strength=_uniform(rng, hard.strength))
    if method == "ambientOnly":
        params.ambient = _uniform(rng, soft.ambient)
    return params


def needs_normals(params: LightingParams) -> bool:
    return params.method in ("softShading", "specular")


def render(albedo: np.ndarray, normals: np.ndarray | None, mask: np.ndarray, params: LightingParams) -> np.ndarray:
    """The relit foreground (float32 BGR 0..1, zero outside `mask`) for `params`."""
    method = params.method
    h, w = mask.shape
    if method in ("softShading", "specular"):
        if normals is None or params.light_direction is None or params.ambient is None:
            raise ValueError(f"method {method} needs normals, a light direction and an ambient level")
        factor = shading.lambert(normals, params.light_direction, params.ambient)
    elif method == "ambientOnly" and params.ambient is not None:
        factor = np.full((h, w), params.ambient, np.float32)
    elif method == "hardShadow":
        factor = np.ones((h, w), np.float32)
    else:
        raise ValueError(f"unknown degradation method {method!r} (allowed: {', '.join(METHODS)}), or its "
                         "parameters are missing")
    pat = params.shadow_pattern
    if pat is not None:
        factor = factor * (1.0 - pat.strength * shading.pattern(pat.kind, (h, w), pat.seed, pat.cells))
    out = albedo * factor[..., None]
    if method == "specular":
        assert normals is not None and params.light_direction is not None
        out = out + (params.specular_strength or 0.0) * shading.phong(normals, params.light_direction,
                                                                     params.shininess or 1.0)[..., None]
    return np.clip(out, 0.0, 1.0) * mask[..., None]
