"""`ClaimFeed`: the shards of a worker Pod (a worker Job's index, `GENFAB_WORKERS` set), taken one after
another from the stage's cursor in the run's storage (genfab.inventory.workers), with the models the
process loaded once.

A worker's Pod that dies (a crash, the node gone, out of memory) is started again by its Job (the same
index); the new Pod finds the shard its record names as current and runs it again, one try more. A try
that a stop ended (SIGTERM: preemption, a deleted Pod) is not counted, as the Job's podFailurePolicy
does not count it, unless the shard had made no progress for the stage's `progressDeadlineSeconds`
(`GENFAB_PROGRESS_DEADLINE`): that is the operator stopping a stuck shard, a try. After `retries` tries
more, the shard is failed for good (its final report says so) and the worker goes on with the next. A
shard that fails with bad input is failed at once and the worker goes on; any other failure ends the
process (its state is not trusted after a crash) and the Pod's restart retries it. The worker ends when
the cursor has no shard left.

A worker of a streaming stage (its config's `stream`) takes a shard only once its input is
committed: the upstream's shard of that index left a succeeded final report, or the operator marked it
ended (`input.json`: failed for good, or the upstream stage ended). When the next one is not, it waits,
looking again every `INPUT_POLL_SECONDS`; the operator starts such a stage's workers only for committed
input no worker has taken (genfab.operator.streams), so a worker waits only between shards. As it begins
to wait it says so once: in its record (`waiting_since`, which the operator reads to release a worker that
waited past its stage's bound) and by the file `GENFAB_WAITING_FILE` names (the Pod's readiness probe: a
waiting worker is not Ready, and the Job controller stops not-Ready Pods first when the operator lowers
the Job's parallelism). Both are cleared as it takes a shard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, StageConfig, StreamSource
from genfab.contract.names import (
    ENV_HOSTED,
    ENV_PROGRESS_DEADLINE,
    ENV_SHARD_RETRIES,
    ENV_WAITING_FILE,
    ENV_WORKER_FD,
    ENV_WORKERS,
)
from genfab.contract.streams import upstream_span
from genfab.inventory import ShardReport, read_report, write_report
from genfab.inventory.workers import WAIT, WorkerRecord, read_input, read_worker, take_shard, took, write_worker
from genfab.stages.runtime.context import StageContext
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.feed import Assignment, OneShard, ParentFeed, ShardFeed
from genfab.stages.runtime.stops import deferred_stop
from genfab.storage import Storage, StorageError

log = logging.getLogger("genfab.stages")
STOPPED = 128
"""Exit codes above this are the shell's for a signal: a stop, not a try."""
INPUT_POLL_SECONDS = 1.0
"""How often a streaming stage's waiting worker reads its input mark again."""


