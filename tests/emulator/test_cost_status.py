"""What a stage costs reaches the status through the real operator: while it runs, the GPU-seconds its
shards have used (finished shards and the running ones' last reports) and an ETA from the rate its
samples were made at; once it ended, the GPU-seconds of all its shards and no ETA."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import stage, wait_phase, wait_status

pytestmark = pytest.mark.emulator
SHARD_SECONDS = 0.6


def test_gpu_seconds_and_the_eta_in_the_status(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda name, index, attempt: (
        Behaviour(hold=True) if name == "scaffold" and index >= 2 else Behaviour(seconds=SHARD_SECONDS))
    doc = make_scenejob(tmp_path, samples=4, shard_size=1)
    emu.apply(doc)
    try:
        running = wait_status(emu, doc, "scaffold half done", lambda st: any(
            s["name"] == "scaffold" and s["samples"]["succeeded"] == 2 and s.get("etaSeconds") for s in st["stages"]))
        scaffold = stage(running, "scaffold")
        assert scaffold["phase"] == "Running"
        # two finished shards of about SHARD_SECONDS each, one GPU per Pod (and the held ones, as reported)
        assert 2 * SHARD_SECONDS * 0.8 <= scaffold["gpuSeconds"] < 60
        assert 0 < scaffold["etaSeconds"] < 600
    finally:
        emu.kubelet.release("scaffold")
    st = wait_phase(emu, doc, "Succeeded", "Failed", timeout=90)
    assert st["phase"] == "Succeeded", st
    for name in ("scaffold", "expansion", "gaussians"):
        done = stage(st, name)
        # four shards of at least SHARD_SECONDS each (the held ones ran longer), one GPU per Pod
        assert done.get("etaSeconds") is None and done["gpuSeconds"] >= 4 * SHARD_SECONDS * 0.8, name
        assert done["tally"]["shardSeconds"] == pytest.approx(done["gpuSeconds"], abs=0.1)
