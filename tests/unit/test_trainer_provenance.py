"""Which trainer made a run's checkpoints: the lab trainer's name from its image's source record, the
run's history of starts across resumes, and the status field read back from an untrusted document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genfab.api.training import TrainConfig, TrainingState
from genfab.stages.tuning.provenance import SOURCE_FILE, history, lab_trainer, made_by, script_of, trainer_name
from genfab.status.training import training_status

DIFIX3D = {"name": "difix3d", "repository": "https://github.com/nv-tlabs/Difix3D",
           "commit": "c76edc595586e16732c91ddee82f3a6d83a8a9cc", "patches": ["upstream-fixes.patch"]}


@pytest.mark.parametrize(("command", "script"), [
    (["accelerate", "launch", "src/train_difix.py"], "src/train_difix.py"),
    (["accelerate", "launch", "--mixed_precision=bf16", "src/train_difix.py", "--x", "y.py"], "src/train_difix.py"),
    (["torchrun", "--nproc-per-node", "2", "/opt/difix3d/src/train_difix.py"], "/opt/difix3d/src/train_difix.py"),
    (["python", "src/train_difix.py", "--num_training_epochs", "1"], "src/train_difix.py"),
    (["python", "-m", "lab.train"], None),
    (["/usr/local/bin/lab-train"], None),
])
def test_the_script_a_command_runs(command: list[str], script: str | None) -> None:
    assert script_of(command) == script


@pytest.mark.parametrize(("script", "source", "name"), [
    ("src/train_difix.py", DIFIX3D, "difix3d:train_difix.py@c76edc595586"),
    ("src/train_difix.py", None, "custom:train_difix.py"),
    (None, None, "custom:command"),
])
def test_trainer_names(script: str | None, source: dict[str, Any] | None, name: str) -> None:
    assert trainer_name(script, source) == name


@pytest.mark.parametrize(("record", "name"), [
    (DIFIX3D, "difix3d:train_difix.py@c76edc595586"),
    ({**DIFIX3D, "commit": "main"}, "custom:train_difix.py"),            # not a commit: never guessed
    ({**DIFIX3D, "name": "../x"}, "custom:train_difix.py"),
    ("not json", "custom:train_difix.py"),
    (None, "custom:train_difix.py"),                                     # no record at all
])
def test_the_source_record_beside_the_checkout(tmp_path: Path, record: Any, name: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train_difix.py").write_text("")
    if record is not None:
        (tmp_path / SOURCE_FILE).write_text(record if isinstance(record, str) else json.dumps(record))
    found, source = lab_trainer(["accelerate", "launch", "src/train_difix.py"], tmp_path)
    assert found == name
    assert source == (record if name.startswith("difix3d") else None)


LAB = "difix3d:train_difix.py@c76edc595586"


@pytest.mark.parametrize(("previous", "trainer", "resumed", "expected"), [
    (None, LAB, None, [(LAB, 0, None)]),
    ([{"trainer": LAB, "startStep": 0, "resumedFrom": None}], "genfab", "model_1.pkl",
     [(LAB, 0, None), ("genfab", 1, "model_1.pkl")]),
    ([{"trainer": LAB, "startStep": 0, "resumedFrom": None}, {"trainer": "genfab", "startStep": 1,
                                                               "resumedFrom": "model_1.pkl"}],
     LAB, "model_2.pkl", [(LAB, 0, None), ("genfab", 1, "model_1.pkl"), (LAB, 2, "model_2.pkl")]),
    # a restart from an earlier checkpoint replaces the starts after it
    ([{"trainer": LAB, "startStep": 0}, {"trainer": "genfab", "startStep": 4, "resumedFrom": "model_4.pkl"}],
     LAB, "model_2.pkl", [(LAB, 0, None), (LAB, 2, "model_2.pkl")]),
    # malformed entries (untrusted: the output is a tenant's) are dropped
    (["x", {"trainer": 3, "startStep": 0}, {"trainer": LAB, "startStep": True}, {"trainer": LAB, "startStep": 0}],
     "genfab", "model_3.pkl", [(LAB, 0, None), ("genfab", 3, "model_3.pkl")]),
    ("not a list", "genfab", None, [("genfab", 0, None)]),
])
def test_a_runs_history_of_starts(previous: Any, trainer: str, resumed: str | None,
                                  expected: list[tuple[str, int, str | None]]) -> None:
    got = history(TrainConfig.model_validate({"history": previous}).history, trainer, resumed)
    assert [(e.trainer, e.start_step, e.resumed_from) for e in got] == expected


def test_which_trainer_made_each_checkpoint() -> None:
    runs = history(history(history([], LAB, None), "genfab", "model_1.pkl"), LAB, "model_2.pkl")
    assert [made_by(runs, s) for s in (1, 2, 3, 7)] == [LAB, "genfab", LAB, LAB]
    assert made_by([], 1) is None


@pytest.mark.parametrize(("value", "shown"), [
    ("genfab", "genfab"), (LAB, LAB), ("x" * 201, None), ("a\nb", None), (7, None), (None, None),
])
def test_the_trainer_in_the_status(value: Any, shown: str | None) -> None:
    st = training_status(TrainingState.model_validate({"trainer": value, "checkpoints": ["model_1.pkl"]}),
                         "file:///out/tuning_runs/r/checkpoints")
    assert st is not None and st.trainer == shown
