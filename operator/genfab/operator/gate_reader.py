"""The operator's manual gates: finished gated stages whose downstream has not started, read a bounded
part per reconcile (genfab.sequencing.gate_reader, within the room the reconcile's storage budget keeps:
`read_budget.Share`), the waiting ones looked at again at most every `progressSeconds`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from genfab.api.status import TERMINAL_PHASES, ResourceStatus
from genfab.operator.objects import Job, Key, child_name
from genfab.operator.observe import job_view
from genfab.operator.read_budget import Share
from genfab.planner import Plan
from genfab.sequencing import gate_reader
from genfab.sequencing.manual import Awaiting
from genfab.storage import Storage


class GateReader(gate_reader.GateReader):
    def __init__(self, seconds: float, reports: int) -> None:
        super().__init__(seconds, reports, spender=Share)

    def awaiting(self, key: Key, the_plan: Plan, jobs: Sequence[Job], previous: ResourceStatus | None,
                 run: Callable[[], Storage], output: Callable[[str], Storage]) -> tuple[dict[str, Awaiting], bool]:
        """Finished gated stages whose downstream has not started: which committed samples still lack
        the gate's files (`output(uri)` opens a stage's output), and whether samples are still to be looked
        at for the first time (reconcile again soon)."""
        out: dict[str, Awaiting] = {}
        more = False
        started = {j["metadata"]["name"] for j in jobs}
        prev = {s.name: s for s in (previous.stages if previous else [])}
        for stage in the_plan.stages:
            if stage.manual_gate is None or not stage.run:
                continue
            job = next((j for j in jobs if j["metadata"]["name"] == child_name(the_plan.name, stage)), None)
            before = prev.get(stage.name)
            done = (job is not None and job_view(job).finished) or (
                before is not None and before.config_hash == stage.config_hash and before.phase in TERMINAL_PHASES)
            downstream = [s for s in the_plan.stages if s.run and stage.name in s.upstream]
            waiting = [s for s in downstream if child_name(the_plan.name, s) not in started
                       and not (s.name in prev and prev[s.name].job_name and prev[s.name].config_hash == s.config_hash)]
            if not done or not waiting:
                continue
            shards = job_view(job).shards if job is not None else before.shards.total if before is not None else 0
            reading = self.read((key, stage.name, stage.config_hash), stage, shards, run,
                                partial(output, stage.output_uri), run_uri=the_plan.output_uri)
            more = more or reading.more
            if reading.held is not None:
                out[stage.name] = reading.held
        return out, more