class ClaimFeed:
    def __init__(self, run: Storage, stage: str, config_hash: str, worker: int, shards: int, retries: int,
                 progress_deadline: float | None = None, upstream: StreamSource | None = None,
                 shard_size: int = 1, poll_seconds: float = INPUT_POLL_SECONDS,
                 waiting_file: Path | None = None, marks_waiting: bool = True) -> None:
        self.run, self.stage, self.config_hash = run, stage, config_hash
        self.shards = shards
        self.retries = retries
        self.progress_deadline = progress_deadline
        self.upstream = upstream
        """The stage it streams from: its shard i waits for the upstream shards it maps onto."""
        self.shard_size = shard_size
        self.poll_seconds = poll_seconds
        self.waiting_file = waiting_file
        """Kept while it waits for input (the Pod's readiness probe; None: nothing reads it)."""
        self.marks_waiting = marks_waiting
        """It says when it waits (False: a shared worker's stage, whose worker says so for all its stages)."""
        self.record = WorkerRecord(worker, shards)
        self.started = 0.0
        """When the current try began (epoch seconds)."""
        self._resumed = False

    def __iter__(self) -> Iterator[Assignment]:
        while (taken := self.next()) is not None:
            if taken == WAIT:
                time.sleep(self.poll_seconds)
                continue
            yield taken

    def next(self) -> Assignment | Literal["wait"] | None:
        """Its next shard without waiting: the one its last Pod ended in, else one taken from the cursor;
        `WAIT` when the next one's input is not committed yet; None when no shard is left. A stop (SIGTERM:
        preemption, a released worker's Pod deleted) is held back until the shard it takes is named in its
        record, and that shard's try is not counted: the Pod that follows runs it as this one would have."""
        try:
            with deferred_stop():
                return self._next()
        except KeyboardInterrupt:
            if self.record.current is not None and self.record.attempt > 0:
                self.record.attempt -= 1
                self._save()
            raise

    def _next(self) -> Assignment | Literal["wait"] | None:
        if not self._resumed:
            self._resumed = True
            earlier = read_worker(self.run, self.stage, self.config_hash, self.record.worker, self.shards)
            if earlier is not None:
                self.record = earlier
                self.record.finished = False
                self.record.waiting_since = None  # its last Pod's wait ended with it
                self._resume_claim()
            if self.record.current is not None:  # this worker's last Pod ended inside it
                self.record.attempt += 1
                if self.record.attempt > self.retries + 1:
                    self._give_up(self.record.current)
                else:
                    log.info("running again the shard this worker's last Pod ended in",
                             extra={"index": self.record.current, "attempt": self.record.attempt})
                    self._save()
                    self.started = time.time()
                    return Assignment(self.record.current)
        index = take_shard(self.run, self.stage, self.config_hash, self.shards,
                           self._input_ready() if self.upstream is not None else None,
                           worker=self.record.worker, claiming=self._claiming)
        if self.record.claiming is not None and self.record.claiming != index:  # another worker won that one
            self.record.claiming = None
            self._save()
        self.record.claiming = None
        if index == WAIT:
            self._waiting(True)
            return WAIT
        self._waiting(False)
        if index is None:
            if not self.record.finished:
                self.record.finished = True
                self._save()
            return None
        self.record.current, self.record.attempt = index, 1
        self._save()
        self.started = time.time()
        return Assignment(index)

    def _claiming(self, shard: int) -> None:
        """Name the shard it is about to take before the cursor's write (genfab.inventory.workers)."""
        if self.record.claiming != shard:
            self.record.claiming = shard
            self._save()

    def _resume_claim(self) -> None:
        """Its last Pod named a shard it was taking and ended before naming it current: if the take was its
        own (the cursor's takers say so), the shard is this worker's current one, not yet tried."""
        shard, self.record.claiming = self.record.claiming, None
        if shard is None or self.record.current is not None:
            return

        def started(index: int) -> bool:
            try:
                return read_report(self.run, self.stage, self.config_hash, index, self.shards) is not None
            except (StorageError, ValueError):
                return True  # something is there: another worker's
        if took(self.run, self.stage, self.config_hash, self.shards, self.record.worker, shard, started):
            log.info("running the shard this worker's last Pod took as it ended", extra={"index": shard})
            self.record.current, self.record.attempt = shard, 0
        self._save()

    def done(self, assignment: Assignment, code: int) -> None:
        if code == EXIT_OK:
            self.record.add(assignment.index)
        elif code == EXIT_BAD_INPUT:
            self.record.add(assignment.index, failed=True)
        elif code > STOPPED and not self._stuck(assignment.index):
            self.record.attempt -= 1  # not a try: the next Pod runs the same try again
        self._save()  # any other failure: the Pod ends, and its next one tries the shard again

    def continues_after(self, code: int) -> bool:
        """Whether the worker goes on to its next shard after one that ended with `code`."""
        return code in (EXIT_OK, EXIT_BAD_INPUT)

    def close(self) -> None:
        """Nothing is held."""

    def _input_ready(self) -> Callable[[int], bool]:
        """Whether shard i's input is committed: below the operator's mark, or every upstream shard it
        reads succeeded (their final reports; the samples they list are committed)."""
        source = self.upstream
        assert source is not None
        marked = read_input(self.run, self.stage, self.config_hash, self.shards)

        def succeeded(up: int) -> bool:
            try:
                report = read_report(self.run, source.stage, source.config_hash, up, source.shards)
            except (StorageError, ValueError):
                return False
            return report is not None and not report.corrupt and report.state == "succeeded"

        def ready(index: int) -> bool:
            return index < marked or all(
                succeeded(up) for up in upstream_span(index, source.shards, source.shard_size, self.shard_size))
        return ready

    def _waiting(self, waits: bool) -> None:
        if self.marks_waiting:
            self.mark_waiting(waits)

    def mark_waiting(self, waits: bool) -> None:
        """Say once that it begins to wait for input, or that it no longer does (the record is written
        with the shard it takes; a shared worker says it for all its stages on its first one's record)."""
        if waits == (self.record.waiting_since is not None):
            return
        if self.waiting_file is not None:
            try:
                if waits:
                    self.waiting_file.touch()
                else:
                    self.waiting_file.unlink(missing_ok=True)
            except OSError as exc:  # the probe then says Ready: a busy worker may be stopped, and run again
                log.warning("cannot keep the waiting file", extra={"path": str(self.waiting_file), "why": str(exc)})
        self.record.waiting_since = time.time() if waits else None
        if waits:
            self._save()

    def _stuck(self, index: int) -> bool:
        """The stopped shard had made no progress for the progress deadline (its report's last sample)."""
        if self.progress_deadline is None:
            return False
        try:
            report = read_report(self.run, self.stage, self.config_hash, index, self.shards)
        except (StorageError, ValueError):
            return False
        last = report.last_activity if report is not None and not report.corrupt else 0.0
        return time.time() - max(self.started, last) >= self.progress_deadline

    def _give_up(self, index: int) -> None:
        """Every try of `index` ended its process: its final report says so (keeping the samples its last
        try committed), and the worker goes on."""
        tries = self.record.attempt - 1
        why = f"every try ended its worker's process ({tries} tries: retries {self.retries})"
        report = read_report(self.run, self.stage, self.config_hash, index, self.shards)
        if report is None or report.corrupt:
            report = ShardReport(self.stage, self.config_hash, index, self.shards)
        if report.state == "running":
            report.state, report.message = "failed", why
            write_report(self.run, report)
        log.error("shard failed for good", extra={"index": index, "why": why})
        self.record.add(index, failed=True)
        self._save()

    def _save(self) -> None:
        write_worker(self.run, self.stage, self.config_hash, self.record)


