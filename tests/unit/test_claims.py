"""Worker Pods' shards from the stage's cursor (genfab.stages.runtime.claims, genfab.inventory.workers), on
file:// storage: every shard taken once however the workers interleave, a restarted worker's shard run
again and failed for good after its retries, a stop not counted as a try, bad input failed at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRYABLE, StreamSource
from genfab.contract.names import input_key
from genfab.inventory import ShardReport, read_report, write_report
from genfab.inventory.workers import (
    WAIT,
    WorkerRecord,
    finished_shards,
    read_cursor,
    read_input,
    read_worker,
    take_shard,
    write_input,
)
from genfab.stages.runtime.claims import ClaimFeed
from genfab.stages.runtime.feed import Assignment
from genfab.storage import open_storage

HASH = "d" * 64


def feed(tmp_path: Path, worker: int, shards: int = 5, retries: int = 1) -> ClaimFeed:
    return ClaimFeed(open_storage(f"file://{tmp_path}"), "stage", HASH, worker, shards, retries)


def test_workers_taking_shards_at_once_take_each_exactly_once(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}")
    taken: list[int] = []

    def worker() -> None:
        while (index := take_shard(run, "stage", HASH, 200)) is not None:
            taken.append(index)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(200))


def test_a_worker_runs_its_shards_and_its_record_says_which_ended_how(tmp_path: Path) -> None:
    first, second = feed(tmp_path, 0), feed(tmp_path, 1)
    a, b = iter(first), iter(second)
    got = [next(a).index, next(b).index, next(a).index]
    assert got == [0, 1, 2]
    record = read_worker(open_storage(f"file://{tmp_path}"), "stage", HASH, 0, 5)
    assert record is not None and (record.current, record.attempt) == (2, 1)
    first.done(Assignment(0), EXIT_OK)
    first.done(Assignment(2), EXIT_OK)
    for assignment in a:
        first.done(assignment, EXIT_BAD_INPUT if assignment.index == 3 else EXIT_OK)
    run = open_storage(f"file://{tmp_path}")
    record, other = read_worker(run, "stage", HASH, 0, 5), read_worker(run, "stage", HASH, 1, 5)
    assert record is not None and record.finished and record.ranges() == ((), ((3, 3),))  # failed ones only
    assert other is not None and other.current == 1
    # what the operator counts: every shard the cursor handed out, less the running and the failed ones
    assert read_cursor(run, "stage", HASH, 5) == 5
    assert finished_shards(5, [record, other], 5) == (((0, 0), (2, 2), (4, 4)), ((3, 3),))
    assert first.continues_after(EXIT_BAD_INPUT) and not first.continues_after(EXIT_RETRYABLE)


@pytest.mark.parametrize(("taken", "records", "done", "failed"), [
    (0, [], (), ()),
    (4, [], ((0, 3),), ()),  # every worker between shards
    (5, [(3, "", "2"), (4, "", "")], ((0, 1),), ((2, 2),)),  # two running, one failed for good
    (5, [(1, "", "")], ((0, 0), (2, 4)), ()),  # a worker still on an early shard: a hole
    (9, [(None, "", "")], ((0, 4),), ()),  # the cursor is never past the stage's shards
    (3, [(None, "0-2,7", "")], ((0, 2),), ()),  # a record written before: its finished shards still count
    (2, [(None, "0-2,7", "2")], ((0, 1),), ((2, 2),)),
])
def test_a_worker_jobs_finished_shards_are_the_cursors_less_the_running_and_failed_ones(
        taken: int, records: list[tuple[int | None, str, str]], done: tuple[tuple[int, int], ...],
        failed: tuple[tuple[int, int], ...]) -> None:
    made = [WorkerRecord(w, 5, current=current, done=ok, failed=bad) for w, (current, ok, bad) in enumerate(records)]
    assert finished_shards(taken, made, 5) == (done, failed)


def test_a_restarted_worker_runs_its_shard_again_and_gives_it_up_after_its_retries(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}")
    pod = feed(tmp_path, 0, shards=2, retries=1)
    first = next(iter(pod))
    pod.done(first, EXIT_RETRYABLE)  # a crash: the Pod ends, its Job starts it again
    write_report(run, ShardReport("stage", HASH, 0, 2, succeeded=["a"]))  # what the crashed try committed
    pod = feed(tmp_path, 0, shards=2, retries=1)
    again = next(iter(pod))
    assert again.index == 0
    pod.done(again, 143)  # stopped (preempted): not a try
    pod = feed(tmp_path, 0, shards=2, retries=1)
    third = next(iter(pod))
    assert third.index == 0
    record = read_worker(run, "stage", HASH, 0, 2)
    assert record is not None and record.attempt == 2
    pod.done(third, EXIT_RETRYABLE)  # the second try crashed too: retries 1 spent
    pod = feed(tmp_path, 0, shards=2, retries=1)
    assert [a.index for a in pod] == [1]  # shard 0 given up, the worker goes on
    report = read_report(run, "stage", HASH, 0, 2)
    assert report is not None and report.state == "failed" and report.succeeded == ["a"]
    assert "every try ended its worker's process (2 tries" in report.message
    record = read_worker(run, "stage", HASH, 0, 2)
    assert record is not None and record.ranges()[1] == ((0, 0),)


def test_a_record_that_genfab_did_not_write_is_not_read(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}")
    key = "_genfab/work/stage/dddddddddd/worker-00000.json"
    for body in (b"{", b'{"worker": 1, "shards": 5}', b'{"worker": 0, "shards": 6}', b"x" * (300 << 10)):
        run.write_bytes(key, body)
        assert read_worker(run, "stage", HASH, 0, 5) is None
    run.write_bytes(key, b'{"worker": 0, "shards": 5, "current": 99, "done": "0-99999999,x"}')
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and record.current is None and record.ranges() == ((), ())
    run.write_bytes(key, b'{"worker": 0, "shards": 5, "done": "1-99999999", "failed": "0"}')
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and record.ranges() == (((1, 4),), ((0, 0),))


def test_a_stop_after_the_progress_deadline_is_the_operators_no_progress_stop_and_a_try(tmp_path: Path) -> None:
    run = open_storage(f"file://{tmp_path}")
    stuck = ClaimFeed(run, "stage", HASH, 0, 1, retries=0, progress_deadline=0.0)  # every stop comes too late
    shard = next(iter(stuck))
    write_report(run, ShardReport("stage", HASH, 0, 1))  # running, no sample since it began
    stuck.done(shard, 143)
    record = read_worker(run, "stage", HASH, 0, 1)
    assert record is not None and record.attempt == 1  # counted: the next Pod gives it up (retries 0)
    again = ClaimFeed(run, "stage", HASH, 0, 1, retries=0, progress_deadline=0.0)
    assert list(again) == []
    report = read_report(run, "stage", HASH, 0, 1)
    assert report is not None and report.state == "failed"
    moving = ClaimFeed(open_storage(f"file://{tmp_path}/other"), "stage", HASH, 0, 1, retries=0,
                       progress_deadline=3600.0)
    shard = next(iter(moving))
    moving.done(shard, 143)  # stopped while it made progress: preemption, not a try
    assert moving.record.attempt == 0


def test_a_streaming_stages_worker_takes_only_shards_whose_input_is_marked_committed(tmp_path: Path) -> None:
    """A shard is taken once its upstream's shard succeeded (its final report) or the operator's mark
    (`input.json`: ended, failed for good included) is past it; else the worker waits (`WAIT`, and the
    cursor does not move). A mark that is not genfab's counts as none."""
    run = open_storage(f"file://{tmp_path}")
    source = StreamSource(stage="up", config_hash="u" * 64, shards=4, shard_size=2)
    worker = ClaimFeed(run, "stage", HASH, 0, 4, 0, upstream=source, shard_size=2, poll_seconds=0.01)
    assert worker.next() == WAIT  # nothing committed yet
    write_report(run, ShardReport("up", "u" * 64, 0, 4, state="running"))
    assert worker.next() == WAIT  # shard 0 of the upstream still runs
    write_report(run, ShardReport("up", "u" * 64, 0, 4, state="succeeded"))
    assert isinstance(first := worker.next(), Assignment) and first.index == 0
    write_input(run, "stage", HASH, 2)
    taken = [worker.next(), worker.next()]
    assert [t.index if isinstance(t, Assignment) else t for t in taken] == [1, WAIT]
    assert read_input(run, "stage", HASH, 4) == 2
    write_input(run, "stage", HASH, 99)  # clamped to the stage's shards
    assert read_input(run, "stage", HASH, 4) == 4
    assert [a.index for a in worker] == [2, 3]
    run.write_bytes(input_key("stage", HASH), b'{"ready": "all"}')
    assert read_input(run, "stage", HASH, 4) == 0
    assert take_shard(run, "other", HASH, 3, lambda i: False) == WAIT
    assert take_shard(run, "other", HASH, 3, lambda i: i < 1) == 0


