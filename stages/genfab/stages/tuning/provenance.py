"""Which trainer made a run's checkpoints: genfab's own (`genfab`) or the lab's script, named by the
code it ran (`difix3d:train_difix.py@c76edc595586`), and the run's history of trainers across resumes.

A lab's trainer is research code, not a package, so its source is recorded beside it: the image that
installs it writes `SOURCE_FILE` (images/difix3d/Dockerfile, and scripts/gpu_tier.py for the GPU tier)
in the checkout's root, `{"name", "repository", "commit", "patches"}`. A script with no such record is
named `custom:<script>`: genfab never guesses a commit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genfab.api.training import MAX_HISTORY, Start
from genfab.contract.names import checkpoint_step

BUILT_IN = "genfab"
SOURCE_FILE = ".genfab-source.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def script_of(command: Sequence[str]) -> str | None:
    """The Python script a trainer command runs (`accelerate launch src/train_difix.py`, `torchrun ...
    x.py`, `python x.py`), or None (a binary, or `-m module`)."""
    return next((part for part in command if part.endswith(".py") and not part.startswith("-")), None)


def read_source(script: Path) -> dict[str, Any] | None:
    """The source record of the checkout holding `script` (`SOURCE_FILE` in it or a folder above),
    when it is well formed."""
    for folder in script.resolve().parents:
        path = folder / SOURCE_FILE
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            ok = (isinstance(doc, dict) and _NAME.match(str(doc.get("name", "")))
                  and _COMMIT.match(str(doc.get("commit", ""))))
            return doc if ok else None
    return None


def trainer_name(script: str | None, source: Mapping[str, Any] | None) -> str:
    """`<name>:<script>@<commit, 12 digits>` for a recorded source, else `custom:<script>`."""
    file = Path(script).name if script else "command"
    if source is None:
        return f"custom:{file}"
    return f"{source['name']}:{file}@{str(source['commit'])[:12]}"


def lab_trainer(command: Sequence[str], cwd: Path) -> tuple[str, dict[str, Any] | None]:
    """(the trainer's name, its source record) for a lab trainer's command run in `cwd`."""
    script = script_of(command)
    source = read_source(cwd / script) if script else None
    return trainer_name(script, source), source


def history(previous: Sequence[Start], trainer: str, resumed_from: str | None) -> list[Start]:
    """The run's starts, oldest first: those `train_config.json` recorded before (`TrainConfig` keeps the
    well-formed ones) and this one, which starts at the step of `resumed_from`, the latest `MAX_HISTORY`.
    Checkpoint `model_<s>.pkl` was made by the latest start whose `startStep` is below `s`."""
    start = (checkpoint_step(resumed_from) or 0) if resumed_from else 0
    kept = [e for e in previous if e.start_step < start]  # what started at or after this step was replaced
    return [*kept, Start(trainer=trainer, start_step=start, resumed_from=resumed_from)][-MAX_HISTORY:]


def made_by(records: Sequence[Start], step: int) -> str | None:
    """Which trainer made checkpoint `model_<step>.pkl`, from a run's history."""
    found = [e.trainer for e in records if e.start_step < step]
    return found[-1] if found else None


def write_source(checkout: Path, name: str, repository: str, commit: str, patches: Sequence[str] = ()) -> Path:
    """The source record of a lab trainer's checkout (what its image writes at build time)."""
    if not _NAME.match(name) or not _COMMIT.match(commit):
        raise ValueError(f"a source record needs a name and a commit id, not {name!r} and {commit!r}")
    path = checkout / SOURCE_FILE
    path.write_text(json.dumps({"name": name, "repository": repository, "commit": commit,
                                "patches": list(patches)}, indent=1) + "\n")
    return path


# images/difix3d/Dockerfile: python -m genfab.stages.tuning.provenance DIR NAME REPOSITORY COMMIT [PATCH ...]
if __name__ == "__main__":
    import sys

    print(write_source(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]))
