"""difix's triplet figures on pictures with known answers (a render equal to its target, a black render,
a noisy one), a unit's per-item figures in a shard's histograms, and the adapter's quality filter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from genfab.api.quality import DIFIX_TRIPLET, FIGURES, QualityBound, QualityGate, figure_items
from genfab.stages.difix.split_stage import quality_filter
from genfab.stages.difix.triplet_figures import triplet_figures


def picture(seed: int = 0, shape: tuple[int, int] = (300, 400)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    base = ((np.sin(xx / 17.0) + np.cos(yy / 23.0)) * 45 + 128).astype(np.float32)  # 38..218: none dark
    noise = rng.normal(0, 4, (*shape, 3))
    return np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)


def test_every_declared_figure_is_computed_in_order() -> None:
    assert list(triplet_figures(picture(), picture(), 5.0)) == [f.name for f in DIFIX_TRIPLET]


def test_a_render_equal_to_its_target() -> None:
    f = triplet_figures(picture(), picture(), 12.5)
    assert f == {"renderPsnr": 100.0, "renderSsim": 1.0, "renderDark": 0.0, "refAngleDeg": 12.5}


def test_a_black_render_is_dark_and_far_from_its_target() -> None:
    target = picture()
    f = triplet_figures(np.zeros_like(target), target, 5.0)
    assert f["renderDark"] == 1.0 and f["renderPsnr"] < 10 and f["renderSsim"] < 0.05
    assert FIGURES["renderDark"].keep == (None, 0.95)


def test_a_degraded_render_lies_between() -> None:
    target = picture()
    render = np.clip(target.astype(np.float32) + np.random.default_rng(1).normal(0, 20, target.shape), 0, 255)
    f = triplet_figures(render.astype(np.uint8), target, 5.0)
    assert 18 < f["renderPsnr"] < 30 and 0.1 < f["renderSsim"] < 0.95 and f["renderDark"] < 0.01


def test_a_unit_s_items_each_have_their_own_figures() -> None:
    assert figure_items("scene", {"a": {"renderPsnr": 20.0}, "b": {"renderPsnr": 30.0}}) == [
        ("a", {"renderPsnr": 20.0}), ("b", {"renderPsnr": 30.0})]
    assert figure_items("s1", {"maskArea": 0.4}) == [("s1", {"maskArea": 0.4})]
    assert figure_items("s1", None) == [] and figure_items("s1", {}) == []


def scene(*quality: dict[str, Any]) -> dict[str, Any]:
    fields = {"dataset": "generic", "scene_name": "s", "group_id": "g", "target_cam_id": 1, "reference_cam_id": 2,
              "target_fname": "f", "reference_fname": "r"}
    return {"samples": [{"sample_id": f"t{i}", **fields, "quality": q} for i, q in enumerate(quality)], "dropped": []}


@pytest.mark.parametrize(("given", "dropped"), [
    ({}, {"t2"}),  # the defaults: renderDark at most 0.95
    ({"renderPsnr": QualityBound(max=25)}, {"t1", "t2"}),
    ({"renderDark": QualityBound()}, set()),  # the default lifted
])
def test_the_adapter_leaves_out_the_triplets_outside_a_bound(given: dict[str, QualityBound], dropped: set[str]
                                                            ) -> None:
    scenes = [scene({"renderPsnr": 20.0, "renderDark": 0.0}, {"renderPsnr": 30.0, "renderDark": 0.1},
                    {"renderPsnr": 20.0, "renderDark": 1.0})]
    assert quality_filter(scenes, QualityGate.of(DIFIX_TRIPLET, given)) == dropped
    assert {m["sample_id"] for m in scenes[0]["samples"]} == {"t0", "t1", "t2"} - dropped
    rows = scenes[0]["dropped"]
    assert {r["sample_id"] for r in rows} == dropped and all(r["reason"] == "QualityOutOfRange" for r in rows)
    assert all(r["scene_name"] == "s" and r["target_cam_id"] == 1 for r in rows)
