"""Relighting pairs along the person's outline (issue 56): with hard masks (jagged, thin strands,
holes, corners) stages 1-3.5 leave no zeroed pixel inside the mask of the composite and no person
pixel in `_background.png`. Synthetic people have no black pixel of their own, so any black pixel
inside the mask would be one the pipeline zeroed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genfab.api.relighting import RelightingConfig
from genfab.stages.common.imaging import decode_png
from genfab.stages.relighting import degradation, matte
from genfab.stages.relighting.albedo_stage import choose, compute_albedo
from genfab.stages.relighting.degrade_stage import compute_degraded
from genfab.stages.relighting.recombine_stage import compute_composite

SIZE = 256


def jagged_ellipse(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    angle = np.arctan2(yy - 128, xx - 128)
    radius = 80 + 12 * np.sin(angle * 23) + rng.uniform(-4, 4, (SIZE, SIZE))  # a sawtooth rim, pixel noise
    return np.hypot((yy - 128) / 1.2, xx - 128) < radius


def thin_strands(rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(mask, (128, 150), (60, 80), 0, 0, 360, 1, -1)
    for _ in range(25):  # one-pixel hair strands leaving the head
        x0, y0 = int(rng.integers(80, 176)), int(rng.integers(70, 110))
        cv2.line(mask, (x0, y0), (x0 + int(rng.integers(-60, 60)), y0 - int(rng.integers(20, 65))), 1, 1)
    return mask.astype(bool)


def holes_and_corners(rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[40:220, 60:200] = True
    mask[90:110, 100:120] = False  # a hole between the arm and the body
    mask[150:152, 70:190] = False  # a two-pixel slit
    mask[30:40, 120:122] = True  # a 2-pixel spike
    mask[rng.random((SIZE, SIZE)) < 0.002] = True  # isolated pixels
    return mask


def person_picture(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A lit person (no black pixel) on a different background."""
    xx = np.mgrid[0:SIZE, 0:SIZE][1].astype(np.float32)
    light = 0.45 + 0.5 * (xx / SIZE)  # a lighting gradient over the person
    skin = np.array([90, 140, 200], np.float32) * light[..., None] + rng.uniform(-10, 10, (SIZE, SIZE, 3))
    backdrop = np.array([40, 160, 60], np.float32) + rng.uniform(-10, 10, (SIZE, SIZE, 3))
    return np.clip(np.where(mask[..., None], skin, backdrop), 20, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [jagged_ellipse, thin_strands, holes_and_corners])
@pytest.mark.parametrize("composite", ["binary", "soft"])
@pytest.mark.parametrize("method", ["retinex", "lab"])
def test_no_black_pixels_inside_the_mask_and_no_person_in_the_plate(shape, composite: str, method: str) -> None:
    rng = np.random.default_rng(7)
    mask = shape(rng)
    image = person_picture(mask, rng)
    parts = matte.split(image, mask)
    alpha = matte.alpha_of(parts["foreground"])
    assert (alpha[mask] > 0).all() and (alpha[~mask] == 0).all()  # every outline pixel is the person's
    assert (parts["background"][mask] == 0).all()  # no person pixel in `_background.png`...
    assert np.array_equal(parts["background"][~mask], image[~mask])  # ...and all of the rest

    cfg = RelightingConfig.model_validate({"input": {"uri": "file:///in/"}})
    albedo_params = choose(cfg.albedo, 11).model_copy(update={"method": method})
    albedo = compute_albedo({"id": "p", "foreground": parts["foreground"], "mask": mask, "params": albedo_params,
                             "scales": list(cfg.albedo.retinex_scales)})
    albedo_bgr = decode_png(albedo["files"]["p_albedo.png"], bgr=True)
    params = degradation.draw_params(cfg.degradation, 5)
    degraded = compute_degraded({"id": "p", "albedo": albedo_bgr, "mask": mask, "params": params})
    degraded_bgr = decode_png(degraded["files"]["p_degraded.png"], bgr=True)
    out = compute_composite({"id": "p", "composite": composite, "mask": parts["mask"],
                             "foreground": parts["foreground"], "background": parts["background"],
                             "degraded": degraded_bgr})
    result = decode_png(out["files"]["p_composite.png"], bgr=True)

    black = (result.max(axis=2) == 0) & mask
    assert int(black.sum()) == 0, f"{int(black.sum())} black pixels inside the mask"
    assert (albedo_bgr.max(axis=2)[mask] > 0).all() and (degraded_bgr.max(axis=2)[mask] > 0).all()
    assert np.array_equal(result[~mask], image[~mask])  # outside the mask: the input's bytes
    if composite == "binary":  # the seed's composite: every mask pixel is the relit person's
        assert np.array_equal(result[mask], degraded_bgr[mask])