def test_a_waiting_worker_says_so_once_in_its_record_and_its_readiness_file(tmp_path: Path) -> None:
    """As it begins to wait for input it writes its record once (`waiting_since`: the operator releases a
    worker that waited past its bound) and keeps the file its Pod's readiness probe reads (not Ready while
    waiting); both are cleared as it takes a shard. A worker started again does not inherit its last Pod's
    wait."""
    run = open_storage(f"file://{tmp_path}/run")
    source = StreamSource(stage="up", config_hash="u" * 64, shards=2, shard_size=1)
    flag = tmp_path / "waiting"
    worker = ClaimFeed(run, "stage", HASH, 1, 2, 0, upstream=source, waiting_file=flag)
    assert worker.next() == WAIT
    record = read_worker(run, "stage", HASH, 1, 2)
    assert record is not None and record.waiting_since is not None and flag.exists()
    since = record.waiting_since
    assert worker.next() == WAIT and read_worker(run, "stage", HASH, 1, 2).waiting_since == since  # type: ignore[union-attr]
    write_report(run, ShardReport("up", "u" * 64, 0, 2, state="succeeded"))
    taken = worker.next()
    assert isinstance(taken, Assignment)
    record = read_worker(run, "stage", HASH, 1, 2)
    assert record is not None and record.waiting_since is None and record.current == 0 and not flag.exists()
    worker.done(taken, EXIT_OK)
    assert worker.next() == WAIT and flag.exists()
    time.sleep(0.01)
    again = ClaimFeed(run, "stage", HASH, 1, 2, 0, upstream=source)  # its Pod was stopped while it waited
    assert again.next() == WAIT
    assert again.record.waiting_since is not None and again.record.waiting_since > since  # its own wait


