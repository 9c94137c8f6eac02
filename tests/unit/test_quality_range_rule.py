"""A quality bound that would drop every sample (a `min` above its figure's range, a `max` below it)
is refused with one line naming the field, the value and the range; `duplicateDistance`'s range ends
at its cap, so a `min` past what it measures exactly is refused too."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from genfab.api.quality import DUPLICATE_RADIUS, REFERENCE_IMAGE, RELIGHTING, quality_range_rule
from genfab.api.relighting import RelightingConfig


class Block:
    def __init__(self, **quality: dict[str, float]) -> None:
        from genfab.api.quality import QualityBound

        self.quality = {k: QualityBound(**v) for k, v in quality.items()}


@pytest.mark.parametrize(("quality", "said"), [
    ({"duplicateDistance": {"min": 6}}, ""),
    ({"duplicateDistance": {"min": DUPLICATE_RADIUS + 1}}, ""),  # keeps only the farther ones: allowed
    ({"duplicateDistance": {"min": 12}},
     f"quality.duplicateDistance.min: 12 is above the figure's range (0 to {DUPLICATE_RADIUS + 1})"),
    ({"polygonCoverage": {"max": -0.5}}, "quality.polygonCoverage.max: -0.5 is below the figure's range (0 to 1)"),
    ({"sharpness": {"min": 1e9}}, ""),  # unbounded above: any min keeps part of it
])
def test_a_bound_outside_its_figures_range(quality: dict[str, dict[str, float]], said: str) -> None:
    rule = quality_range_rule(REFERENCE_IMAGE)
    block = Block(**quality)
    assert rule.check(block) is (not said)
    assert rule.explain(block).startswith(said) and ("drop every sample" in rule.explain(block)) is bool(said)


def test_the_spec_refuses_it_with_one_line() -> None:
    bounded = next(f for f in RELIGHTING if f.high is not None)
    with pytest.raises(ValidationError) as caught:
        RelightingConfig.model_validate({"input": {"uri": "file:///in"}, "quality": {bounded.name: {"min": 1e6}}})
    assert f"quality.{bounded.name}.min: 1e+06 is above the figure's range" in str(caught.value)
