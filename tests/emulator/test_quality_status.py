"""The quality figures and the samples a `quality` bound drops reach a relighting DatasetJob's status
through the real operator: the segment stage's figure histograms and spans, the organize stage's
`QualityOutOfRange` drops (count, examples) in its tally, the resource PartiallySucceeded without
`continueOnError` (a filter at work, not an error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genfab.api.quality import FIGURES
from tests.emulator.harness import Emulator
from tests.emulator.reading import wait_phase
from tests.emulator.resources import MEASURED, quality_job, quality_script

pytestmark = pytest.mark.emulator
def test_the_figures_and_the_quality_drops_are_in_the_status(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = quality_script
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
