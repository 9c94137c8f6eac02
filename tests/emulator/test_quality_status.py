"""The quality figures and the samples a `quality` bound drops reach a relighting DatasetJob's status
through the real operator: the segment stage's figure histograms and spans, the organize stage's
`QualityOutOfRange` drops (count, examples) in its tally, the resource PartiallySucceeded without
`continueOnError` (a filter at work, not an error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genfab.api.quality import FIGURES
from tests.emulator.harness import Emulator
from tests.emulator.kubelet import Behaviour
from tests.emulator.test_scenarios import wait_phase

pytestmark = pytest.mark.emulator
DROPPED = "maskArea 0.6121 above max 0.5"
MEASURED = {"maskArea": 0.4027, "boundaryOnEdge": 0.9012, "facesOutside": 0.0}


def quality_job(tmp: Path, samples: int = 4) -> dict[str, Any]:
    """A relighting DatasetJob over `samples` inputs, two a shard, with a bound on `maskArea`."""
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(samples):
        (inputs / f"p{i}.png").write_bytes(b"png")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
            "metadata": {"name": "quality", "namespace": "lab-quality"},
            "spec": {"type": "relighting", "output": f"file://{tmp}/out", "shardSize": 2,
                     "relighting": {"input": {"uri": f"file://{inputs}"}, "segmentation": {"backends": ["classical"]},
                                    "degradation": {"softShading": {"normals": "classical"}},
                                    "quality": {"maskArea": {"max": 0.5}}}}}


def script(stage: str, index: int, attempt: int) -> Behaviour:
    if stage == "segment":
        return Behaviour(seconds=0.05, figures=MEASURED)
    if stage == "organize" and index == 0:
        return Behaviour(seconds=0.05, fail_samples=1, fail_reason="QualityOutOfRange", fail_message=DROPPED)
    return Behaviour(seconds=0.05)


def test_the_figures_and_the_quality_drops_are_in_the_status(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = script
    doc = quality_job(tmp_path)
    emu.apply(doc)
    st = wait_phase(emu, doc, "PartiallySucceeded", "Failed", timeout=90)
    assert st["phase"] == "PartiallySucceeded", st
    stages = {s["name"]: s for s in st["stages"]}
    organize = stages["organize"]["tally"]
    assert organize["dropped"] == {"QualityOutOfRange": {"count": 1, "examples": ["p0"]}}
    assert organize["succeeded"] == 3 and stages["organize"]["phase"] == "PartiallySucceeded"
    segment = stages["segment"]["tally"]
    assert set(segment["figures"]) == set(MEASURED)
    for name, value in MEASURED.items():
        counts = segment["figures"][name]
        assert len(counts) == len(FIGURES[name].edges) - 1 and sum(counts) == 4
        assert counts[FIGURES[name].bin(value)] == 4 and segment["figureSpans"][name] == [value, value]
