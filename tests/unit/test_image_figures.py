"""reference-object's per-image figures on masks and images with known answers: one disc, two pieces,
PerSAM and SAM2 disagreeing by half, a polygon that lost a piece, a sharp and a blurred image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genfab.api.quality import REFERENCE_IMAGE
from genfab.stages.reference_object.image_figures import image_figures
from genfab.stages.reference_object.yolo import mask_to_polygon

H, W = 120, 160


def disc(cx: int, cy: int, r: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask.astype(bool)


def texture(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def test_one_disc_its_own_polygon_and_both_models_agreeing() -> None:
    mask = disc(80, 60, 30)
    f = image_figures(texture(), mask, mask, mask_to_polygon(mask.astype(np.uint8)))
    assert list(f) == [x.name for x in REFERENCE_IMAGE if x.name != "duplicateDistance"]  # the scenes step's
    assert f["objectArea"] == pytest.approx(np.pi * 30**2 / (H * W), rel=0.03)
    assert f["objects"] == 1 and f["maskAgreement"] == 1.0 and f["polygonCoverage"] > 0.95


def test_two_pieces_a_half_agreement_and_a_polygon_that_lost_a_piece() -> None:
    mask = disc(40, 60, 20) | disc(120, 60, 20)
    half = mask.copy()
    half[:, 80:] = False  # PerSAM found one of the two pieces
    f = image_figures(texture(), mask, half, mask_to_polygon(disc(40, 60, 20).astype(np.uint8)))
    assert f["objects"] == 2 and f["maskAgreement"] == pytest.approx(0.5, abs=0.02)
    assert f["polygonCoverage"] == pytest.approx(0.5, abs=0.05)


def test_a_blurred_image_is_less_sharp_and_without_persam_there_is_no_agreement() -> None:
    sharp = texture()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    mask = disc(80, 60, 30)
    polygon = mask_to_polygon(mask.astype(np.uint8))
    a, b = image_figures(sharp, mask, None, polygon), image_figures(blurred, mask, None, polygon)
    assert b["sharpness"] < a["sharpness"] / 10 and "maskAgreement" not in a
