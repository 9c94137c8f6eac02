"""What the operator writes when a resource ends: the run's `_genfab/summary.json` (the one
`status.outputs.summary` points at, `genfab run`'s schema) from each stage's tally of its shard reports
(the status), and the per-sample records, `_genfab/dropped_samples.csv` and, for a SceneJob, the lab's
`batch_summary.json`: read from the shard reports here (once) where the stages have at most
`RECORDS_INLINE_SHARDS` shards in all, else by a one-Pod records Job of the data plane
(genfab.jobs.records), which then points the summary at them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from genfab.api.common import CommonSpec
from genfab.api.status import ResourceStatus
from genfab.inventory import read_reports
from genfab.operator import read_budget
from genfab.operator.builders import build_records_job
from genfab.operator.cache import Cache
from genfab.operator.kube import KubeError
from genfab.operator.objects import Key, Owner, records_name, resource_path
from genfab.operator.ownership import Children, NameTaken
from genfab.operator.read_budget import BytePool
from genfab.operator.settings import OperatorSettings
from genfab.operator.storage_access import Opener
from genfab.planner import Plan
from genfab.sequencing import now_rfc3339
from genfab.sequencing.records import records_request
from genfab.sequencing.run_records import write_run_records
from genfab.sequencing.summary import stage_row, stage_seconds
from genfab.status import tally
from genfab.storage import Storage, StorageError

log = logging.getLogger("genfab.operator")

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


class RunEnd:
    """Writes a run's records as it ends."""

    def __init__(self, cache: Cache, children: Children, open_run: Opener, settings: OperatorSettings,
                 clock: Callable[[], datetime], read_pool: BytePool) -> None:
        self.cache = cache
        self.children = children
        self.open_run = open_run
        self.settings = settings
        self.clock = clock
        self.read_pool = read_pool

    def end(self, key: Key, the_plan: Plan, owner: Owner, status: ResourceStatus, spec: CommonSpec) -> None:
        """A resource that just ended: its summary and per-sample records, on a read budget of their own,
        and the records Job where one must write them; a storage or API problem is logged (the status is
        written anyway)."""
        with read_budget.budget(self.settings.read_bounds, self.read_pool):
            try:
                request = write_run_end(self.open_run(key, the_plan.output_uri, owner), the_plan, status, spec,
                                        now_rfc3339(self.clock()))
            except StorageError as exc:
                log.warning("%s %s/%s: the run's summary not written: %s", *key, exc)
                return
        if request is None:
            return
        # The records Job (create-if-absent: one per run's end); an API error is logged, not retried (the
        # summary says which Job writes them, and every shard's report stays under _genfab/progress/).
        try:
            made, _ = self.children.create(key, owner, "Job", resource_path("batch/v1", "jobs", owner.namespace),
                                            build_records_job(the_plan, request, spec, owner, self.settings))
        except (KubeError, NameTaken) as exc:
            log.warning("%s %s/%s: the records job not started: %s", *key, exc)
            return
        self.cache.put_job(made)
        log.info("%s %s/%s: the run's per-sample records: records job %s started", *key, made["metadata"]["name"])
