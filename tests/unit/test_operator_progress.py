"""The operator's progress reading (genfab.operator.progress): finished shards read once each, a bounded
number per reconcile, going on where the last reconcile (or the last operator process) stopped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genfab.api.status import ResourceStatus, StageStatus
from genfab.inventory import ShardReport, write_report
from genfab.operator import read_budget
from genfab.operator.decide import Observed, decide
from genfab.operator.objects import child_name
from genfab.operator.progress import ProgressReader
from genfab.storage import StorageLimit
from genfab.storage.local import FileStorage
from tests.unit.shared import NOW, worldexplorer_plan

pytestmark = pytest.mark.unit
KEY = ("SceneJob", "lab", "s")
SHARDS = 1000


class Counting(FileStorage):
    """A folder that counts reads (what a reconcile spends)."""

    reads = 0

    def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
        self.reads += 1
        return super().read_at_most(key, limit, what)

    def list(self, prefix: str = "") -> Iterator[Any]:
        raise AssertionError("progress is read by key, never by listing the reports")


def big_job(tmp: Path, completed: str, failed: str = "", done: bool = False
            ) -> tuple[Any, Any, dict[str, Any], Counting]:
    r, p = worldexplorer_plan()
    stage = p.stage("scaffold")
    run = Counting(f"file://{tmp}", tmp)
    for i in range(SHARDS):
        write_report(run, ShardReport("scaffold", stage.config_hash, i, SHARDS, state="succeeded",
                                      succeeded=[f"photorealistic/index_{i:04d}"]))
    status: dict[str, Any] = {"completedIndexes": completed, "failedIndexes": failed or None}
    if done:
        status["conditions"] = [{"type": "Complete", "status": "True"}]
    job = {"metadata": {"name": child_name(p.name, stage), "uid": "job-1",
                        "labels": {"genfab.dev/stage": "scaffold", "genfab.dev/config-hash": stage.short_hash},
                        "annotations": {"genfab.dev/samples": str(SHARDS)}},
           "spec": {"completions": SHARDS}, "status": status}
    return r, p, job, run


def test_finished_shards_are_read_once_each_a_bounded_number_per_reconcile(tmp_path: Path) -> None:
    r, p, job, run = big_job(tmp_path, "0-999", done=True)
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=300)
    seen = []
    for _ in range(4):
        before = run.reads
        reading = reader.read(KEY, p, [job], {}, None, lambda: run)
        seen.append((run.reads - before, reading.more, reading.progress["scaffold"].succeeded))
        state = decide(p, r.spec, Observed(jobs=[job], progress=reading.progress), None, NOW).observations[0].state
        assert state == ("finished" if not reading.more else "running")  # finished only once every report is read
    assert seen == [(300, True, 300), (300, True, 600), (300, True, 900), (100, False, 1000)]
    assert reader.read(KEY, p, [job], {}, None, lambda: run).progress["scaffold"].tally.indexes == "0-999"  # type: ignore[union-attr]
    assert run.reads == 1000  # and none after the last one


def test_a_new_operator_goes_on_from_the_status(tmp_path: Path) -> None:
    """The tally in the status survives a restart: a new reader reads only the shards not in it."""
    _, p, job, run = big_job(tmp_path, "0-599")
    first = ProgressReader(progress_seconds=10, reports_per_reconcile=1000)
    t = first.read(KEY, p, [job], {}, None, lambda: run).progress["scaffold"].tally
    stage = p.stage("scaffold")
    previous = ResourceStatus(stages=[StageStatus(name="scaffold", config_hash=stage.config_hash, tally=t)])
    job["status"] = {"completedIndexes": "0-999", "conditions": [{"type": "Complete", "status": "True"}]}
    before = run.reads
    progress = ProgressReader(progress_seconds=10, reports_per_reconcile=1000).read(
        KEY, p, [job], {}, previous, lambda: run).progress["scaffold"]
    assert run.reads - before == 400 and progress.succeeded == 1000 and progress.complete
    job["metadata"]["uid"] = "job-2"  # a new Job of the stage (its reports were cleared): a new tally
    again = ProgressReader(progress_seconds=10, reports_per_reconcile=1000).read(
        KEY, p, [job], {}, previous, lambda: run).progress["scaffold"]
    assert again.tally is not None and again.tally.job_uid == "job-2" and again.succeeded == 1000


def test_a_budget_that_runs_out_is_go_on_next_time_not_stalled(tmp_path: Path) -> None:
    _, p, job, run = big_job(tmp_path, "0-999", done=True)
    small = read_budget.ReadBounds(requests=150)  # 50 kept for the rest of the reconcile
    with read_budget.budget(small, read_budget.BytePool(small.pool_bytes)) as spend:
        reading = ProgressReader(10, 500).read(KEY, p, [job], {}, None,
                                               lambda: read_budget.BudgetedStorage(run, spend))
    assert reading.more and reading.progress["scaffold"].succeeded == 100 and spend.requests == 100


def test_a_bound_reached_before_any_report_is_read_stops_the_reconcile(tmp_path: Path) -> None:
    """A store that never answers in time (or a first report as large as the byte budget) is truly stuck:
    the reconcile stops with StorageLimit (the resource says Stalled), as before."""
    _, p, job, run = big_job(tmp_path, "0-999", done=True)
    clock = iter([0.0] + [100.0] * 10)  # the budget's clock: every call after the start is past its seconds
    spend = read_budget.Budget(read_budget.ReadBounds(seconds=30), read_budget.BytePool(1 << 26),
                               clock=lambda: next(clock))
    slow = read_budget.BudgetedStorage(run, spend)
    spend.has_room = lambda requests, nbytes: True  # type: ignore[method-assign]
    with pytest.raises(StorageLimit, match="took more than 30 s"):
        ProgressReader(10, 500).read(KEY, p, [job], {}, None, lambda: slow)


def test_running_shards_are_read_for_their_live_count_at_most_every_progress_seconds(tmp_path: Path) -> None:
    _, p, job, run = big_job(tmp_path, "0-997")
    stage = p.stage("scaffold")
    partial = ShardReport("scaffold", stage.config_hash, 998, SHARDS, succeeded=[], last_sample_at=123.0)
    write_report(run, partial)
    pods = {job["metadata"]["name"]: [{"metadata": {"labels": {"batch.kubernetes.io/job-completion-index": str(i)}},
                                       "status": {"phase": "Running"}} for i in (998, 999)]}
    now = [0.0]
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=2000, clock=lambda: now[0])
    first = reader.read(KEY, p, [job], pods, None, lambda: run).progress["scaffold"]
    assert first.succeeded == 999 and first.last_sample == {998: 123.0}  # 999's report says it succeeded: counted
    before = run.reads
    now[0] = 5.0
    reader.read(KEY, p, [job], pods, None, lambda: run)
    assert run.reads == before  # nothing finished since, running shards read again only after 10 s
    now[0] = 11.0
    reader.read(KEY, p, [job], pods, None, lambda: run)
    assert run.reads == before + 2


def worker_job(tmp: Path, workers: int, records: dict[int, dict[str, Any]], done: bool = False,
               taken: int | None = None) -> tuple[Any, Any, dict[str, Any], Counting]:
    """A worker Job of `workers` Pods over the stage's SHARDS shards, with its workers' records and its
    cursor (`taken`: the shards handed out)."""
    from genfab.contract.names import cursor_key
    from genfab.inventory.workers import WorkerRecord, write_worker

    r, p, job, run = big_job(tmp, "", done=done)
    stage = p.stage("scaffold")
    for w, fields in records.items():
        write_worker(run, "scaffold", stage.config_hash, WorkerRecord(w, SHARDS, **fields))
    if taken is not None:
        run.write_bytes(cursor_key("scaffold", stage.config_hash), json.dumps({"next": taken}).encode())
    job["spec"] = {"completions": workers}
    job["metadata"]["annotations"]["genfab.dev/shards"] = str(SHARDS)
    job["status"] = {"completedIndexes": "0-1" if done else None,
                     **({"conditions": [{"type": "Complete", "status": "True"}]} if done else {})}
    return r, p, job, run


def running_pod(index: int) -> dict[str, Any]:
    return {"metadata": {"labels": {"batch.kubernetes.io/job-completion-index": str(index)},
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(index)}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def test_a_worker_jobs_shards_come_from_its_cursor_and_records_one_read_per_worker(tmp_path: Path) -> None:
    r, p, job, run = worker_job(tmp_path, 2, {0: {"current": 799}, 1: {"failed": "798", "current": 800}}, taken=801)
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=1000)
    pods = {job["metadata"]["name"]: [running_pod(0), running_pod(1)]}
    reading = reader.read(KEY, p, [job], pods, None, lambda: run)
    progress = reading.progress["scaffold"]
    assert progress.shards == (798, 1) and progress.succeeded == 799 + 2  # finished and running shards' reports
    assert run.reads == 1 + 2 + 799 + 2  # the cursor, the records, the finished shards' reports, the running
    obs = decide(p, r.spec, Observed(jobs=[job], progress=reading.progress), None, NOW).observations[0]
    assert (obs.state, obs.shards_total, obs.shards_succeeded, obs.shards_failed) == ("running", SHARDS, 798, 1)
    before = run.reads
    reader.read(KEY, p, [job], pods, None, lambda: run)
    assert run.reads == before  # nothing again before progressSeconds


def test_a_workers_clock_is_its_shard_its_last_record_or_its_wait(tmp_path: Path) -> None:
    """Worker 0 runs shard 799 (its report's clock), worker 1 is between shards (its record's last write,
    not its Pod's start: a worker an hour old is not stuck for having no shard when read), worker 2 waits
    for input (not stuck at all; since when, for its release) and its Pod is being stopped (no worker to
    release again); only worker 0 lost work if its Pod goes."""
    import time

    _, p, job, run = worker_job(tmp_path, 3, {0: {"current": 799}, 1: {}, 2: {"waiting_since": 1000.0}}, taken=800)
    stopping = running_pod(2)
    stopping["metadata"]["deletionTimestamp"] = "2026-11-22T12:00:00Z"
    pods = {job["metadata"]["name"]: [running_pod(0), running_pod(1), stopping]}
    progress = ProgressReader(progress_seconds=10, reports_per_reconcile=1000).read(
        KEY, p, [job], pods, None, lambda: run).progress["scaffold"]
    assert set(progress.last_sample) == {0, 1, 2} and progress.last_sample[1] >= time.time() - 60
    assert progress.waiting == {} and progress.busy_workers == frozenset({0})
    pods = {job["metadata"]["name"]: [running_pod(0), running_pod(1), running_pod(2)]}
    progress = ProgressReader(progress_seconds=10, reports_per_reconcile=1000).read(
        KEY, p, [job], pods, None, lambda: run).progress["scaffold"]
    assert progress.waiting == {2: 1000.0}


def test_a_shard_the_cursor_handed_out_counts_once_its_report_is_final(tmp_path: Path) -> None:
    """The cursor moves an instant before the taker's record names its shard: a reconcile reading in
    between finds that shard's report still running (or none) and leaves it, without asking to reconcile
    again at once; the next pass counts it when its report is final."""
    _, p, job, run = worker_job(tmp_path, 1, {0: {}}, taken=3)
    stage = p.stage("scaffold")
    write_report(run, ShardReport("scaffold", stage.config_hash, 2, SHARDS, state="running", succeeded=["x"]))
    now = [0.0]
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=1000, clock=lambda: now[0])
    reading = reader.read(KEY, p, [job], {}, None, lambda: run)
    assert reading.progress["scaffold"].shards == (3, 0)  # the cursor's: shards 0-2 handed out, none running
    assert reading.progress["scaffold"].succeeded == 2 and not reading.more  # shard 2's report is not final
    write_report(run, ShardReport("scaffold", stage.config_hash, 2, SHARDS, state="succeeded", succeeded=["x", "y"]))
    now[0] = 11.0
    reading = reader.read(KEY, p, [job], {}, None, lambda: run)
    assert reading.progress["scaffold"].succeeded == 4 and reading.progress["scaffold"].tally.indexes == "0-2"  # type: ignore[union-attr]


def test_a_completed_worker_job_ran_every_shard_its_records_do_not_name_failed(tmp_path: Path) -> None:
    r, p, job, run = worker_job(tmp_path, 2, {0: {"done": "0-9", "finished": True},
                                              1: {"failed": "10", "finished": True}}, done=True)
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=2000)
    reading = reader.read(KEY, p, [job], {}, None, lambda: run)
    assert reading.progress["scaffold"].shards == (SHARDS - 1, 1)
    obs = decide(p, r.spec, Observed(jobs=[job], progress=reading.progress), None, NOW).observations[0]
    assert (obs.state, obs.shards_succeeded, obs.shards_failed, obs.reason) == (
        "finished", SHARDS - 1, 1, "FailedIndexes")


def test_running_shards_are_kept_as_a_few_numbers_not_their_decoded_reports(tmp_path: Path) -> None:
    """A tenant's running reports may be as large as the byte bound allows (here 16 of about 0.5 MB of
    per-sample seconds each). The shared operator reads them one at a time and keeps a few numbers per
    shard between reconciles: what it holds afterwards does not grow with what the reports hold (it held
    every running report decoded, 1.9 GiB with eight hostile resources against the chart's 1 GiB)."""
    import tracemalloc

    _, p, job, run = big_job(tmp_path, "0-983")
    stage = p.stage("scaffold")
    for i in range(984, SHARDS):
        write_report(run, ShardReport("scaffold", stage.config_hash, i, SHARDS, succeeded=[f"s{i}"],
                                      seconds={f"sample-{k:07d}": 1.0 for k in range(20_000)},
                                      produced_by={f"model-{k}": 1 for k in range(1000)}, last_sample_at=5.0))
    pods = {job["metadata"]["name"]: [{"metadata": {"labels": {"batch.kubernetes.io/job-completion-index": str(i)}},
                                       "status": {"phase": "Running"}} for i in range(984, SHARDS)]}
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=2000, clock=lambda: 100.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        progress = reader.read(KEY, p, [job], pods, None, lambda: run).progress["scaffold"]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert progress.succeeded == SHARDS and len(progress.last_sample) == 16
    assert len(progress.produced_by) <= 17  # the status's most frequent producers, the rest summed
    assert held < 4 * 2**20, held  # the tally of 1,000 shards and 16 running shards' numbers


class Rationed(FileStorage):
    """A folder whose reads run out after `per_call` in one reconcile (a storage budget, as
    `read_budget` gives: past it, a read raises StorageLimit and the reader stops for this reconcile)."""

    per_call, used = 40, 0

    def read_at_most(self, key: str, limit: int, what: str = "") -> bytes:
        self.used += 1
        if self.used > self.per_call:
            raise StorageLimit("this reconcile's reads are spent")
        return super().read_at_most(key, limit, what)


def test_every_running_shard_is_read_within_a_bounded_number_of_reconciles(tmp_path: Path) -> None:
    """150 running shards, 40 reads a reconcile: the pass goes on where it stopped, so each shard's last
    sample is known after four reconciles (lowest first from 0 each time left 110 shards never read, and
    their Pods were stopped as making no progress)."""
    _, p, job, _ = big_job(tmp_path, "")  # nothing finished: the reconciles' reads go to the running shards
    stage = p.stage("scaffold")
    run = Rationed(f"file://{tmp_path}", tmp_path)
    for i in range(850, SHARDS):
        write_report(run, ShardReport("scaffold", stage.config_hash, i, SHARDS, succeeded=[], last_sample_at=float(i)))
    pods = {job["metadata"]["name"]: [{"metadata": {"labels": {"batch.kubernetes.io/job-completion-index": str(i)}},
                                       "status": {"phase": "Running"}} for i in range(850, SHARDS)]}
    reader = ProgressReader(progress_seconds=10, reports_per_reconcile=2000, clock=lambda: 100.0)
    seen: list[int] = []
    for _ in range(4):
        run.used = 0
        reading = reader.read(KEY, p, [job], pods, None, lambda: run)
        seen.append(len(reading.progress["scaffold"].last_sample))
        assert reading.more or seen[-1] == 150  # a pass cut short asks for the next reconcile at once
    assert seen[-1] == 150 and seen == sorted(seen), seen
