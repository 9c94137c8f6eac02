"""A stage's progress from its shard reports, at a cost per reconcile that does not grow with its shards.

- Finished shards (the Job's `completedIndexes` and `failedIndexes`; every index once the whole Job
  failed; for a worker Job, whose indexes are warm workers, the shards its cursor handed out less those its
  workers' records name as running or failed (`finished_shards`), the cursor and the records read one per
  worker every `progressSeconds` and once after it finished) are read once each, by key, and
  folded into the stage's `ShardTally` (genfab.status.tally), which lives here and in the resource's
  status: an operator that restarts goes on from the status. A reconcile reads at most
  `ReadBounds.reports` of them, lowest index first, and leaves the last part of its storage budget to the
  rest of the reconcile; the others are read by the next reconcile, queued at once (`Reading.more`).
- Running shards' reports (one per running Pod, so bounded by the stage's parallelism) give the live
  counts and each shard's last sample, the no-progress deadline's clock. A pass over them begins at
  most every `progressSeconds`; one the reconcile's budget cuts short goes on from where it stopped in
  the next reconcile (queued at once), so every running shard is read within a bounded number of
  reconciles however many run. Each is checked against the stage's shard capacity (a report claiming
  more samples than a shard holds is not counted) and kept between reconciles as a few numbers
  (`LiveShard`), never as the decoded report: a tenant's reports of a million ids cost the shared
  operator one report's decoding at a time, not every running shard's lists held at once.
- A budget that runs out after some report was read means "go on next reconcile"; one that runs out
  before any was (a store that does not answer, a report the size of the byte budget) stops the
  reconcile as before: Stalled, naming the bound.
A stage whose Job finished counts as finished only once every shard's report is in its tally.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from genfab.api.status import ResourceStatus, ShardTally
from genfab.contract import indexes
from genfab.inventory import ShardReport, read_report
from genfab.inventory.workers import WorkerRecord, finished_shards, read_cursor, read_worker
from genfab.operator.decide import Progress
from genfab.operator.hosting import hosted_on
from genfab.operator.objects import Job, Key, Pod, child_name
from genfab.operator.observe import JobView, job_view, pod_index, pod_running
from genfab.operator.read_budget import Share, Stop
from genfab.planner import Plan, PlannedStage
from genfab.status import produced_by, tally
from genfab.status.aggregate import MAX_PRODUCERS
from genfab.storage import Storage

Slot = tuple[Key, str, str]
"""(resource, stage, config hash)."""


@dataclass(frozen=True)
class LiveShard:
    """What the status needs of a running shard's report, read from it once: its report is dropped."""

    succeeded: int
    failed: int
    state: str
    last_activity: float
    run_seconds: float
    produced_by: tuple[tuple[str, int], ...]
    """Its most frequent producers (at most `MAX_PRODUCERS`, as the status keeps them)."""

    @classmethod
    def of(cls, report: ShardReport) -> LiveShard:
        producers = sorted(report.produced_by.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_PRODUCERS]
        return cls(len(report.succeeded), len(report.failed), report.state, report.last_activity,
                   report.run_seconds, tuple(producers))


@dataclass
class _Stage:
    tally: ShardTally
    running: dict[int, LiveShard] = field(default_factory=dict)
    """The shards running when last read (their samples so far), by index."""
    running_read: float = float("-inf")
    """When the last whole pass over the running shards' reports began (monotonic seconds)."""
    running_after: int = -1
    """A pass the reconcile's budget cut short goes on after this shard index next reconcile (-1: no
    pass in progress): every running shard is read within a bounded number of reconciles, however many
    run, instead of the lowest indexes again each time (a shard past the budget was never read and
    was stopped as making no progress)."""
    records: dict[int, WorkerRecord] = field(default_factory=dict)
    """A worker Job's workers' records as last read, by worker index."""
    records_read: float = float("-inf")
    """When the last whole pass over them ended (monotonic seconds)."""
    taken: int = 0
    """A worker Job's shards its cursor had handed out when the last pass over the records began."""
    records_final: bool = False
    """A whole pass over the records began after the Job finished: no worker writes them any more."""
    pass_at: int = 0
    """The next worker whose record the pass in progress reads (0: no pass in progress)."""
    pass_after_finish: bool = False


