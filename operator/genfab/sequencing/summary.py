"""A run's summary (`_genfab/summary.json`) and its dropped samples (`_genfab/dropped_samples.csv`), as
both executors write them when a run ends: one schema, built here from the plan, the status and the
shard reports alone (pure: no I/O). `genfab run` adds what only it measures (its own clock's seconds
for a stage still running); the operator takes a stage's seconds from its status times."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime

from genfab.api.quality import figures_summary
from genfab.api.status import ResourceStatus, ShardTally, StageStatus
from genfab.api.summary import DroppedReason, RunSummary, StageRow
from genfab.contract import DROPPED_KEY, RUN_REPORT_KEY, STATUS_KEY, SUMMARY_KEY
from genfab.inventory import ShardReport
from genfab.planner import Plan, PlannedStage
from genfab.sequencing.batch import RunShape


def stage_seconds(stage: StageStatus) -> float | None:
    """A finished stage's seconds from its status times (RFC 3339, whole seconds)."""
    if not stage.start_time or not stage.completion_time:
        return None
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (stage.start_time, stage.completion_time))
    return max(0.0, (end - start).total_seconds())


def stage_row(stage: PlannedStage, status: StageStatus, read: ShardTally, *,
              seconds: float | None, samples_per_second: float | None = None, message: str | None = None
              ) -> StageRow:
    """One stage of the summary: counts, timings, what made its samples and why samples were dropped,
    from what was read of its shard reports (`read`: the operator's tally, or `tally.of_reports`)."""
    succeeded, reused = read.succeeded, read.reused
    if samples_per_second is None and seconds and succeeded - reused > 0:
        samples_per_second = round((succeeded - reused) / seconds, 3)
    custom = stage.custom
    worked = succeeded - reused + read.failed
    per_sample = status.gpu_seconds / worked if status.gpu_seconds is not None and worked > 0 else None
    return StageRow(
        name=stage.name, phase=status.phase, config_hash=stage.config_hash, output_uri=stage.output_uri,
        samples=status.samples.total, succeeded=succeeded, reused=reused, redone=read.redone, failed=read.failed,
        shards=status.shards.total, seconds=seconds, samples_per_second=samples_per_second,
        model_load_seconds=read.model_load_seconds,
        gpu_peak_gib=round(read.gpu_peak_bytes / 2**30, 2) if read.gpu_peak_bytes is not None else None,
        gpu_hours=round(status.gpu_seconds / 3600, 4) if status.gpu_seconds is not None else None,
        gpu_seconds_per_sample=round(per_sample, 2) if per_sample is not None else None,
        dropped_gpu_hours=round(read.failed * per_sample / 3600, 4) if per_sample is not None else None,
        message=message if message is not None else status.message,
        produced_by=dict(read.produced_by),
        # A custom stage made these samples, not genfab: its image and, what ran here, its command.
        custom={**custom.to_yaml_dict(), "command": [*stage.command, *stage.args]} if custom is not None else None,
        dropped={reason: DroppedReason(count=d.count, examples=list(d.examples)) for reason, d in read.dropped.items()},
        # each figure's p5/p50/p95 and histogram over the stage's committed samples (genfab.api.quality)
        figures=figures_summary(read.figures, read.figure_spans) if read.figures else None,
    )


def dropped_csv(plan: RunShape, reports: Mapping[str, Mapping[int, ShardReport]]) -> tuple[bytes, int]:
    """`dropped_samples.csv` (stage, sample_id, reason, message) and its row count."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["stage", "sample_id", "reason", "message"])
    rows = 0
    for stage in plan.stages:
        for report in sorted(reports.get(stage.name, {}).values(), key=lambda r: r.index):
            for f in report.failed:
                writer.writerow([stage.name, f.id, f.reason, f.message])
                rows += 1
    return buf.getvalue().encode(), rows


def summary_document(plan: Plan, status: ResourceStatus, stages: list[StageRow], dropped: int, *,
                     continue_on_error: bool, finished_at: str, executor: str,
                     unwritten: str | None = None) -> RunSummary:
    """`summary.json`: the run, its stages' rows and where its other records are (`statusUri`: the
    local run's `status.json`; in a cluster the status is the resource's own, `kubectl get`).
    `unwritten`: why the per-sample records (`dropped_samples.csv`, a batch's `batch_summary.json`) were
    not written with it (`droppedSamplesCsv` is then null)."""
    return RunSummary(
        kind=plan.kind, name=plan.name, namespace=plan.namespace, pipeline=plan.pipeline, executor=executor,
        continue_on_error=continue_on_error, phase=status.phase, output_uri=plan.output_uri, finished_at=finished_at,
        stages=stages, dropped=dropped,
        gpu_hours=round(sum(r.gpu_hours or 0.0 for r in stages), 4) if any(r.gpu_hours is not None for r in stages)
        else None,
        # TuningRun: the training's last state, the best checkpoint by held-out PSNR among it
        training=status.training.model_dump(mode="json", by_alias=True, exclude_none=True)
        if status.training is not None else None,
        dropped_samples_csv=None if unwritten else f"{plan.output_uri}/{DROPPED_KEY}",
        per_sample_records=unwritten or None,
        status_uri=f"{plan.output_uri}/{STATUS_KEY}" if executor == "local" else None,
        summary_uri=f"{plan.output_uri}/{SUMMARY_KEY}",
        # where the report is (`genfab run` writes it at the end) or would be: the operator has no
        # Pillow/matplotlib, `genfab report` writes it from anywhere that reads the output
        report_uri=f"{plan.output_uri}/{RUN_REPORT_KEY}", report_command=f"genfab report {plan.output_uri}")
