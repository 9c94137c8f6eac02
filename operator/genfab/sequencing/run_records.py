"""What a run leaves when it ends, written the same way by both executors and the records Job: the
per-sample records (`_genfab/dropped_samples.csv`, a SceneJob's `batch_summary.json`) from the stages'
shard reports, then `_genfab/summary.json` (genfab.sequencing.summary builds each; this writes them)."""

from __future__ import annotations

from collections.abc import Mapping

from genfab.api.status import ResourceStatus
from genfab.api.summary import RunSummary, StageRow
from genfab.contract import DROPPED_KEY, SUMMARY_KEY
from genfab.inventory import ShardReport
from genfab.planner import Plan
from genfab.sequencing.batch import BATCH_SUMMARY_KEY, RunShape, batch_document
from genfab.sequencing.summary import dropped_csv, summary_document
from genfab.storage.base import Storage

Reports = Mapping[str, Mapping[int, ShardReport]]
"""Each stage's shard reports by shard index."""


def write_sample_records(run: Storage, plan: RunShape, reports: Reports, phase: str, finished_at: str) -> int:
    """`dropped_samples.csv` and a SceneJob's `batch_summary.json`; returns the dropped samples' count."""
    csv_bytes, dropped = dropped_csv(plan, reports)
    run.write_bytes(DROPPED_KEY, csv_bytes)
    document = batch_document(plan, reports, phase, finished_at)
    if document is not None:  # a batch of scenes: the lab's per-sample summary beside them
        run.write_bytes(BATCH_SUMMARY_KEY, document)
    return dropped


def write_run_records(run: Storage, plan: Plan, status: ResourceStatus, rows: list[StageRow],
                      reports: Reports | None, *, continue_on_error: bool, executor: str, finished_at: str,
                      unwritten: str | None = None) -> RunSummary:
    """The per-sample records from `reports` (None: too many to read here, `unwritten` says who writes
    them), then the summary of `rows` (`summary.stage_row` per stage). Returns the summary."""
    if reports is None:
        dropped = sum(row.failed or 0 for row in rows)
    else:
        dropped = write_sample_records(run, plan, reports, status.phase, finished_at)
    summary = summary_document(plan, status, rows, dropped, continue_on_error=continue_on_error,
                               finished_at=finished_at, executor=executor, unwritten=unwritten)
    run.write_bytes(SUMMARY_KEY, summary.to_json())
    return summary
