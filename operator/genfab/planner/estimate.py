"""What a plan costs before it runs (`genfab plan --estimate`), pure: the plan's stages, samples, shards and
GPUs against the calibration table (genfab.planner.calibration) give each stage's GPU-seconds and wall
seconds, and the run's GPU-hours and wall time on the resource's parallelism.

Per stage, with `s` seconds per sample and `p` seconds per Pod from the matching row:
- its Pods are `PlannedStage.workers`: one per shard when `parallelism` lets every shard run at once (and
  always for a process group), else `parallelism` warm workers that take shard after shard. Every Pod
  starts with the others and pays its load and first compilation once;
- GPU-seconds = GPUs per Pod x (samples x s + Pods x p);
- wall seconds = p + rounds x the largest shard's samples x s, a round being one shard per Pod;
- the run's wall time is the longest path through the stage DAG: a stage starts when its upstream
  stages finished, and a stage that streams from its upstream (`PlannedStage.streams_from`) once that
  stage's first round of shards is done, ending no sooner than one of its own shards after the
  upstream's end (both executors run it so).

A stage without a matching row is "not calibrated" and left out of the totals, which then say so; a
stage on the CPU costs no GPU time and its wall time is not estimated; a stage not selected reuses its
outputs and costs nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from genfab.planner.calibration import CALIBRATION, GPU_KINDS, Measured, lookup
from genfab.planner.model import Plan, PlannedStage

State = Literal["estimated", "cpu", "skipped", "not calibrated", "samples unknown"]


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    state: State
    gpus: int
    samples: int | None
    shards: int | None
    gpu_seconds: float | None = None
    wall_seconds: float | None = None
    sample_seconds: float | None = None
    """Seconds per sample on a warm Pod, per GPU, at this stage's settings."""
    baseline_gpu_seconds: float | None = None
    """The lab's way for the same samples (no per-Pod part), where the row measured it."""
    peak_gib: float | None = None
    source: str | None = None
    command: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Estimate:
    gpu: str
    parallelism: int | None
    stages: tuple[StageEstimate, ...]
    gpu_hours: float
    """GPU-hours of the estimated stages."""
    wall_seconds: float
    """The longest path through the DAG over the estimated stages."""
    complete: bool
    """Every stage that runs on a GPU was estimated (else the totals leave the others out)."""
    lab_gpu_hours: float | None = None
    """The lab's way for the same work: the estimated stages' baselines chained (no per-Pod part); None
    unless the estimate is complete and every estimated stage has one."""

    @property
    def missing(self) -> list[str]:
        return [s.stage for s in self.stages if s.state in ("not calibrated", "samples unknown")]

    @property
    def without_lab(self) -> list[str]:
        """Estimated stages whose lab's way was not measured."""
        return [s.stage for s in self.stages if s.state == "estimated" and s.baseline_gpu_seconds is None]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing, "without_lab": self.without_lab}


class EstimateError(ValueError):
    """The GPU kind cannot be estimated (one line for the user)."""


def measured_kinds(table: tuple[Measured, ...] = CALIBRATION) -> list[str]:
    return sorted({row.gpu for row in table})


def check_gpu(gpu: str, table: tuple[Measured, ...] = CALIBRATION) -> None:
    kinds = measured_kinds(table)
    if gpu not in GPU_KINDS:
        raise EstimateError(f"--gpu {gpu!r}: unknown GPU kind; known kinds are {', '.join(GPU_KINDS)} "
                            f"(measured: {', '.join(kinds)})")
    if gpu not in kinds:
        raise EstimateError(f"--gpu {gpu}: no stage has been measured on {gpu} yet; the calibration table "
                            f"(genfab.planner.calibration) holds {', '.join(kinds)}")


def settings_of(stage: PlannedStage, plan_stages: tuple[PlannedStage, ...] = ()) -> dict[str, Any]:
    """What a row's settings are read from: the stage's config, and each stage of the plan's under
    `@<name>` (a stage's cost can hang on an upstream stage's setting: vistadream's scene is as large as
    the image its `depth` stage fitted to `maxResolution`)."""
    return {**stage.config, **{f"@{other.name}": other.config for other in plan_stages}}


def row_for(pipeline: str, stage: PlannedStage, gpu: str, table: tuple[Measured, ...] = CALIBRATION,
            plan_stages: tuple[PlannedStage, ...] = ()) -> Measured | None:
    """The first row of `table` for this stage, GPU kind and settings (`plan_stages`: the plan's
    stages, for rows that read an upstream stage's setting)."""
    settings = settings_of(stage, plan_stages)
    for row in table:
        if row.pipeline == pipeline and row.stage == stage.name and row.gpu == gpu and row.holds_for(settings):
            return row
    return None


