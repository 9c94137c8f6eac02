"""A TuningRun's section: the loss and learning-rate curves, the step rate, the evaluation per
checkpoint (metrics and the eval grid: input | output | target)."""

from __future__ import annotations

import re
from collections.abc import Callable
from statistics import mean

from genfab.api.training import StepLog
from genfab.report.model import Gallery, Listing, Picture, Plot, Row, Section, Series, Table

STEPS_KEY = "logs/steps.jsonl"
EVAL_KEY = "eval/metrics.jsonl"


def _series(records: list[dict[str, object]], name: str) -> Series:
    points = [(float(r["step"]), float(r[name])) for r in records  # type: ignore[arg-type]
              if isinstance(r.get("step"), int | float) and isinstance(r.get(name), int | float)]
    return Series(name, tuple(p[0] for p in points), tuple(p[1] for p in points))


def _line(name: str, steps: list[StepLog], value: Callable[[StepLog], float | None]) -> Series:
    points = [(float(s.step), v) for s in steps if (v := value(s)) is not None]
    return Series(name, tuple(p[0] for p in points), tuple(p[1] for p in points))


def _loss(key: str) -> Callable[[StepLog], float | None]:
    return lambda step: step.losses().get(key)


def tuning(listing: Listing) -> Section:
    root = listing.stage_prefix("train") or ""
    steps = [StepLog.model_validate(r) for r in listing.jsonl(f"{root}{STEPS_KEY}")]
    losses = [k for k in StepLog.LOSSES if any(k in s.losses() for s in steps)]
    plots = []
    if steps:
        plots.append(Plot("loss", "Training loss", "line", tuple(_line(k, steps, _loss(k)) for k in losses),
                          "step", "loss"))
        plots.append(Plot("learning-rate", "Learning rate", "line",
                          (_line("learningRate", steps, lambda s: s.learning_rate),), "step", "learning rate"))
    evals = listing.jsonl(f"{root}{EVAL_KEY}")
    metrics = sorted({k for r in evals for k in r if k not in ("step", "samples")})
    eval_table = Table("Evaluation per checkpoint", ("step", *metrics),
                       tuple((str(r.get("step")), *(f"{r[m]:.4g}" if isinstance(r.get(m), float) else str(r.get(m, "-"))
                                                    for m in metrics)) for r in evals),
                       "input_*: the degraded input against the target, before DiFix; the others: DiFix's output")
    if len(evals) > 1:
        plots.append(Plot("eval-psnr", "Held-out PSNR per checkpoint", "line",
                          (_series(evals, "psnr"), _series(evals, "input_psnr")), "step", "dB"))
    rates = [s.images_per_second for s in steps if s.images_per_second is not None]
    checkpoints = [k.rsplit("/", 1)[-1] for k in listing.under(f"{root}checkpoints/") if k.endswith(".pkl")]
    rate = Table("Training", ("steps", "images/s (mean)", "checkpoints"),
                 ((str(max((s.step for s in steps), default=0)),
                   f"{mean(rates):.3g}" if rates else "-", ", ".join(checkpoints) or "-"),))
    grids = []
    for key in listing.under(f"{root}eval/"):
        if m := re.fullmatch(re.escape(root) + r"eval/grid_(\d+)\.png", key):
            grids.append(Row(f"step {int(m.group(1))}", (Picture(key),),
                             facts_key=f"{root}eval/metrics_{m.group(1)}.json"))
    gallery = Gallery("Evaluation images per checkpoint", ("grid",), tuple(grids),
                      lambda doc: tuple((k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in doc.items()
                                        if k not in ("step",)))
    return Section("Training", tables=(rate, eval_table), plots=tuple(plots), galleries=(gallery,))
