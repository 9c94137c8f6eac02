"""The shard processes of a `genfab run`: started up to the run's workers and each stage's parallelism
(a process group's nodes all at once), their exits read (retried per `retries`, a group as a whole),
stopped past their deadlines or when the run stops, and why a shard failed read from its termination
message or log. The local runner's Job controller and kubelet in one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from genfab.contract import EXIT_BAD_INPUT
from genfab.contract.names import (
    ENV_COMPILE_CACHE,
    ENV_CPU_WORKERS,
    ENV_PARENT_PID,
    ENV_PROGRESS_SECONDS,
    ENV_SAMPLE_MANIFEST,
    ENV_TERMINATION_LOG,
)
from genfab.contract.streams import upstream_span
from genfab.local.shard_failures import TAIL_BYTES, failure_reason, read_text
from genfab.local.stage_runs import Shard, StageRun
from genfab.local.workers import Worker
from genfab.planner import PlannedStage
from genfab.sequencing import gang_env, idle_seconds, no_progress_message, now_rfc3339, shard_env

TRACKER_NOTICE = "ignore:resource_tracker:UserWarning"
"""A `PYTHONWARNINGS` filter for multiprocessing's resource-tracker notice after a killed shard."""
REPORT_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0
"""How long a stopped shard gets to end after SIGTERM before SIGKILL (like a Pod's grace period)."""


SHARED_WORKER = "--shared-worker"
"""The runtime's argument for a shared worker (genfab.stages.runtime.shared)."""


def _work_left(run: StageRun) -> bool:
    """The stage has shards to start now or later (it waits for its upstream, or runs)."""
    return run.state in ("waiting", "pending") or (run.state == "running" and any(s.process is None and not s.done
                                                                      for s in run.shards))