def uncalibrated(pipeline: str, stage: PlannedStage, gpu: str, table: tuple[Measured, ...],
                 plan_stages: tuple[PlannedStage, ...] = ()) -> str:
    """Why a stage has no row: the settings the measured rows of it hold for, or that none exists; and
    the GPU kinds its settings were measured on instead."""
    settings = settings_of(stage, plan_stages)
    rows = [row for row in table if row.pipeline == pipeline and row.stage == stage.name]
    elsewhere = sorted({row.gpu for row in rows if row.gpu != gpu and row.holds_for(settings)})
    also = f"; these settings were measured on {', '.join(elsewhere)} (--gpu {elsewhere[0]})" if elsewhere else ""
    # per row of this GPU kind, the settings this stage's config differs in (the others it shares)
    held = [", ".join(f"{path} {'/'.join(_shown(v) for v in accepted)} (here {_shown(lookup(settings, path))})"
                      for path, accepted in row.when if lookup(settings, path) not in accepted)
            or "its settings but a scaled one that is not a number"
            for row in rows if row.gpu == gpu]
    if not held:
        return f"never measured on {gpu}{also}"
    return f"measured on {gpu} only with " + "; or ".join(dict.fromkeys(held)) + also


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value)


def _row(stage: PlannedStage, state: State, **found: Any) -> StageEstimate:
    return StageEstimate(stage=stage.name, state=state, gpus=stage.resources.gpus, samples=stage.samples,
                         shards=stage.shards, **found)


def stage_estimate(pipeline: str, stage: PlannedStage, gpu: str, parallelism: int | None,
                   table: tuple[Measured, ...] = CALIBRATION, plan_stages: tuple[PlannedStage, ...] = ()
                   ) -> StageEstimate:
    if not stage.run:
        return _row(stage, "skipped", note="not selected: its committed outputs are reused")
    if stage.resources.gpus == 0:
        return _row(stage, "cpu", gpu_seconds=0.0, note="runs on CPUs: no GPU time")
    if stage.custom is not None:
        return _row(stage, "not calibrated", note=f"a custom stage ({stage.image}): not measured")
    row = row_for(pipeline, stage, gpu, table, plan_stages)
    factor = row.factor(settings_of(stage, plan_stages)) if row is not None else None
    if row is None or factor is None:
        return _row(stage, "not calibrated", note=uncalibrated(pipeline, stage, gpu, table, plan_stages))
    if stage.samples is None or stage.shards is None:
        return _row(stage, "samples unknown", source=row.source,
                    note="its samples are counted when it starts (pass --input-samples N)")
    per_sample = row.seconds(factor)
    largest = min(stage.samples, stage.shard_capacity or stage.samples)
    gpus = stage.resources.gpus
    pods = stage.workers(stage.shards, parallelism)  # each starts with the others: loads and compiles once
    rounds = -(-stage.shards // pods)
    lab = row.baseline_seconds(factor)
    baseline = gpus * stage.samples * lab if lab is not None else None
    return _row(stage, "estimated",
                gpu_seconds=round(gpus * (stage.samples * per_sample + pods * row.pod_seconds), 1),
                wall_seconds=round(row.pod_seconds + rounds * largest * per_sample, 1),
                sample_seconds=round(per_sample, 3),
                baseline_gpu_seconds=round(baseline, 1) if baseline is not None else None,
                peak_gib=row.peak_gib, source=row.source, command=row.command, note=row.note)


def estimate(plan: Plan, gpu: str, parallelism: int | None, table: tuple[Measured, ...] = CALIBRATION) -> Estimate:
    """The plan's estimate on `gpu` (EstimateError for a kind that cannot be estimated)."""
    check_gpu(gpu, table)
    rows = tuple(stage_estimate(plan.pipeline, s, gpu, parallelism, table, plan.stages) for s in plan.stages)
    begin: dict[str, float] = {}
    first: dict[str, float] = {}
    finish: dict[str, float] = {}
    for stage, row in zip(plan.stages, rows, strict=True):
        wall, shard = row.wall_seconds or 0.0, _shard_seconds(stage, row)
        start = max((finish.get(u, 0.0) for u in stage.upstream), default=0.0)
        end = start + wall
        if stage.streams_from:  # it runs beside its upstream, one round behind it
            up = stage.streams_from[0]
            start = begin[up] + first[up]
            end = max(start + wall, finish[up] + shard)
        rounds = -(-stage.shards // stage.workers(stage.shards, parallelism)) if stage.shards else 1
        begin[stage.name], first[stage.name], finish[stage.name] = start, wall - (rounds - 1) * shard, end
    gpu_seconds = sum(r.gpu_seconds or 0.0 for r in rows)
    complete = not any(r.state in ("not calibrated", "samples unknown") for r in rows)
    estimated = [r for r in rows if r.state == "estimated"]
    lab = (round(sum(r.baseline_gpu_seconds or 0.0 for r in estimated) / 3600, 3)
           if complete and estimated and all(r.baseline_gpu_seconds is not None for r in estimated) else None)
    return Estimate(gpu=gpu, parallelism=parallelism, stages=rows, gpu_hours=round(gpu_seconds / 3600, 3),
                    wall_seconds=round(max(finish.values(), default=0.0), 1), complete=complete,
                    lab_gpu_hours=lab)


def _shard_seconds(stage: PlannedStage, row: StageEstimate) -> float:
    """One round's seconds on a warm Pod: its largest shard's samples."""
    if stage.samples is None or not row.sample_seconds:
        return 0.0
    return row.sample_seconds * min(stage.samples, stage.shard_capacity or stage.samples)


def duration(seconds: float | None) -> str:
    """`1 h 05 min`, `12 min`, `40 s`; `-` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
