"""A run's summary (`_genfab/summary.json`) and its dropped samples (`_genfab/dropped_samples.csv`), as
both executors write them when a run ends: one schema, built here from the plan, the status and the
shard reports alone (pure: no I/O). `genfab run` adds what only it measures (its own clock's seconds
for a stage still running); the operator takes a stage's seconds from its status times."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from genfab.api.status import ResourceStatus, StageStatus
from genfab.contract import DROPPED_KEY, RUN_REPORT_KEY, STATUS_KEY, SUMMARY_KEY
from genfab.inventory import ShardReport
from genfab.planner import Plan, PlannedStage
from genfab.status import produced_by

EXAMPLES = 3
"""Sample ids listed per drop reason in the summary (the CSV has them all)."""
def drops(reports: Mapping[int, ShardReport]) -> dict[str, list[str]]:
    """A stage's dropped sample ids by reason, in shard order."""
    out: dict[str, list[str]] = {}
    for report in sorted(reports.values(), key=lambda r: r.index):
        for failed in report.failed:
            out.setdefault(failed.reason, []).append(failed.id)
    return out


def stage_seconds(stage: StageStatus) -> float | None:
    """A finished stage's seconds from its status times (RFC 3339, whole seconds)."""
    if not stage.start_time or not stage.completion_time:
        return None
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (stage.start_time, stage.completion_time))
    return max(0.0, (end - start).total_seconds())


def stage_row(stage: PlannedStage, status: StageStatus, reports: Mapping[int, ShardReport], *,
              seconds: float | None, samples_per_second: float | None = None, message: str | None = None
              ) -> dict[str, Any]:
    """One stage of the summary: counts, timings, what made its samples and why samples were dropped."""
    succeeded = sum(len(r.succeeded) for r in reports.values())
    reused = sum(r.reused for r in reports.values())
    if samples_per_second is None and seconds and succeeded - reused > 0:
        samples_per_second = round((succeeded - reused) / seconds, 3)
    custom = stage.custom
    return {
        "name": stage.name, "phase": status.phase, "configHash": stage.config_hash, "outputUri": stage.output_uri,
        "samples": status.samples.total, "succeeded": succeeded, "reused": reused,
        "redone": sum(r.redone for r in reports.values()), "failed": sum(len(r.failed) for r in reports.values()),
        "shards": status.shards.total, "seconds": seconds, "samplesPerSecond": samples_per_second,
        "modelLoadSeconds": max((r.model_load_seconds or 0 for r in reports.values()), default=None),
        "gpuPeakGiB": max((round(r.gpu_peak_bytes / 2**30, 2) for r in reports.values()
                           if r.gpu_peak_bytes is not None), default=None),
        "message": message if message is not None else status.message,
        "producedBy": produced_by(r.produced_by for r in reports.values()),
        # A custom stage made these samples, not genfab: its image and, what ran here, its command.
        "custom": ({**custom.to_yaml_dict(), "command": [*stage.command, *stage.args]} if custom is not None else None),
        "dropped": {reason: {"count": len(ids), "examples": ids[:EXAMPLES]} for reason, ids in drops(reports).items()},
    }


def dropped_csv(plan: Plan, reports: Mapping[str, Mapping[int, ShardReport]]) -> tuple[bytes, int]:
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


def summary_document(plan: Plan, status: ResourceStatus, stages: list[dict[str, Any]], dropped: int, *,
                     continue_on_error: bool, finished_at: str, executor: str) -> dict[str, Any]:
    """`summary.json`: the run, its stages' rows and where its other records are (`statusUri`: the
    local run's `status.json`; in a cluster the status is the resource's own, `kubectl get`)."""
    return {"kind": plan.kind, "name": plan.name, "namespace": plan.namespace, "pipeline": plan.pipeline,
            "executor": executor, "continueOnError": continue_on_error, "phase": status.phase,
            "outputUri": plan.output_uri, "finishedAt": finished_at, "stages": stages, "dropped": dropped,
            "droppedSamplesCsv": f"{plan.output_uri}/{DROPPED_KEY}",
            "statusUri": f"{plan.output_uri}/{STATUS_KEY}" if executor == "local" else None,
            "summaryUri": f"{plan.output_uri}/{SUMMARY_KEY}",
            # where the report is (`genfab run` writes it at the end) or would be: the operator has no
            # Pillow/matplotlib, `genfab report` writes it from anywhere that reads the output
            "reportUri": f"{plan.output_uri}/{RUN_REPORT_KEY}", "reportCommand": f"genfab report {plan.output_uri}"}
