"""The TuningRun's training documents, one model each for writer and reader: each round-trips, reads a
document a Pod or a lab's trainer wrote leniently (a value of the wrong type or range reads as unset,
never failing the read), and spells the learning rate `learningRate` (the step logs of earlier runs,
`lr`, still read)."""

from __future__ import annotations

from typing import Any

import pytest

from genfab.api.training import StepLog, TrainConfig, TrainingState


def test_each_document_round_trips() -> None:
    state = TrainingState(step=3, max_steps=6, loss=0.5, images_per_second=2.0, eta_seconds=9.0,
                          checkpoints=["model_3.pkl"], held_out_psnr={"3": 21.5}, trainer="genfab")
    assert TrainingState.parse(state.to_json()) == state
    step = StepLog.of_losses(3, 2e-5, 1.5, {"total": 1.0, "l2": 0.25, "lpips": 0.5, "gram": 0.25})
    assert StepLog.parse(step.to_json()) == step
    assert set(step.document()) == {"step", "learningRate", "imagesPerSecond", "loss_total", "loss_l2",
                                    "loss_lpips", "loss_gram"}
    config = TrainConfig.model_validate({"trainer": "genfab", "history": [{"trainer": "genfab", "startStep": 0}],
                                         "hyperparameters": {"learning_rate": 2e-5}, "world_size": 2,
                                         "resumed_from": None})
    assert TrainConfig.parse(config.to_json()) == config
    assert config.document()["resumed_from"] is None and "train_samples" not in config.document()


@pytest.mark.parametrize(("doc", "field", "read"), [
    ({"step": True}, "step", 0),  # a bool is no count
    ({"step": 2.5}, "step", 0),
    ({"step": -1}, "step", 0),
    ({"maxSteps": "6"}, "max_steps", 0),
    ({"loss": float("nan")}, "loss", None),
    ({"loss": 3}, "loss", 3.0),
    ({"imagesPerSecond": -2.0}, "images_per_second", None),
    ({"etaSeconds": [1]}, "eta_seconds", None),
    ({"checkpoints": ["model_3.pkl", 7, None]}, "checkpoints", ["model_3.pkl"]),
    ({"checkpoints": "model_3.pkl"}, "checkpoints", []),
    ({"heldOutPsnr": {"3": 20.0, "x": 1.0, "4": "21", "5": True}}, "held_out_psnr", {"3": 20.0}),
    ({"trainer": "a\x1b[2J"}, "trainer", None),
    ({"trainer": "x" * 201}, "trainer", None),
])
def test_the_training_state_reads_a_bad_value_as_unset(doc: dict[str, Any], field: str, read: Any) -> None:
    state = TrainingState.model_validate({**doc, "someOtherKey": {"ignored": True}})
    assert getattr(state, field) == read


def test_unreadable_documents_are_none_or_empty() -> None:
    assert TrainingState.parse(b"[1, 2]") is None and TrainingState.parse(b"{") is None
    assert TrainingState.parse(b"[" * 50_000 + b"]" * 50_000) is None
    assert TrainConfig.parse(b"not json") == TrainConfig()


def test_the_learning_rate_has_one_spelling_and_earlier_logs_still_read() -> None:
    earlier = StepLog.lines(b'{"step": 1, "lr": 0.001, "loss_total": 2}\nnot json\n'
                            b'{"step": 2, "learningRate": 0.002}\n')
    assert [(s.step, s.learning_rate) for s in earlier] == [(1, 0.001), (2, 0.002)]
    assert "lr" not in StepLog(step=1, learning_rate=0.1).document()


def test_a_history_keeps_its_well_formed_starts() -> None:
    config = TrainConfig.model_validate({"history": ["x", {"trainer": 3, "startStep": 0},
                                                     {"trainer": "lab", "startStep": True},
                                                     {"trainer": "lab", "startStep": 0, "resumedFrom": None}]})
    assert [(s.trainer, s.start_step, s.resumed_from) for s in config.history] == [("lab", 0, None)]