def shard_feed(ctx: StageContext) -> ShardFeed:
    """Where this process's shards come from: its parent (`GENFAB_WORKER_FD`, a warm worker of `genfab
    run`), the stage's cursor (`GENFAB_WORKERS`, a worker Pod), else the one shard its index names."""
    fd = ctx.env.get(ENV_WORKER_FD)
    if fd:
        if not fd.isdigit():
            raise BadInput(f"environment variable {ENV_WORKER_FD}={fd!r} is not a file descriptor number")
        return ParentFeed(int(fd), ctx.shards)
    if ctx.env.get(ENV_HOSTED):  # a shared worker: the caller runs its shards (genfab.stages.runtime.group)
        raise BadInput(f"{ENV_HOSTED} is set: this process is a shared worker (run it as one)")
    if ctx.env.get(ENV_WORKERS):
        return claim_feed(ctx)
    return OneShard(ctx.index)


def claim_feed(ctx: StageContext, marks_waiting: bool = True, cfg: StageConfig | None = None,
               shards: int | None = None) -> ClaimFeed:
    """A worker Pod's feed of the stage its context names, or (`cfg`, `shards`) of a stage its shared
    worker hosts, with the Pod's retries, progress deadline and waiting file."""
    retries = ctx.env.get(ENV_SHARD_RETRIES) or "0"
    if not retries.isdigit():
        raise BadInput(f"environment variable {ENV_SHARD_RETRIES}={retries!r} is not a count")
    deadline = ctx.env.get(ENV_PROGRESS_DEADLINE) or ""
    waiting = ctx.env.get(ENV_WAITING_FILE)
    cfg = cfg or ctx.cfg
    return ClaimFeed(ctx.run_storage, cfg.stage, cfg.config_hash, ctx.index, ctx.shards if shards is None else shards,
                     int(retries), float(deadline) if deadline.isdigit() else None, upstream=cfg.stream,
                     shard_size=cfg.shard_size, waiting_file=Path(waiting) if waiting else None,
                     marks_waiting=marks_waiting)

