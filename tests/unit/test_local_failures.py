"""What a finished local run says about failures (pure: summary -> lines)."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api.summary import RunSummary
from genfab.local.failures import drop_lines, failure_line, yield_line


def stage(name: str, phase: str, samples: int = 0, succeeded: int = 0, dropped: dict[str, list[str]] | None = None,
          message: str | None = None) -> dict[str, Any]:
    return {"name": name, "phase": phase, "samples": samples, "succeeded": succeeded, "message": message,
            "dropped": {r: {"count": len(ids), "examples": ids[:3]} for r, ids in (dropped or {}).items()}}


def summary(phase: str, *stages: dict[str, Any], continue_on_error: bool = False) -> RunSummary:
    return RunSummary.model_validate({"kind": "DatasetJob", "name": "d", "phase": phase, "stages": list(stages),
                                      "continueOnError": continue_on_error})


def test_drops_by_reason_most_first_with_examples() -> None:
    s = summary("Failed", stage("segment", "Failed", 9, 3, {"Grayscale": ["c"], "Unreadable": ["a", "b", "d", "e"]}))
    assert drop_lines(s) == ["segment: 5 dropped: Unreadable 4 (a, b, d, ...), Grayscale 1 (c)"]
    assert drop_lines(summary("Succeeded", stage("segment", "Succeeded", 2, 2))) == []


@pytest.mark.parametrize(("s", "expected"), [
    (summary("Succeeded", stage("segment", "Succeeded", 2, 2)), None),
    (summary("PartiallySucceeded", stage("segment", "PartiallySucceeded", 3, 2, {"Unreadable": ["a"]}),
             continue_on_error=True), None),
    (summary("Failed", stage("segment", "Failed", 3, 2, {"Unreadable": ["a"]}), stage("albedo", "Pending")),
     "DatasetJob/d Failed: stage segment dropped 1 of 3 samples (see above), so the stages after it did not run; "
     "set `continueOnError: true` to keep the 2 good ones going"),
    (summary("Failed", stage("segment", "Failed", 0, 0, message="cannot list samples: no input files under x")),
     "DatasetJob/d Failed: stage segment: cannot list samples: no input files under x"),
    (summary("Failed", stage("segment", "Failed", 1, 0, {"Unreadable": ["a"]}, message="shard 0 failed")),
     "DatasetJob/d Failed: stage segment: shard 0 failed"),  # nothing good to keep going
])
def test_failure_line(s: RunSummary, expected: str | None) -> None:
    assert failure_line(s) == expected


@pytest.mark.parametrize(("s", "expected"), [
    (summary("Succeeded", stage("segment", "Succeeded", 4, 4), stage("organize", "Succeeded", 4, 4)),
     "yield: 4 of 4 inputs made it through every stage (100 %)"),
    (summary("PartiallySucceeded", stage("segment", "Succeeded", 16, 16),
             stage("organize", "PartiallySucceeded", 16, 12, {"QualityOutOfRange": ["a", "b", "c", "d"]}),
             continue_on_error=True), "yield: 12 of 16 inputs made it through every stage (75 %)"),
    (summary("Failed", stage("segment", "Failed", 3, 2, {"Unreadable": ["a"]}), stage("organize", "Pending")), None),
    (summary("Succeeded", stage("segment", "Succeeded", 4, 4),  # run again: every sample reused
             {**stage("organize", "Succeeded", 4, 4), "reused": 4}),
     "yield: 4 of 4 inputs made it through every stage (100 %)"),
    (summary("Succeeded", stage("segment", "Succeeded", 0, 0), stage("organize", "Succeeded", 0, 0)), None),
])
def test_a_datasets_yield_once_its_last_stage_ran(s: RunSummary, expected: str | None) -> None:
    assert yield_line(s) == expected


def test_a_scene_has_no_yield_line() -> None:
    scene = RunSummary.model_validate({"kind": "SceneJob", "name": "s", "phase": "Succeeded",
                                       "stages": [stage("expand", "Succeeded", 1, 1)]})
    assert yield_line(scene) is None
