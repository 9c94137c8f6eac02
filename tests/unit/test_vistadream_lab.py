"""The vistadream benchmarks' decisions: the lab's choice among coarse candidates, genfab's seconds for a
scene, each scene's own seconds from the shard reports, and what a run cut off by its machine's time gives
the comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks.vistadream_e2e import sample_seconds, timed_parts
from benchmarks.vistadream_lab import genfab_scene_seconds, lab_seconds, pick


@pytest.mark.parametrize(("ratios", "picked", "expected"), [
    ([0.01, 0.10, 0.20, 0.30], [], 2),  # the largest hole ratio inside [0.05, 0.25]
    ([0.01, 0.10, 0.20, 0.30], [3], 1),  # not next to a picked pose
    ([0.01, 0.02, 0.40, 0.90], [], 1),  # none in the band: the closest to it (the `closest` fallback)
    ([0.10, 0.20], [0, 1], 1),  # every pose excluded: all are allowed again
])
def test_the_lab_picks_the_largest_allowed_hole_ratio_in_its_band(ratios: list[float], picked: list[int],
                                                                  expected: int) -> None:
    assert pick(np.array(ratios), picked) == expected


def _lab(complete: bool, views: int) -> dict[str, Any]:
    return {"complete": complete, "views": [{"pose": i} for i in range(views)], "views_planned": 8,
            "seconds": {"outpaint": 22.5, "depth": 0.3, "gaussians": 1.5, "coarse": 28.8 * views, "render": 0.0}}


def test_a_complete_run_is_taken_as_it_is() -> None:
    assert lab_seconds(_lab(True, 8)) == (_lab(True, 8)["seconds"], "")


def test_a_cut_off_run_counts_its_finished_views_for_all_and_leaves_out_what_it_did_not_reach() -> None:
    seconds, said = lab_seconds(_lab(False, 2))
    assert seconds == {"outpaint": 22.5, "depth": 0.3, "gaussians": 1.5, "coarse": pytest.approx(28.8 * 8)}
    assert "cut off after 2 of 8 coarse views" in said
    assert "coarse" not in lab_seconds(_lab(False, 0))[0]


def test_genfab_s_scene_is_a_warm_one_when_the_run_made_several() -> None:
    one = {"seconds": 68.1, "modelLoadSeconds": 30.5, "sampleSeconds": [36.9]}
    assert genfab_scene_seconds(one) == pytest.approx(37.6)  # its load apart; start and warm-up stay in
    several = {"seconds": 90.0, "modelLoadSeconds": 30.5, "sampleSeconds": [36.9, 8.0, 10.0]}
    assert genfab_scene_seconds(several) == pytest.approx(9.0)  # the first scene's warm-up left out
    assert genfab_scene_seconds({"seconds": 18.5, "modelLoadSeconds": 0.0}) == pytest.approx(18.5)


def test_each_scene_s_own_seconds_come_shard_by_shard_in_sample_order() -> None:
    reports = [{"index": 1, "seconds": {"photorealistic/index_0008": 7.0}},
               {"index": 0, "seconds": {"photorealistic/index_0001": 8.0, "photorealistic/index_0000": 30.0}},
               {"index": 2}]  # a shard whose samples were all reused made none
    assert sample_seconds(reports) == [30.0, 8.0, 7.0]


def test_the_seconds_a_stage_s_outputs_record_are_collected_but_not_genfab_s_own_records(tmp_path: Path) -> None:
    (tmp_path / "synthetic" / "gaussians").mkdir(parents=True)
    (tmp_path / "synthetic" / "gaussians" / "metrics.json").write_text(json.dumps({"seconds": 1.5, "splats": 9}))
    (tmp_path / "synthetic" / "render").mkdir()
    (tmp_path / "synthetic" / "render" / "summary.json").write_text(json.dumps({"frames": ["a"]}))
    (tmp_path / "_genfab").mkdir()
    (tmp_path / "_genfab" / "summary.json").write_text(json.dumps({"seconds": 99.0}))
    assert timed_parts(tmp_path) == {"synthetic/gaussians/metrics.json": 1.5}


RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.mark.parametrize(("lab", "genfab", "fill", "total"), [
    # the pairs of results/vistadream.md §5, each measured on one machine
    ("vistadream-lab-h200.json", "vistadream-e2e-h200.json", "its default offload",
     "| **248.7** | **44.5** | **0.18x** |"),
    ("vistadream-lab-resident-h200.json", "vistadream-e2e-3scenes-h200.json", "offload=False",
     "| **54.7** | **51.9** | **0.95x** |"),
])
def test_compare_names_the_lab_s_fill_setting_and_totals_the_warm_scenes(
        lab: str, genfab: str, fill: str, total: str, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from benchmarks.vistadream_lab import compare

    assert compare(argparse.Namespace(lab=str(RESULTS / lab), genfab=str(RESULTS / genfab))) == 0
    out = capsys.readouterr().out
    assert f"(FLUX fill: {fill})" in out and "on a warm Pod" in out
    assert out.rstrip().endswith(total)
