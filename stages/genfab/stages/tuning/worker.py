"""One training process of the built-in trainer (torchrun starts one per GPU):
`python -m genfab.stages.tuning.worker JOB.json`, where JOB.json names the hyperparameters and the
local paths the node staged (`WorkerJob`)."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genfab.api.training import TrainingState
from genfab.contract.names import ENV_CPU_WORKERS
from genfab.stages.runtime.lifetime import die_with_parent_after_fork

PROGRESS_FILE = ".genfab_progress.json"
"""Written by rank 0 in the run folder: the training state the stage reports (custom trainers may
write it too: step, maxSteps, loss, imagesPerSecond, etaSeconds)."""


@dataclass(frozen=True)
class WorkerJob:
    hyperparameters: dict[str, Any]
    base_model: str
    perceptual_model: str
    data_json: str
    out_dir: str
    fast: bool = True
    sources: dict[str, str] = field(default_factory=dict)
    """Where the local paths were staged from (`trainer.Options.sources`)."""
    record: dict[str, Any] = field(default_factory=dict)
    """Which trainer this start is and the run's starts before it (`trainer.Options.record`)."""


def write_job(job: WorkerJob, path: Path) -> Path:
    path.write_text(json.dumps(asdict(job), indent=1))
    return path


def main(argv: list[str]) -> int:
    from genfab.stages.tuning.trainer import Hyper, Options, TrainerIO, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank" + os.environ.get("RANK", "0") + " %(message)s")
    job = WorkerJob(**json.loads(Path(argv[0]).read_text()))
    out = Path(job.out_dir)
    progress = out / PROGRESS_FILE

    def report(state: TrainingState) -> None:
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, progress)

    hyper = Hyper.model_validate(job.hyperparameters)
    if os.environ.get(ENV_CPU_WORKERS):
        hyper = hyper.model_copy(update={"dataloader_workers": min(hyper.dataloader_workers,
                                                                   int(os.environ[ENV_CPU_WORKERS]))})
    train(hyper, Path(job.base_model), Path(job.perceptual_model), Path(job.data_json),
          TrainerIO(out, progress=report),
          Options(fast=job.fast, compile=None if hyper.compile else False, sources=job.sources, record=job.record))
    return 0


if __name__ == "__main__":
    die_with_parent_after_fork()  # torchrun's worker: gone with its launcher (and so with its node)
    code = main(sys.argv[1:])
    # Trained and past the group's last barrier: end now, without the interpreter's teardown of the
    # process group and its threads, which can hang one rank after the others left (trainer.train).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
