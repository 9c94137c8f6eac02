"""The relighting mask's quality figures on synthetic pictures with known answers: a mask along the
person's outline, a straight cut into flat background, a hole, specks, a second region, the frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from genfab.api.quality import RELIGHTING_MASK
from genfab.stages.relighting.classical import segment_classical
from genfab.stages.relighting.mask_figures import mask_figures
from genfab.stages.relighting.matte import Cleaned, clean_mask

H, W = 240, 200
PORTRAITS = Path("examples/data/portraits")


def person() -> tuple[np.ndarray, np.ndarray]:
    """A bright disc (the person) on a flat dark background, and its exact mask."""
    image = np.full((H, W, 3), 40, np.uint8)
    cv2.circle(image, (100, 110), 60, (200, 180, 170), -1)
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), (100, 110), 60, 1, -1)
    return image, mask


def figures(image: np.ndarray, mask: np.ndarray, **cleanup: object) -> dict[str, float]:
    return mask_figures(image, clean_mask(mask, **cleanup))  # type: ignore[arg-type]


def test_every_declared_figure_is_computed_in_order() -> None:
    image, mask = person()
    assert list(figures(image, mask)) == [f.name for f in RELIGHTING_MASK]


def test_a_mask_along_the_outline() -> None:
    image, mask = person()
    f = figures(image, mask)
    assert f["maskArea"] == pytest.approx(np.pi * 60**2 / (H * W), rel=0.02)
    assert f["boundaryOnEdge"] > 0.98 and f["straightCutPx"] < 8 and f["straightCutShare"] < 0.03
    assert f["straightRunPx"] < 2 * np.sqrt(2 * 60 * 1.5) + 1  # a chord within 1.5 px of a 60 px circle
    assert (f["holes"], f["components"], f["frameTouch"], f["cleanupFilled"], f["cleanupRemoved"]) == (0, 1, 0, 0, 0)


def test_a_straight_cut_into_flat_background_is_measured() -> None:
    image, mask = person()
    mask[100:200, 100:140] = True  # a block of "floor" joined to the person: its right side leaves the
    f = figures(image, mask)      # disc at y=156 (60² - 39² = 45.6² about the centre's row 110): 44 px
    assert 42 <= f["straightCutPx"] <= 46 and f["straightCutShare"] > 0.08 and f["straightRunPx"] >= 44
    assert f["boundaryOnEdge"] < 0.8


def test_a_hole_is_counted_when_kept_and_its_fill_recorded_when_filled() -> None:
    image, mask = person()
    mask[100:120, 90:110] = False  # a 20x20 hole (a badge)
    kept = figures(image, mask, fill_enclosed=False)
    assert kept["holes"] == 1 and kept["cleanupFilled"] == 0
    filled = figures(image, mask)
    assert filled["holes"] == 0 and filled["cleanupFilled"] == pytest.approx(400 / np.count_nonzero(
        clean_mask(mask).mask), rel=1e-3)


def test_specks_removed_and_a_second_person_kept_or_dropped_by_the_share() -> None:
    image, mask = person()
    mask[5:8, 5:8] = True  # a 9 px speck
    cv2.circle(mask.view(np.uint8), (175, 30), 15, 1, -1)  # a small second region
    kept = figures(image, mask, min_share=0.0)
    assert kept["components"] == 3 and kept["cleanupRemoved"] == 0
    default = figures(image, mask)
    assert default["components"] == 1 and default["cleanupRemoved"] > 0.05  # the second region went too
    assert figures(image, mask, min_share=0.05)["components"] == 2


def test_a_mask_cut_by_the_frame() -> None:
    image = np.full((H, W, 3), 40, np.uint8)
    cv2.circle(image, (100, 230), 80, (200, 180, 170), -1)
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), (100, 230), 80, 1, -1)
    f = figures(image, mask)
    assert 0.2 < f["frameTouch"] < 0.6 and f["straightCutPx"] < 8  # the frame's own edge is not a cut


def test_no_mask() -> None:
    image, _ = person()
    f = mask_figures(image, Cleaned(np.zeros((H, W), bool), 0, 0))
    assert f["maskArea"] == 0 and f["components"] == 0 and f["straightCutPx"] == 0


def test_a_straight_cut_through_stripes_that_cross_it_is_still_a_cut() -> None:
    """Hopper's flag: its stripes are edges, but they cross the mask's straight side instead of running
    along it."""
    image, mask = person()
    for y in range(0, H, 8):
        image[y:y + 4, :100] = 230  # horizontal stripes on the left half's background
    mask[40:200, 30:100] = True  # the person's mask runs straight down through them at x=30
    f = figures(image, mask)
    assert f["straightCutPx"] >= 150 and f["boundaryOnEdge"] < 0.8


def test_a_straight_side_along_a_pole_is_a_straight_run_though_not_a_cut() -> None:
    """Hopper's flag pole: the mask follows a real vertical edge of the picture for 76 px."""
    image, mask = person()
    image[:, 30:34] = 230  # a pole
    mask[40:200, 34:100] = True
    f = figures(image, mask)
    assert f["straightRunPx"] >= 150 and f["straightCutPx"] < f["straightRunPx"]


def group(*names: str, height: int = 300) -> np.ndarray:
    """A "group photo": bundled portraits side by side at one height."""
    tiles = []
    for name in names:
        image = cv2.imread(next(str(p) for p in PORTRAITS.glob(f"{name}.*")))
        tiles.append(cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height)))
    return np.hstack(tiles)


def test_the_classical_mask_takes_every_person_of_a_group_and_faces_outside_counts_who_it_left_out() -> None:
    picture = group("biden", "obama", "biden")
    mask, info = segment_classical(picture, 0)
    assert info["people"] == 3
    thirds = np.array_split(np.arange(picture.shape[1]), 3)
    assert all(mask[:, cols].mean() > 0.3 for cols in thirds)  # each person is in the mask
    assert figures(picture, mask)["facesOutside"] == 0
    left_only = mask.copy()
    left_only[:, thirds[1][0]:] = False  # as a one-person segmenter would leave it
    assert figures(picture, left_only)["facesOutside"] == 2
    # the classical backend's own face search stands in for the figure's (no second search)
    assert len(info["faces"]) == 3 and mask_figures(picture, clean_mask(left_only), info["faces"])["facesOutside"] == 2


def test_no_face_outside_a_portrait_or_in_flat_background() -> None:
    image, mask = person()
    assert figures(image, mask)["facesOutside"] == 0
