"""A TuningRun's training state in its status, pure: the training document as `status.training`,
and `step/maxSteps` as the PROGRESS column."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from genfab.api.status import ResourceStatus, TrainingStatus
from genfab.contract.names import best_checkpoint, checkpoint_step

MAX_CHECKPOINTS = 256
MAX_EVALS = 1024
"""Held-out evaluations read from a training document (`heldOutPsnr`), the latest steps."""


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else 0


def training_status(doc: Mapping[str, Any] | None, checkpoints_uri: str) -> TrainingStatus | None:
    """The status block for a training document (unknown or malformed values are dropped, lists
    bounded); `checkpoints_uri` is the run's `checkpoints/` folder."""
    if not doc:
        return None
    raw = doc.get("checkpoints")
    steps = {n: step for n in (raw if isinstance(raw, list) else []) if isinstance(n, str) and len(n) <= 64
             and "/" not in n and (step := checkpoint_step(n)) is not None}
    names = sorted(steps, key=steps.__getitem__)[-MAX_CHECKPOINTS:]
    eta, rate = _number(doc.get("etaSeconds")), _number(doc.get("imagesPerSecond"))
    folder = checkpoints_uri.rstrip("/")
    best = best_checkpoint(held_out(doc.get("heldOutPsnr")), names)
    trainer = doc.get("trainer")
    return TrainingStatus(trainer=trainer if isinstance(trainer, str) and trainer.isprintable() and len(trainer) <= 200
                          else None, step=_count(doc.get("step")), max_steps=_count(doc.get("maxSteps")),
                          loss=_number(doc.get("loss")), images_per_second=rate if rate is None or rate >= 0 else None,
                          eta_seconds=eta if eta is None or eta >= 0 else None, checkpoints=names,
                          latest_checkpoint=f"{folder}/{names[-1]}" if names else None,
                          best_checkpoint=f"{folder}/{best[1]}" if best else None,
                          best_step=best[0] if best else None, best_psnr=round(best[2], 4) if best else None)


def held_out(raw: Any) -> dict[int, float]:
    """A document's `heldOutPsnr` ({"<step>": dB}) as steps and finite values, the latest `MAX_EVALS`."""
    found = {int(k): v for k, value in (raw.items() if isinstance(raw, dict) else ())
             if isinstance(k, str) and k.isdigit() and len(k) < 16 and (v := _number(value)) is not None}
    return dict(sorted(found.items())[-MAX_EVALS:])


def with_training(status: ResourceStatus, training: TrainingStatus | None) -> ResourceStatus:
    """`status` with the training block, and `step/maxSteps` as its progress while training."""
    if training is None:
        return status
    update: dict[str, Any] = {"training": training}
    if training.max_steps:
        update["progress"] = f"{training.step}/{training.max_steps}"
    return status.model_copy(update=update)
