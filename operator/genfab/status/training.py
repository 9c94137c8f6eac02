"""A TuningRun's training state in its status, pure: the training document (`TrainingState`, read
leniently) as `status.training`, and `step/maxSteps` as the PROGRESS column."""

from __future__ import annotations

from typing import Any

from genfab.api.status import ResourceStatus, TrainingStatus
from genfab.api.training import TrainingState
from genfab.contract.names import best_checkpoint, checkpoint_step

MAX_CHECKPOINTS = 256
MAX_EVALS = 1024
"""Held-out evaluations taken from a training document (`heldOutPsnr`), the latest steps."""


def training_status(state: TrainingState | None, checkpoints_uri: str) -> TrainingStatus | None:
    """The status block for a training document (names that are no checkpoint's left out, lists
    bounded); `checkpoints_uri` is the run's `checkpoints/` folder."""
    if state is None:
        return None
    steps = {n: step for n in state.checkpoints if len(n) <= 64 and "/" not in n
             and (step := checkpoint_step(n)) is not None}
    names = sorted(steps, key=steps.__getitem__)[-MAX_CHECKPOINTS:]
    folder = checkpoints_uri.rstrip("/")
    best = best_checkpoint(held_out(state), names)
    return TrainingStatus(trainer=state.trainer, step=state.step, max_steps=state.max_steps, loss=state.loss,
                          images_per_second=state.images_per_second, eta_seconds=state.eta_seconds, checkpoints=names,
                          latest_checkpoint=f"{folder}/{names[-1]}" if names else None,
                          best_checkpoint=f"{folder}/{best[1]}" if best else None,
                          best_step=best[0] if best else None, best_psnr=round(best[2], 4) if best else None)


def held_out(state: TrainingState) -> dict[int, float]:
    """A document's held-out PSNR by step, the latest `MAX_EVALS`."""
    return dict(sorted((int(k), v) for k, v in state.held_out_psnr.items())[-MAX_EVALS:])


def with_training(status: ResourceStatus, training: TrainingStatus | None) -> ResourceStatus:
    """`status` with the training block, and `step/maxSteps` as its progress while training."""
    if training is None:
        return status
    update: dict[str, Any] = {"training": training}
    if training.max_steps:
        update["progress"] = f"{training.step}/{training.max_steps}"
    return status.model_copy(update=update)
