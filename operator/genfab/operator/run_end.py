"""What the operator writes when a resource ends: the run's `_genfab/summary.json` (the one
`status.outputs.summary` points at, `genfab run`'s schema) from each stage's tally of its shard reports
(the status), and the per-sample records, `_genfab/dropped_samples.csv` and, for a SceneJob, the lab's
`batch_summary.json`: read from the shard reports here (once) where the stages have at most
`RECORDS_INLINE_SHARDS` shards in all, else by a one-Pod records Job of the data plane
(genfab.jobs.records), which then points the summary at them."""

from __future__ import annotations

from genfab.api.common import CommonSpec
from genfab.api.status import ResourceStatus
from genfab.inventory import read_reports
from genfab.operator.builders import records_name
from genfab.planner import Plan
from genfab.sequencing.records import records_request
from genfab.sequencing.run_records import write_run_records
from genfab.sequencing.summary import stage_row, stage_seconds
from genfab.status import tally
from genfab.storage import Storage

RECORDS_INLINE_SHARDS = 500
"""The most shards (all stages together) whose reports the operator reads when a run ends, to write the
run's per-sample records: within one reconcile's budget."""


def write_run_end(run: Storage, the_plan: Plan, status: ResourceStatus, spec: CommonSpec, finished_at: str
                  ) -> str | None:
    """Write the summary, and the per-sample records where few enough shards ran; returns the records
    Job's request (JSON) when one must write them, else None."""
    by_name = {s.name: s for s in status.stages}
    ran = [s for s in the_plan.stages if s.run and s.name in by_name]
    shards = sum(by_name[s.name].shards.total for s in ran)
    request = records_request(the_plan, status.phase, finished_at).model_dump_json(by_alias=True)
    unwritten = (f"written by the records job {records_name(the_plan.name, request)} (one Pod): its stages have "
                 f"{shards} shards, more than the {RECORDS_INLINE_SHARDS} whose reports the operator reads at the "
                 "end of a run; droppedSamplesCsv names the file once it is written"
                 ) if shards > RECORDS_INLINE_SHARDS else None
    reports = None if unwritten else {s.name: read_reports(run, s.name, s.config_hash) for s in ran}
    rows = [stage_row(s, by_name[s.name], by_name[s.name].tally or tally.of_reports((reports or {}).get(s.name, {})),
                      seconds=stage_seconds(by_name[s.name]))
            for s in the_plan.stages if s.name in by_name]
    write_run_records(run, the_plan, status, rows, reports, continue_on_error=spec.continue_on_error,
                      executor="operator", finished_at=finished_at, unwritten=unwritten)
    return request if unwritten else None
