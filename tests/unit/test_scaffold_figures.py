"""The scaffold's figures from its per-gap record: the mean hole share always, the lowest chosen CLIP
score only where CLIP chose every in-between view."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.stages.worldexplorer.scaffold_figures import scaffold_figures


def gap(hole: float, scores: list[float] | None = None, chosen: int | None = None) -> dict[str, Any]:
    return {"holeFraction": hole, "scores": scores, "chosen": chosen}


@pytest.mark.parametrize(("gaps", "expected"), [
    ({}, {}),
    ({"001": gap(0.2), "003": gap(0.4)}, {"scaffoldHoleShare": 0.3}),  # fast: no scores
    ({"001": gap(0.2, [21.0, 30.5], 1), "003": gap(0.6, [25.0, 18.0], 0)},
     {"scaffoldHoleShare": 0.4, "scaffoldClipMin": 25.0}),  # the chosen ones' scores, not the best
    ({"001": gap(0.1, [21.0, 30.5], None), "003": gap(0.1, [25.0], None)}, {"scaffoldHoleShare": 0.1}),  # manual
    ({"001": gap(0.0, [40.0], 0), "003": gap(0.0, None, None)}, {"scaffoldHoleShare": 0.0}),  # not every gap
])
def test_scaffold_figures(gaps: dict[str, dict[str, Any]], expected: dict[str, float]) -> None:
    assert scaffold_figures(gaps) == expected