@dataclass
class Reading:
    progress: dict[str, Progress] = field(default_factory=dict)
    more: bool = False
    """Finished shards are left unread (the per-reconcile bound): reconcile again soon."""
    finished_read: int = 0
    """Finished shards' reports read (and folded) by this call."""
    running_read: int = 0
    """Running shards' reports read by this call."""


class ProgressReader:
    def __init__(self, progress_seconds: float, reports_per_reconcile: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.progress_seconds = progress_seconds
        self.reports_per_reconcile = reports_per_reconcile
        self.clock = clock
        self._stages: dict[Slot, _Stage] = {}

    def started(self, key: Key, stage: PlannedStage, job_uid: str) -> None:
        """A Job just created: its reports were cleared and no Pod has run, nothing to read yet."""
        self._stages[(key, stage.name, stage.config_hash)] = _Stage(tally.start(job_uid), running_read=self.clock())

    def forget(self, key: Key) -> None:
        # reconciles add slots from other threads meanwhile: take a snapshot of the keys (one C-level
        # copy under the GIL) and pop ours, never iterate the live dict nor replace it (a slot added to
        # a replaced dict would be lost)
        for slot in [slot for slot in list(self._stages) if slot[0] == key]:
            self._stages.pop(slot, None)

    def read(self, key: Key, plan: Plan, jobs: Sequence[Job],
             pods: Mapping[str, Sequence[Pod]], previous: ResourceStatus | None,
             open_run: Callable[[], Storage]) -> Reading:
        """The progress of every stage of `plan` that has a Job (see the module's docs)."""
        out = Reading()
        by_name = {j["metadata"]["name"]: j for j in jobs}
        # stages another stage's shared worker Job hosts (genfab.operator.hosting), by name and config hash
        shared = {(member, entry.config_hash): j for j in jobs for member, entry in hosted_on(j).items()}
        before = {s.name: s for s in (previous.stages if previous else []) if s.tally is not None}
        budget = _Budget(self.reports_per_reconcile)
        run: Storage | None = None
        for stage in plan.stages:
            job = by_name.get(child_name(plan.name, stage))
            hosted = job is None and (stage.name, stage.config_hash) in shared
            if hosted:
                job = shared[(stage.name, stage.config_hash)]
            if job is None:
                continue
            uid = job["metadata"].get("uid", "")
            slot = (key, stage.name, stage.config_hash)
            state = self._stages.get(slot)
            if state is None or state.tally.job_uid != uid:
                prev = before.get(stage.name)
                kept = prev.tally if prev is not None and prev.config_hash == stage.config_hash else None
                state = self._stages[slot] = _Stage(kept if kept is not None and kept.job_uid == uid
                                                    else tally.start(uid))
            view = job_view(job, stage.name if hosted else None)
            if view.workers:
                run = run or open_run()
                out.more = self._read_records(run, stage, state, view, budget) or out.more
                completed, finished, failed_shards = _worker_shards(state, view)
            else:
                status = job.get("status", {})
                completed = indexes.parse(status.get("completedIndexes"))
                failed_shards = indexes.parse(status.get("failedIndexes"))
                finished = (((0, view.shards - 1),) if view.failed and view.shards else
                            indexes.union(completed, failed_shards))
            todo = tally.pending(state.tally, finished)
            left: indexes.Ranges = ()
            if todo:
                run = run or open_run()
                # a running worker Job's finished shards come from its cursor, which a worker moves an instant
                # before its record names the shard: a shard whose report is not final yet is not folded now
                only_final = bool(view.workers) and not view.finished
                state.tally, left, waiting = self._fold(run, stage, state.tally, todo, completed, view.shards,
                                                        budget, only_final)
                out.more = out.more or bool(left)  # not for `waiting`: their workers' next records say more
                out.finished_read += indexes.count(todo) - indexes.count(left) - indexes.count(waiting)
                left = indexes.union(left, waiting)
            workers = _running_indexes(pods.get(view.name, ()))
            live = [i for i in self._live(state, view, workers) if not indexes.contains(finished, i)]
            if (state.running_after >= 0 or self._running_due(state, view.finished)) and live:
                run = run or open_run()
                reads = budget.reads
                if state.running_after < 0:
                    state.running_read = self.clock()
                fresh, state.running_after = self._read_running(run, stage, live, view.shards, budget,
                                                                state.running_after)
                state.running = {**state.running, **fresh}
                out.running_read += budget.reads - reads
                out.more = out.more or state.running_after >= 0  # the rest of the pass next reconcile
            state.running = {i: r for i, r in state.running.items() if i in live}
            shards = (indexes.count(completed), indexes.count(failed_shards)) if view.workers else None
            if view.workers:  # what a stage streaming from it may take: the shards whose final report is read
                finished = tally.read_indexes(state.tally)
            out.progress[stage.name] = _progress(
                state, complete=not left, shards=shards, finished=finished, workers=workers if view.workers else (),
                staying=_running_indexes(pods.get(view.name, ()), staying=True) if view.workers else ())
        return out

    def _read_records(self, run: Storage, stage: PlannedStage, state: _Stage, view: JobView, budget: _Budget
                      ) -> bool:
        """Read a worker Job's records: a pass over every worker each `progressSeconds` while it runs, and
        one that begins after it finished (one read per worker: what is read follows the Job's Pods, not
        the stage's shards). A pass the reconcile's budget cuts short goes on next reconcile (True)."""
        if not state.pass_at:
            due = not view.finished and self.clock() - state.records_read >= self.progress_seconds
            if not (due or (view.finished and not state.records_final)):
                return False
            state.pass_after_finish = view.finished
        with contextlib.suppress(Stop):
            if not state.pass_at:  # before the records: every shard it counts was taken before they were read
                state.taken = budget.spend(partial(read_cursor, run, stage.name, stage.config_hash, view.shards))
            while state.pass_at < view.workers:
                record = budget.spend(partial(read_worker, run, stage.name, stage.config_hash, state.pass_at,
                                              view.shards))
                if record is not None:
                    state.records[state.pass_at] = record
                state.pass_at += 1
        if state.pass_at < view.workers:
            return True
        state.pass_at, state.records_read = 0, self.clock()
        state.records_final = state.records_final or state.pass_after_finish
        return False

    def _live(self, state: _Stage, view: JobView, running: list[int]) -> list[int]:
        """The shards running now: the running Pods' indexes, or a worker Job's running workers' current
        shards (as their records last said)."""
        if not view.workers:
            return running
        return [shard for w in running if (record := state.records.get(w)) is not None
                and (shard := record.current) is not None]

    def _running_due(self, state: _Stage, finished: bool) -> bool:
        return not finished and self.clock() - state.running_read >= self.progress_seconds

    def _fold(self, run: Storage, stage: PlannedStage, current: ShardTally, todo: indexes.Ranges,
              completed: indexes.Ranges, shards: int, budget: _Budget, only_final: bool = False
              ) -> tuple[ShardTally, indexes.Ranges, indexes.Ranges]:
        """Read and fold finished shards, lowest first, while the reconcile has room: the tally, the ones
        not read, and (`only_final`) the ones read whose report is not final yet, not counted (`completed`:
        the indexes whose Pods exited 0, which must have left a final report)."""
        read: dict[int, ShardReport | None] = {}
        with contextlib.suppress(Stop):
            for index in indexes.first(todo, budget.reports_left):
                read[index] = budget.read(run, stage, index, shards)
        budget.reports_left -= len(read)
        unread = indexes.difference(todo, indexes.of(read))
        waiting: indexes.Ranges = ()
        if only_final:
            waiting = indexes.of(i for i, r in read.items() if r is None or (not r.corrupt and r.state == "running"))
            read = {i: r for i, r in read.items() if not indexes.contains(waiting, i)}
        return tally.fold(current, read, stage.shard_capacity, completed), unread, waiting

    def _read_running(self, run: Storage, stage: PlannedStage, live: list[int], shards: int, budget: _Budget,
                      after: int) -> tuple[dict[int, LiveShard], int]:
        """The running shards' reports above index `after`, lowest first, while the reconcile has room; and
        the last index read when the budget cut the pass short (-1: the pass is whole)."""
        found: dict[int, LiveShard] = {}
        last = after
        with contextlib.suppress(Stop):
            for index in sorted(i for i in live if i > after):
                report = budget.read(run, stage, index, shards)
                last = index
                if report is not None:
                    report = tally.checked(report, stage.shard_capacity)  # a shard's own counts, checked
                if report is not None and not report.corrupt:
                    found[index] = LiveShard.of(report)
                del report  # not alive while the next one decodes: one decoded report at a time
            return found, -1
        return found, last


def _running_indexes(pods: Sequence[Pod], staying: bool = False) -> list[int]:
    """The indexes of a Job's running Pods (a worker Job's: its running workers); `staying`: only those not
    being stopped (a Pod the Job controller is stopping is no worker to release again)."""
    return [i for i in (pod_index(p) for p in pods if pod_running(p)
                        and not (staying and p.get("metadata", {}).get("deletionTimestamp"))) if i is not None]


def _worker_shards(state: _Stage, view: JobView) -> tuple[indexes.Ranges, indexes.Ranges, indexes.Ranges]:
    """A worker Job's (completed, finished, failed) shards as its workers' records say. A Job that
    completed ran every shard: each one no record names failed must have left its final report."""
    done, failed = finished_shards(state.taken, state.records.values(), view.shards)
    every = ((0, view.shards - 1),) if view.shards else ()
    if view.complete and not view.failed and state.records_final:
        return indexes.difference(every, failed), every, failed
    if view.failed and state.records_final:
        return done, every, failed
    return done, indexes.union(done, failed), failed


class _Budget(Share):
    """This reconcile's share for reading reports: a count, and room left in its storage budget."""

    def __init__(self, reports: int) -> None:
        super().__init__()
        self.reports_left = reports

    def read(self, run: Storage, stage: PlannedStage, index: int, shards: int) -> ShardReport | None:
        """Shard `index`'s report (`Stop`: see `Share.spend`)."""
        return self.spend(lambda: read_report(run, stage.name, stage.config_hash, index, shards))


def _progress(state: _Stage, complete: bool, shards: tuple[int, int] | None = None,
              finished: indexes.Ranges = (), workers: Sequence[int] = (), staying: Sequence[int] = ()) -> Progress:
    t, running = state.tally, list(state.running.values())
    live_ok, live_failed = sum(r.succeeded for r in running), sum(r.failed for r in running)
    last = {i: r.last_activity for i, r in state.running.items() if r.state == "running"}
    on: dict[int, int] = {}
    waiting: dict[int, float] = {}
    if shards is not None:  # a worker Job: its Pods' indexes are the workers'
        on = {w: record.current for w, record in state.records.items() if record.current in last}
        # a worker between shards is measured from its record's last write (a shard ended), not from its
        # Pod's start: a worker an hour old is not stuck for having no shard at the instant it was read
        last = {**{w: r.updated_at for w in workers if (r := state.records.get(w)) is not None},
                **{w: last[shard] for w, shard in on.items()}}
        waiting = {w: r.waiting_since for w in staying if (r := state.records.get(w)) is not None
                   and r.current is None and r.waiting_since is not None}
    return Progress(
        succeeded=t.succeeded + live_ok, failed=t.failed + live_failed, corrupt=tuple(t.corrupt_messages),
        last_sample=last, shards=shards, worker_shards=on, waiting=waiting,
        busy_workers=frozenset(w for w, r in state.records.items() if r.current is not None)
        if shards is not None else None,
        notes=tuple(t.notes), shard_errors=tuple(t.shard_errors),
        produced_by=produced_by([t.produced_by, *(dict(r.produced_by) for r in running)]),
        corrupt_shards=t.corrupt, note_count=t.note_count, tally=t, complete=complete, finished=finished,
        shard_seconds=t.shard_seconds + sum(r.run_seconds for r in running))
