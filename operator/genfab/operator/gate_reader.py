"""A manual gate's state, read on a bound per reconcile (genfab.sequencing.manual says what a gate is).

Once a gated stage has finished, the operator must know which of its committed samples still lack the
files a person chooses. That takes the stage's shard reports (which samples were committed) and one
listing per sample folder: work that grows with the samples, so it is spread over reconciles. Each
reconcile reads at most `reports` more reports and lists at most `SAMPLES_PER_RECONCILE` sample folders,
within the room its storage budget keeps (`read_budget.Share`); until every committed sample has been
looked at once the gate holds, saying how far it got. After that only the samples still waiting are
listed again, round-robin, at most every `progressSeconds`; a sample found complete is never listed
again, and a gate found open is not read again.

What is remembered per gate is the ids still waiting (a person's choice per sample: tens to thousands);
after a restart the gate is read again from its reports, on the same bounds.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from genfab.api.status import TERMINAL_PHASES, ResourceStatus
from genfab.inventory import read_report
from genfab.operator.builders import child_name
from genfab.operator.cache import Key
from genfab.operator.observe import job_view
from genfab.operator.read_budget import Share, Stop
from genfab.planner import Plan, PlannedStage
from genfab.sequencing.manual import Awaiting, awaiting, missing_files, sample_folder
from genfab.storage import Storage

SAMPLES_PER_RECONCILE = 200
"""Sample folders a reconcile lists for one gate at most."""

Slot = tuple[Key, str, str]
"""(resource, stage, config hash)."""


@dataclass
class _Gate:
    shards: int
    next_report: int = 0
    """Shard reports read: indexes below this."""
    unchecked: deque[str] = field(default_factory=deque)
    """Committed samples not looked at yet."""
    waiting: OrderedDict[str, tuple[str, ...]] = field(default_factory=OrderedDict)
    """Samples looked at that still lack files, next to look at again first."""
    checked: int = 0
    looked_again: float = float("-inf")
    result: Awaiting | None = None
    open: bool = False
    """Every committed sample has its files: never read again."""


@dataclass(frozen=True)
class GateReading:
    held: Awaiting | None
    """The gate's state: None when it is open."""
    more: bool
    """Samples are still to be looked at for the first time: reconcile again soon."""


class GateReader:
    def __init__(self, seconds: float, reports: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.reports = reports
        self.clock = clock
        self._gates: dict[Slot, _Gate] = {}

    def forget(self, key: Key) -> None:
        # reconciles add slots from other threads meanwhile: take a snapshot of the keys (one C-level
        # copy under the GIL) and pop ours, never iterate the live dict nor replace it (a slot added to
        # a replaced dict would be lost)
        for slot in [slot for slot in list(self._gates) if slot[0] == key]:
            self._gates.pop(slot, None)

    def awaiting(self, key: Key, the_plan: Plan, jobs: list[dict[str, Any]], previous: ResourceStatus | None,
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

    def read(self, slot: Slot, stage: PlannedStage, shards: int, run: Callable[[], Storage],
             output: Callable[[], Storage], run_uri: str = "OUTPUT") -> GateReading:
        gate = self._gates.get(slot)
        if gate is None or gate.shards != shards:
            gate = self._gates[slot] = _Gate(shards)
        if gate.open:
            return GateReading(None, False)
        first_pass = gate.next_report < shards or bool(gate.unchecked)
        if not first_pass and self.clock() - gate.looked_again < self.seconds:
            return GateReading(gate.result, False)
        share = Share()
        with contextlib.suppress(Stop):
            self._read_reports(gate, stage, share, run)
            self._look(gate, stage, share, output)
        gate.looked_again = self.clock()
        if gate.next_report < shards or gate.unchecked:
            committed = gate.checked + len(gate.unchecked)
            gate.result = Awaiting(stage.name, stage.manual_gate.condition if stage.manual_gate else "", {}, (
                f"stage {stage.name}: finding the samples that await a person's choice: {gate.next_report} of "
                f"{shards} shard reports read, {gate.checked} of {committed} committed samples looked at"))
            return GateReading(gate.result, True)
        gate.result = awaiting(stage, gate.waiting, output=run_uri)
        gate.open = gate.result is None
        return GateReading(gate.result, False)

    def _read_reports(self, gate: _Gate, stage: PlannedStage, share: Share, run: Callable[[], Storage]) -> None:
        if gate.next_report >= gate.shards:
            return
        store = run()
        for _ in range(self.reports):
            if gate.next_report >= gate.shards:
                return
            report = share.spend(partial(read_report, store, stage.name, stage.config_hash, gate.next_report,
                                         gate.shards))
            if report is not None:
                gate.unchecked.extend(report.succeeded)
            gate.next_report += 1

    def _look(self, gate: _Gate, stage: PlannedStage, share: Share, output: Callable[[], Storage]) -> None:
        """List the folders of samples not looked at yet, then (the first pass done) of those still
        waiting, oldest look first; at most `SAMPLES_PER_RECONCILE` in all."""
        again = 0 if gate.unchecked or gate.next_report < gate.shards else len(gate.waiting)
        if not gate.unchecked and not again:
            return
        store = output()
        for _ in range(SAMPLES_PER_RECONCILE):
            if gate.unchecked:
                sample = gate.unchecked[0]
            elif again:
                sample = next(iter(gate.waiting))
            else:
                return
            folder = sample_folder(stage, sample)
            missing = missing_files(stage, share.spend(partial(_present, store, folder)))
            if gate.unchecked:
                gate.unchecked.popleft()
                gate.checked += 1
            else:
                gate.waiting.pop(sample)
                again -= 1
            if missing:
                gate.waiting[sample] = missing


def _present(store: Storage, folder: str) -> list[str]:
    """The keys under a sample's folder, relative to it (one listing)."""
    return [o.key[len(folder):] for o in store.list(folder)]
