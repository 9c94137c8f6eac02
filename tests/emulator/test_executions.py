"""reference-object's `executionMode` through the operator: `new` chooses a timestamped execution
once and keeps it in status across spec changes; `last` takes the most recently modified execution
under the output; `last` with none says so (InvalidSpec)."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import MODELS
from tests.emulator.harness import Emulator
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import condition, jobs, stage, wait_status

pytestmark = pytest.mark.emulator
_names = itertools.count()
STAMP = re.compile(r"^\d{8}_\d{6}(_\d+)?$")


def ro_job(tmp: Path, output: Path, **ro: Any) -> dict[str, Any]:
    """A reference-object DatasetJob (steps 1-4) in a fresh namespace."""
    image = tmp / "mug.png"
    image.write_bytes(b"png")
    n = next(_names)
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
            "metadata": {"name": f"mug-{n}", "namespace": f"exec-{n}"},
            "spec": {"type": "reference-object", "output": f"file://{output}", "models": MODELS,
                     "referenceObject": {"inputImage": f"file://{image}", "objectName": "mug",
                                         "annotation": {"enabled": False}, "cvAugmentation": {"enabled": False},
                                         "qwenAugmentation": {"enabled": False}, **ro}}}


def test_new_is_chosen_once_and_kept_and_last_continues_the_newest(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    out = tmp_path / "out"
    old = out / "20250610_143022"  # an execution the seed's own tool wrote a year ago
    old.mkdir(parents=True)
    (old / "pipeline_state.json").write_text("{}")
    os.utime(old / "pipeline_state.json", (1.75e9, 1.75e9))

    first = ro_job(tmp_path, out)
    emu.apply(first)
    st = wait_status(emu, first, "white-background running", lambda st: stage(st, "white-background").get("phase")
                     == "Running")
    execution = st["execution"]
    assert STAMP.match(execution) and execution != old.name
    assert st["outputs"]["root"] == f"file://{out}/{execution}"
    assert len(jobs(emu, first)) == 1  # its stage config writes into the execution
    assert f'file://{out}/{execution}"' in str(emu.objects("configmaps", first["metadata"]["namespace"]))
    emu.wait("the shard's report in the execution", lambda: any((out / execution).rglob("*.json")))

    # a spec change plans again in the same execution
    emu.patch("DatasetJob", first["metadata"]["name"], {"spec": {"retries": 1}}, first["metadata"]["namespace"])
    st = wait_status(emu, first, "generation 2 observed", lambda st: st.get("observedGeneration") == 2)
    assert st["execution"] == execution

    later = ro_job(tmp_path, out, executionMode="last")
    emu.apply(later)
    st = wait_status(emu, later, "execution chosen", lambda st: st.get("execution"))
    assert st["execution"] == execution  # newer than the seed's one

    nothing = ro_job(tmp_path, tmp_path / "empty", executionMode="last")
    emu.apply(nothing)
    st = wait_status(emu, nothing, "InvalidSpec", lambda st: condition(st, "InvalidSpec").get("status") == "True")
    assert "executionMode last: no execution under" in condition(st, "InvalidSpec")["message"]
    assert not st.get("execution") and not jobs(emu, nothing)
    emu.kubelet.release("white-background")