def test_a_stop_as_a_worker_takes_a_shard_leaves_it_named_in_its_record_and_not_counted_a_try(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (a preempted or released worker's Pod) between the cursor's write and the record's would leave
    a shard taken that no record names, run by nobody: the stop waits until the record names it, and the
    Pod that follows runs it as its first try."""
    import os
    import signal

    from genfab.stages.runtime import claims
    from genfab.stages.runtime.stops import STOP_SIGNALS, raise_interrupt

    taken = claims.take_shard

    def take_then_stopped(*args: object, **kwargs: object) -> object:
        index = taken(*args, **kwargs)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)  # the stop arrives here, the record not written yet
        time.sleep(0.05)
        return index

    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, raise_interrupt)
    monkeypatch.setattr(claims, "take_shard", take_then_stopped)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            feed(tmp_path, 0, retries=0).next()
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    monkeypatch.setattr(claims, "take_shard", taken)
    run = open_storage(f"file://{tmp_path}")
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and (record.current, record.attempt) == (0, 0)  # named, not a try
    pod = feed(tmp_path, 0, retries=0)  # the Pod that follows: retries 0, and shard 0 still runs
    again = pod.next()
    assert isinstance(again, Assignment) and again.index == 0
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and (record.current, record.attempt) == (0, 1)


def killed_as_it_took(run: object, worker: int, cursor_written: bool = True) -> int | None:
    """Worker `worker`'s Pod names the shard it takes, writes the cursor (or not), and is killed (SIGKILL:
    nothing more is written): the shard it took, or None."""
    from genfab.inventory.workers import write_worker

    record = WorkerRecord(worker, 5)

    def claim(shard: int) -> None:
        record.claiming = shard
        write_worker(run, "stage", HASH, record)  # type: ignore[arg-type]
        if not cursor_written:
            raise KeyboardInterrupt("killed before the cursor's write")
    try:
        taken = take_shard(run, "stage", HASH, 5, worker=worker, claiming=claim)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return None
    assert isinstance(taken, int)
    return taken


def test_a_worker_killed_between_the_cursors_write_and_its_record_runs_the_shard_it_took_once(
        tmp_path: Path) -> None:
    """SIGKILL (out of memory, a node lost) after the cursor handed shard 0 out and before the record named
    it current: the record names it as being taken, so the operator does not count it done, another
    worker goes on with the next, and the Pod that follows runs it as its first try."""
    run = open_storage(f"file://{tmp_path}")
    assert killed_as_it_took(run, 0) == 0
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and (record.claiming, record.current) == (0, None)
    assert finished_shards(read_cursor(run, "stage", HASH, 5), [record], 5) == ((), ())  # not done
    other = next(iter(feed(tmp_path, 1)))
    assert isinstance(other, Assignment) and other.index == 1
    again = feed(tmp_path, 0).next()
    assert isinstance(again, Assignment) and again.index == 0
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and (record.current, record.attempt, record.claiming) == (0, 1, None)


@pytest.mark.parametrize("first", ["itself", "another"])
def test_a_worker_killed_before_the_cursors_write_takes_no_shard_twice(tmp_path: Path, first: str) -> None:
    """Killed after naming shard 0 and before the cursor moved: the take never happened. The Pod that
    follows takes from the cursor as any worker, whether another worker took shard 0 meanwhile or not."""
    run = open_storage(f"file://{tmp_path}")
    assert killed_as_it_took(run, 0, cursor_written=False) is None
    taken = []
    if first == "another":
        other = feed(tmp_path, 1).next()
        assert isinstance(other, Assignment)
        taken.append(other.index)
    again = feed(tmp_path, 0).next()
    assert isinstance(again, Assignment)
    taken.append(again.index)
    assert sorted(taken) == list(range(len(taken)))  # each once
    record = read_worker(run, "stage", HASH, 0, 5)
    assert record is not None and record.claiming is None and record.attempt == 1


@pytest.mark.parametrize("reported", [False, True])
def test_past_the_cursors_takers_a_killed_workers_shard_is_its_own_unless_it_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reported: bool) -> None:
    """The cursor remembers the last `TAKERS` takes; a take older than them is this worker's unless the
    shard's report is there (another worker ran it)."""
    from genfab.inventory import workers

    monkeypatch.setattr(workers, "TAKERS", 2)
    run = open_storage(f"file://{tmp_path}")
    assert killed_as_it_took(run, 0) == 0
    busy = feed(tmp_path, 1)
    for _ in range(3):  # shards 1 to 3: the takers are (2, 1) and (3, 1) now
        assert isinstance(busy.next(), Assignment)
    if reported:
        write_report(run, ShardReport("stage", HASH, 0, 5))
    again = feed(tmp_path, 0).next()
    assert isinstance(again, Assignment) and again.index == (4 if reported else 0)
