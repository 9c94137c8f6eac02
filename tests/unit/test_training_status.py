"""A TuningRun's training document as its status: the best checkpoint by held-out PSNR (only among
the checkpoints kept and evaluated at their own step), untrusted values dropped; `genfab status`'s lines."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api.training import TrainingState
from genfab.cli.follow import training_lines
from genfab.contract.names import best_checkpoint
from genfab.status.training import held_out, training_status

URI = "s3://lab/runs/difix/checkpoints"


@pytest.mark.parametrize(("psnr", "names", "expected"), [
    ({}, ["model_3.pkl"], None),
    ({3: 21.5, 6: 22.0}, ["model_3.pkl", "model_6.pkl"], (6, "model_6.pkl", 22.0)),
    ({3: 23.0, 6: 22.0}, ["model_3.pkl", "model_6.pkl"], (3, "model_3.pkl", 23.0)),  # not the latest
    ({3: 23.0, 6: 22.0}, ["model_6.pkl"], (6, "model_6.pkl", 22.0)),  # the best was pruned: the best kept
    ({5: 30.0, 6: 22.0}, ["model_3.pkl", "model_6.pkl"], (6, "model_6.pkl", 22.0)),  # step 5 has no checkpoint
    ({3: 22.0, 6: 22.0}, ["model_3.pkl", "model_6.pkl"], (6, "model_6.pkl", 22.0)),  # a tie: the later
])
def test_best_checkpoint(psnr: dict[int, float], names: list[str], expected: Any) -> None:
    assert best_checkpoint(psnr, names) == expected


def test_held_out_keeps_finite_values_at_step_keys_only() -> None:
    raw = {"3": 21.0, "6": float("nan"), "x": 1.0, "9": "22", "12": True, "15": 24.0, 18: 25.0}
    assert held_out(TrainingState.model_validate({"heldOutPsnr": raw})) == {3: 21.0, 15: 24.0}
    assert held_out(TrainingState.model_validate({"heldOutPsnr": "not a dict"})) == {}


def test_the_status_names_the_best_checkpoint_and_the_latest() -> None:
    doc = {"step": 6, "maxSteps": 6, "checkpoints": ["model_3.pkl", "model_6.pkl"],
           "heldOutPsnr": {"3": 23.12346, "6": 22.0}}
    st = training_status(TrainingState.model_validate(doc), URI)
    assert st is not None and st.latest_checkpoint == f"{URI}/model_6.pkl"
    assert (st.best_checkpoint, st.best_step, st.best_psnr) == (f"{URI}/model_3.pkl", 3, 23.1235)
    lines = training_lines(st)
    assert lines[0].startswith("training: step 6/6")
    assert lines[-1] == f"  best checkpoint:   {URI}/model_3.pkl (step 3, held-out PSNR 23.12 dB)"
    plain = training_status(TrainingState.model_validate({"step": 1, "checkpoints": ["model_1.pkl"]}), URI)
    assert plain is not None and plain.best_checkpoint is None
