"""The relighting pair's quality figures on synthetic pairs with known answers: no change, a uniform
lighting change, a greyed output, lifted blacks, 8×8 blocks added; and the defaults they are held to."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from genfab.api.quality import RELIGHTING, RELIGHTING_PAIR, QualityBound, out_of_range, with_defaults
from genfab.stages.relighting.pair_figures import blockiness, lab, pair_figures

H, W = 96, 80


def portrait() -> tuple[np.ndarray, np.ndarray]:
    """A smooth coloured person (orange to red, with a dark suit below) on grey, and its mask."""
    rng = np.random.default_rng(0)
    image = np.full((H, W, 3), 128, np.uint8)
    region = np.zeros((H, W), bool)
    region[10:90, 15:65] = True
    yy = np.linspace(0, 1, 80, dtype=np.float32)[:, None]
    image[10:90, 15:65] = np.stack([40 + 20 * yy, 90 + 40 * yy, 200 + 0 * yy], -1).astype(np.uint8)
    image[62:90, 15:65] = (30, 18, 14)  # a navy suit: the dark level (its edge off the 8-px grid's lines)
    noise = rng.integers(-12, 13, image.shape)  # texture: steps everywhere, not only at the suit's edge
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), region


def test_every_declared_figure_is_computed_in_order() -> None:
    image, region = portrait()
    assert list(pair_figures(image, image, region)) == [f.name for f in RELIGHTING_PAIR]


def test_a_pair_without_change() -> None:
    image, region = portrait()
    f = pair_figures(image, image, region)
    assert f == {"lightingChange": 0.0, "saturationRatio": 1.0, "deltaE00": 0.0, "darkLift": 0.0, "blockiness": 1.0}
    assert out_of_range(f, with_defaults(RELIGHTING_PAIR, {}), ()) == "lightingChange 0 below min 0.5"


def test_a_brighter_light_changes_lightness_and_keeps_colour() -> None:
    image, region = portrait()
    brighter = np.clip(image.astype(np.float32) * 1.3, 0, 255).astype(np.uint8)
    f = pair_figures(image, brighter, region)
    gain = lab(brighter)[region][:, 0] - lab(image)[region][:, 0]
    assert f["lightingChange"] == pytest.approx(float(np.abs(gain).mean()), abs=1e-3) and f["lightingChange"] > 5
    assert 0.9 < f["saturationRatio"] < 1.4 and f["deltaE00"] > 2 and f["blockiness"] == pytest.approx(1.0, abs=0.1)


def test_a_greyed_output_has_a_saturation_ratio_near_zero() -> None:
    image, region = portrait()
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    f = pair_figures(image, grey, region)
    assert f["saturationRatio"] < 0.05 and f["deltaE00"] > 10
    assert out_of_range(f, {"saturationRatio": QualityBound(min=0.8)}).startswith("saturationRatio 0.0")


@pytest.mark.parametrize("light", [0.6, 0.75, 0.9])
def test_dimmer_lighting_keeps_the_saturation_ratio(light: float) -> None:
    """The degradation's ambient goes down to 0.6: a person lit that dimly (linear light scaled) loses
    chroma with lightness and keeps its colour; the ratio stays near 1 where a chroma ratio fell to 0.6."""
    image, region = portrait()
    linear = (image.astype(np.float32) / 255.0) ** 2.2
    dimmer = np.clip(((linear * light) ** (1 / 2.2)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    f = pair_figures(image, dimmer, region)
    assert 0.93 < f["saturationRatio"] < 1.07, f
    chroma = [np.hypot(lab(x)[region][:, 1], lab(x)[region][:, 2]).mean() for x in (image, dimmer)]
    assert chroma[1] / chroma[0] < 0.97  # what the figure used to be: below 1 for light alone


def test_the_saturation_ratio_reads_only_pixels_lit_enough_to_have_a_colour() -> None:
    image, region = portrait()
    noisy = image.copy()
    noisy[62:90, 15:65] = (14, 18, 30)  # the navy suit's JPEG chroma turned around: noise, not colour
    assert pair_figures(image, noisy, region)["saturationRatio"] == pytest.approx(1.0, abs=0.02)
    black = np.full_like(image, 10)
    assert pair_figures(black, black // 2, region)["saturationRatio"] == 1.0  # nothing lit: nothing to read


def test_lifted_blacks_show_as_dark_lift() -> None:
    image, region = portrait()
    lifted = image.copy()
    suit = np.zeros_like(region)
    suit[62:90, 15:65] = True
    lifted[suit] = (70, 60, 56)  # the navy suit turned charcoal
    f = pair_figures(image, lifted, region)
    assert f["darkLift"] > 15 and out_of_range(f, with_defaults(RELIGHTING_PAIR, {}), ()).startswith("darkLift")


def test_blocks_added_by_the_output_show_as_blockiness_above_one() -> None:
    image, region = portrait()
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert blockiness(gray, region) == pytest.approx(1.0, abs=0.15)
    blocky = cv2.resize(cv2.resize(image, (W // 8, H // 8), interpolation=cv2.INTER_AREA), (W, H),
                        interpolation=cv2.INTER_NEAREST)  # every 8x8 block one colour
    assert pair_figures(image, blocky, region)["blockiness"] > 3
    jpeg = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 5])[1], cv2.IMREAD_COLOR)
    assert pair_figures(image, jpeg, region)["blockiness"] > 1.5


def test_an_empty_mask_measures_nothing() -> None:
    image, region = portrait()
    assert pair_figures(image, image, np.zeros_like(region)) == {}


@pytest.mark.parametrize(("given", "expected"), [
    ({}, {"maskArea": (0.02, 0.95), "saturationRatio": (0.8, None), "facesOutside": (None, 0.0)}),
    ({"maskArea": QualityBound(min=0.3)}, {"maskArea": (0.3, None), "saturationRatio": (0.8, None)}),
    ({"saturationRatio": QualityBound()}, {"maskArea": (0.02, 0.95)}),  # neither side: the default lifted
    ({"holes": QualityBound(max=0)}, {"holes": (None, 0.0), "maskArea": (0.02, 0.95)}),
])
def test_a_spec_s_bounds_override_the_defaults_figure_by_figure(
        given: dict[str, QualityBound], expected: dict[str, tuple[float | None, float | None]]) -> None:
    bounds = with_defaults(RELIGHTING, given)
    for name, (low, high) in expected.items():
        assert (bounds[name].min, bounds[name].max) == (low, high), name
    lifted = [name for name, bound in given.items() if bound.min is None and bound.max is None]
    assert not set(lifted) & set(bounds)


def test_a_figure_only_a_default_bounds_may_be_missing_one_a_spec_names_may_not() -> None:
    bounds = with_defaults(RELIGHTING, {"maskArea": QualityBound(min=0.3)})
    measured = {"maskArea": 0.5}  # a sample made before genfab measured the others
    assert out_of_range(measured, bounds, ["maskArea"]) is None
    assert out_of_range({}, bounds, ["maskArea"]) == "maskArea not measured (a bound is set on it)"


def test_the_defaults_are_within_each_figure_s_range() -> None:
    for f in RELIGHTING:
        for value in f.keep or ():
            assert value is None or (f.low <= value and (f.high is None or value <= f.high)), f.name


def test_the_gate_holds_the_defaults_and_what_the_spec_names() -> None:
    """One keep-or-drop decision for every pipeline (`QualityGate`): the defaults are in it (so in the plan
    and its hash); a figure the spec names must be measured, one only a default bounds may be missing."""
    from genfab.api.quality import QualityGate

    gate = QualityGate.of(RELIGHTING, {"maskArea": QualityBound(min=0.3), "lightingChange": QualityBound()})
    assert gate.named == ["lightingChange", "maskArea"]
    assert "saturationRatio" in gate.bounds and "lightingChange" not in gate.bounds  # a default lifted
    assert gate.missed({}) == "maskArea not measured (a bound is set on it)"
    assert gate.missed({"maskArea": 0.5}) is None
    assert gate.missed({"maskArea": 0.2}) == "maskArea 0.2 below min 0.3"
    assert gate.missed({"maskArea": 0.5, "saturationRatio": 0.5}) == "saturationRatio 0.5 below min 0.8"