def free_port() -> int:
    """A TCP port nobody listens on now (a local process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ShardProcesses:
    def __init__(self, stages: Mapping[str, StageRun], *, workers: int, parallelism: int | None, retries: int,
                 log_dir: Path, environ: Mapping[str, str], command: Callable[[PlannedStage], list[str]],
                 models_env: Callable[[], dict[str, str]], config_path: Callable[[str], Path]) -> None:
        self.stages = stages
        self.workers = workers
        self.parallelism = parallelism
        """`spec.parallelism`: shards of one stage at once (None: as many as the workers allow)."""
        self.retries = retries
        self.log_dir = log_dir
        self.environ = environ
        self.command = command
        self.models_env = models_env
        self.config_path = config_path
        """A stage's config file (its `StageConfig` as JSON) for its shards."""
        self.warm: list[Worker] = []
        """The built-in stages' warm workers (genfab.local.workers), busy or idle."""

    def launch(self) -> None:
        for run in self.stages.values():
            if run.state != "running":
                continue
            if run.stage.gang:  # every node at once, or none: a partial group would wait forever
                if not any(s.process is not None or s.done for s in run.shards):
                    run.group_attempts += 1
                    run.port = free_port()
                    for shard in run.shards:
                        self._spawn(run, shard)
                continue
            cap = self.parallelism or len(run.shards)
            active = sum(s.process is not None for s in run.shards)
            for shard in run.shards:
                if active >= cap:
                    break
                if shard.process is not None or shard.done or not self.input_ready(run, shard):
                    continue
                idle = next((w for w in self.warm if w.serves(run) and w.shard is None and not w.closing), None)
                if idle is not None:
                    self._give(idle, run, shard)
                elif run.stage.shares_worker and self._group_workers(run) >= (self.parallelism or 1):
                    break  # its shared worker takes it once it is free: one process holds the group's models
                elif self.running() < self.workers:
                    self._spawn(run, shard)
                else:
                    self._free_slot(run)
                    break
                active += 1
        self._close_idle()

    def input_ready(self, run: StageRun, shard: Shard) -> bool:
        """A streaming stage's shard starts once the upstream shards it maps onto ended (genfab.contract.streams)."""
        for name in run.stage.streams_from:
            source = self.stages[name]
            up = source.shards
            span = upstream_span(shard.index, len(up), source.stage.shard_size, run.stage.shard_size)
            if not all(up[i].done for i in span):
                return False
        return True

    def _group_workers(self, run: StageRun) -> int:
        """Shared workers alive for `run`'s group."""
        return sum(w.serves(run) and not w.closing for w in self.warm)

    def _close_idle(self) -> None:
        """Idle workers whose stage has no shard left to start end (their slot goes to another stage). One
        whose stage waits for its upstream's next shard stays, warm, unless a slot is wanted (`_free_slot`);
        a shared worker stays while any of its stages has shards to come."""
        for worker in self.warm:
            if worker.shard is not None or worker.closing:
                continue
            runs = [self.stages[name] for name in worker.group if name in self.stages] or [worker.run]
            if not any(_work_left(run) for run in runs):
                worker.close()

    def _free_slot(self, wanting: StageRun) -> None:
        """`wanting` has a shard to start and no slot: an idle worker of another stage that waits for its
        input ends (it would otherwise hold the slot its own upstream needs)."""
        for worker in self.warm:
            if not worker.serves(wanting) and worker.shard is None and not worker.closing:
                worker.close()
                return


    def _spawn(self, run: StageRun, shard: Shard) -> None:
        """Start a process for `shard`: a warm worker given it first (a built-in stage), or the shard's own."""
        env = self._env(run, shard)
        self.log_path(run, shard).parent.mkdir(parents=True, exist_ok=True)
        if run.stage.warm:
            command, group = self.command(run.stage), run.stage.shares_worker
            if group:  # `python -m genfab.stages --shared-worker`: the stage comes with each shard
                command = [*command[:-1], SHARED_WORKER]
            worker = Worker.start(run, command, env, self.log_path(run, shard), group)
            self.warm.append(worker)
            self._give(worker, run, shard)
            return
        self._attempt(run, shard)
        with self.log_path(run, shard).open("ab") as log:
            shard.process = subprocess.Popen(self.command(run.stage), env=env, stdout=log, stderr=subprocess.STDOUT)

    def _give(self, worker: Worker, run: StageRun, shard: Shard) -> None:
        self._attempt(run, shard)
        shard.process = worker.process
        own = {k: v for k, v in self._env(run, shard).items() if self.environ.get(k) != v} if worker.group else {}
        worker.give(run, shard, self.log_path(run, shard), self.termination_path(run, shard), own)

    def _attempt(self, run: StageRun, shard: Shard) -> None:
        """A new attempt of `shard` starts now: counted, marked in its log, its last termination message gone."""
        self.log_path(run, shard).parent.mkdir(parents=True, exist_ok=True)  # a shared worker's next stage's
        self.termination_path(run, shard).unlink(missing_ok=True)  # says why this attempt ended, or nothing
        shard.attempts += 1
        shard.started_at, shard.stopping, shard.kill_at = time.time(), "", None
        with self.log_path(run, shard).open("ab") as log:
            log.write(f"--- attempt {shard.attempts} at {now_rfc3339()}\n".encode())

    def _env(self, run: StageRun, shard: Shard) -> dict[str, str]:
        stage = run.stage
        assert run.config is not None
        env = {**self.environ, **shard_env(
            run.config, stage, len(run.shards), shard.index, self.models_env(),
            str(self.config_path(stage.name)),
            # no compile artifacts through the output: torch's own caches on this machine keep a compile
            # across the run's processes, and an output others can write must not run code here
            **{ENV_COMPILE_CACHE: "off"},
            **{ENV_PROGRESS_SECONDS: str(REPORT_SECONDS), ENV_PARENT_PID: str(os.getpid()), ENV_SAMPLE_MANIFEST: "1",
               ENV_TERMINATION_LOG: str(self.termination_path(run, shard))},
            **gang_env(stage, len(run.shards), "127.0.0.1", run.port,
                       f"{stage.output_uri}#{stage.short_hash}@{run.port}"))}
        # A shard killed with `genfab run` (SIGKILL: no cleanup) leaves its pool's semaphores to
        # multiprocessing's tracker, which unlinks them and warns into the shard log; the cleanup is the
        # tracker's job, done, so its notice is not a problem worth a line in every log.
        env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), TRACKER_NOTICE) if w)
        # Shards run side by side: split the CPUs between their worker pools.
        env.setdefault(ENV_CPU_WORKERS, str(max(1, (os.cpu_count() or 1) // min(self.workers, len(run.shards)))))
        return env


    def reap(self) -> bool:
        changed = self._reap_workers()
        for run in self.stages.values():
            if run.stage.gang:
                changed = self._reap_group(run) or changed
                continue
            if run.stage.warm:
                continue
            for shard in run.shards:
                if shard.process is None or shard.process.poll() is None:
                    continue
                self._ended(run, shard, shard.process.returncode)
                changed = True
        return changed

    def _reap_workers(self) -> bool:
        """Shards the warm workers said ended, and workers that exited (with the shard they held)."""
        changed = False
        for worker in list(self.warm):
            exited = worker.process.poll() is not None  # before reading: its last lines are in the pipe then
            for index, code in worker.finished():
                shard = worker.shard
                if shard is not None and shard.index == index:
                    worker.shard = None
                    self._ended(worker.run, shard, code)
                    changed = True
            if exited:
                if worker.shard is not None:  # died mid-shard (killed, out of memory): the attempt ends so
                    self._ended(worker.run, worker.shard, worker.process.returncode)
                    worker.shard = None
                worker.release()
                self.warm.remove(worker)
                changed = True
        return changed

    def _ended(self, run: StageRun, shard: Shard, code: int) -> None:
        """The current attempt of `shard` ended with exit code `code`: done, retried later, or failed."""
        shard.process, shard.exit_code = None, code
        if code == 0 and not shard.stopping:
            shard.done = True
        elif code == EXIT_BAD_INPUT or shard.attempts > self.retries or run.deadline_passed:
            shard.done = shard.failed = True
            why = ("not retried" if code == EXIT_BAD_INPUT else shard.stopping if run.deadline_passed
                   else f"{shard.stopping or f'exit code {code}'}; {shard.attempts} attempts")
            run.message = self.failure(run, shard, f"shard {shard.index} failed", why)


    def _reap_group(self, run: StageRun) -> bool:
        """A gang stage: a node that fails ends the group's attempt (the other nodes are stopped);
        then the whole group starts again, from its latest checkpoint, while group retries last."""
        changed = False
        for shard in run.shards:
            if shard.process is None or shard.process.poll() is None:
                continue
            code = shard.process.returncode
            shard.process, shard.exit_code, changed = None, code, True
            shard.done = True
            if (code != 0 or shard.stopping) and not run.group_failure:
                run.group_failure = ("bad input" if code == EXIT_BAD_INPUT
                                     else shard.stopping or f"node {shard.index} exit code {code}")
                shard.failed = True
                for other in run.shards:
                    self.stop(other, f"node {shard.index} of the group failed")
        if run.group_failure and not any(s.process is not None for s in run.shards):
            bad_input = any(s.exit_code == EXIT_BAD_INPUT for s in run.shards)
            if bad_input or run.group_attempts > self.retries or run.deadline_passed:
                for shard in run.shards:
                    shard.failed = True
                first = next((s for s in run.shards if s.failed), run.shards[0])
                run.message = self.failure(run, first, "process group failed",
                                            f"{run.group_failure}; {run.group_attempts} group attempts")
            else:
                for shard in run.shards:
                    shard.done = shard.failed = False
            run.group_failure = ""
        return changed


    def enforce_deadlines(self) -> None:
        """Stop attempts that made no progress within the stage's progressDeadlineSeconds (retried
        per `retries`) and every attempt of a stage past its activeDeadlineSeconds (failed)."""
        now = time.time()
        for run in self.stages.values():
            stage = run.stage
            limit = stage.active_deadline_seconds
            if run.state == "running" and limit and not run.deadline_passed and run.started is not None \
                    and time.monotonic() - run.started > limit:
                run.deadline_passed = True
                why = f"DeadlineExceeded: stage ran longer than activeDeadlineSeconds {limit}"
                for shard in run.shards:
                    if shard.done:
                        continue
                    if shard.process is None:  # never started, or between attempts: it fails now
                        shard.done = shard.failed = True
                        run.message = f"shard {shard.index} failed ({why})"
                    else:  # stopped here, failed when reaped (deadline_passed)
                        self.stop(shard, why)
            for shard in run.shards:
                if shard.process is None:
                    continue
                if shard.kill_at is not None and time.monotonic() >= shard.kill_at:
                    shard.process.kill()
                    continue
                report = run.reports.get(shard.index)
                idle = idle_seconds(shard.started_at, report.last_activity if report else None, now)
                if not shard.stopping and idle > stage.progress_deadline_seconds:
                    self.stop(shard, "NoProgress: " + no_progress_message(
                        stage.name, shard.index, idle, stage.progress_deadline_seconds, "process stopped"))


    @staticmethod
    def stop(shard: Shard, why: str) -> None:
        if shard.process is None or shard.stopping:
            return
        shard.stopping, shard.kill_at = why, time.monotonic() + STOP_GRACE_SECONDS
        shard.process.terminate()  # the runtime writes its final report on SIGTERM; SIGKILL follows


    def log_path(self, run: StageRun, shard: Shard) -> Path:
        return self.log_dir / run.stage.name / f"shard-{shard.index:05d}.log"


    def termination_path(self, run: StageRun, shard: Shard) -> Path:
        return self.log_path(run, shard).with_name(f"shard-{shard.index:05d}.termination.json")


    def failure(self, run: StageRun, shard: Shard, what: str, why: str) -> str:
        """`what: the stage's own reason (why); log: PATH`, the reason read from the shard's
        termination message or log (one line: what failed, where, the fix)."""
        log = self.log_path(run, shard)
        reason = failure_reason(read_text(self.termination_path(run, shard)), read_text(log, tail=TAIL_BYTES))
        return f"{what}: {reason} ({why}); log: {log}" if reason else f"{what} ({why}); log: {log}"


    def stop_all(self, why: str, terminate: bool = False) -> None:
        """Stop every shard (`terminate`: SIGTERM; a shard that already got the terminal's SIGINT
        ignores it) and give them time to write their final reports."""
        deadline = time.monotonic() + 15
        for worker in self.warm:  # idle ones too
            worker.close()
        processes = {id(p): p for p in [*(w.process for w in self.warm),
                                        *(s.process for r in self.stages.values() for s in r.shards)] if p is not None}
        for process in processes.values():
            if terminate:
                process.terminate()
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
        for run in self.stages.values():
            for shard in run.shards:
                shard.process = None
            if run.state == "running":
                run.message = why
        for worker in self.warm:
            worker.release()
        self.warm.clear()

    def end_workers(self) -> None:
        """The run is over: idle workers are told so and waited for (a stage's `close` stops its pools)."""
        for worker in self.warm:
            worker.close()
        self.stop_all("", terminate=False)


    def running(self) -> int:
        """Processes alive: shards' own and warm workers (an idle one holds its slot until it ends)."""
        return len(self.warm) + sum(s.process is not None and not r.stage.warm
                                    for r in self.stages.values() for s in r.shards)
