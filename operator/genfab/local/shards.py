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
from dataclasses import dataclass, field
from pathlib import Path

from genfab.api.reasons import FILTERED
from genfab.contract import EXIT_BAD_INPUT, StageConfig
from genfab.contract.names import (
    ENV_CPU_WORKERS,
    ENV_PARENT_PID,
    ENV_PROGRESS_SECONDS,
    ENV_SAMPLE_MANIFEST,
    ENV_TERMINATION_LOG,
)
from genfab.inventory import ShardReport
from genfab.local.shard_failures import TAIL_BYTES, failure_reason, read_text
from genfab.planner import PlannedStage
from genfab.sequencing import gang_env, idle_seconds, no_progress_message, now_rfc3339, shard_env
from genfab.status import StageObservation, notes_message, produced_by
from genfab.status.aggregate import ExecState
from genfab.status.cost import gpu_seconds, shard_seconds

TRACKER_NOTICE = "ignore:resource_tracker:UserWarning"
"""A `PYTHONWARNINGS` filter for multiprocessing's resource-tracker notice after a killed shard."""
REPORT_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0
"""How long a stopped shard gets to end after SIGTERM before SIGKILL (like a Pod's grace period)."""


def free_port() -> int:
    """A TCP port nobody listens on now (a local process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Shard:
    index: int
    attempts: int = 0
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    done: bool = False
    failed: bool = False
    started_at: float = 0.0
    """When the current attempt started (epoch seconds)."""
    stopping: str = ""
    """Why the runner is stopping the current attempt (no progress, stage deadline)."""
    kill_at: float | None = None
    """Monotonic time to SIGKILL the attempt if SIGTERM did not end it."""


@dataclass
class StageRun:
    stage: PlannedStage
    state: ExecState = "waiting"
    config: StageConfig | None = None
    samples: int = 0
    shards: list[Shard] = field(default_factory=list)
    reports: dict[int, ShardReport] = field(default_factory=dict)
    final: set[int] = field(default_factory=set)
    """Shards whose final report is in `reports` (not read again)."""
    started: float | None = None
    start_time: str | None = None
    completion_time: str | None = None
    seconds: float | None = None
    message: str | None = None
    deadline_passed: bool = False
    """The stage ran past its activeDeadlineSeconds: its shards are stopped and fail."""
    group_attempts: int = 0
    """Starts of a gang stage's whole process group (its retries count per group, not per shard)."""
    group_failure: str = ""
    """Why the current group attempt is ending (a node failed): the other nodes are being stopped."""
    port: int = 0
    """A gang stage's rendezvous port for the current attempt."""
    start_failure: StageObservation | None = None
    """Why it ended before any shard ran (`status.failed_at_start`, as the operator records it)."""
    gpus: int = 0
    """GPUs each of its shards has here: the stage's request where this machine has CUDA, else none (a
    stage that asks for a GPU and runs on a laptop's CPUs costs no GPU time)."""

    @property
    def succeeded(self) -> int:
        return sum(len(r.succeeded) for r in self.reports.values())

    def samples_per_second(self, now: float) -> float | None:
        """Samples made (not reused) per second of the stage: so far (`now`, monotonic), or in all once
        it finished. The progress bar and the summary say the same number."""
        seconds = self.seconds if self.seconds is not None else (now - self.started if self.started else None)
        produced = self.succeeded - self.reused
        return round(produced / seconds, 3) if seconds and produced > 0 else None

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.reports.values())

    @property
    def reused(self) -> int:
        return sum(r.reused for r in self.reports.values())

    @property
    def redone(self) -> int:
        return sum(r.redone for r in self.reports.values())

    def observation(self) -> StageObservation:
        if self.start_failure is not None:
            return self.start_failure
        return StageObservation(
            name=self.stage.name, config_hash=self.stage.config_hash, output_uri=self.stage.output_uri,
            state=self.state,
            samples_total=self.samples, samples_succeeded=self.succeeded, samples_failed=self.failed,
            samples_filtered=sum(f.reason in FILTERED for r in self.reports.values() for f in r.failed),
            shards_total=len(self.shards), shards_succeeded=sum(s.done and not s.failed for s in self.shards),
            shards_failed=sum(s.failed for s in self.shards),
            shards_active=sum(s.process is not None for s in self.shards),
            shards_ready=sum(s.process is not None for s in self.shards),
            start_time=self.start_time, completion_time=self.completion_time,
            message=self.status_message, produced_by=produced_by(r.produced_by for r in self.reports.values()),
            gpu_seconds=gpu_seconds(shard_seconds(self.reports.values()), self.gpus) if self.reports else None,
        )

    @property
    def status_message(self) -> str | None:
        """Why it failed, else its samples' first note (a scene that dropped frames, ...)."""
        return self.message or notes_message([n for r in sorted(self.reports.values(), key=lambda r: r.index)
                                              for n in r.notes])


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
                if self.running() >= self.workers or active >= cap:
                    return
                if shard.process is None and not shard.done:
                    self._spawn(run, shard)
                    active += 1


    def _spawn(self, run: StageRun, shard: Shard) -> None:
        stage = run.stage
        assert run.config is not None
        logs = self.log_dir / stage.name
        logs.mkdir(parents=True, exist_ok=True)
        env = {**self.environ, **shard_env(
            run.config, stage, len(run.shards), shard.index, self.models_env(),
            str(self.config_path(stage.name)),
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
        self.termination_path(run, shard).unlink(missing_ok=True)  # says why this attempt ended, or nothing
        shard.attempts += 1
        shard.started_at, shard.stopping, shard.kill_at = time.time(), "", None
        with (logs / f"shard-{shard.index:05d}.log").open("ab") as log:
            log.write(f"--- attempt {shard.attempts} at {now_rfc3339()}\n".encode())
            log.flush()
            shard.process = subprocess.Popen(self.command(stage), env=env, stdout=log, stderr=subprocess.STDOUT)


    def reap(self) -> bool:
        changed = False
        for run in self.stages.values():
            if run.stage.gang:
                changed = self._reap_group(run) or changed
                continue
            for shard in run.shards:
                if shard.process is None or shard.process.poll() is None:
                    continue
                code = shard.process.returncode
                shard.process, shard.exit_code, changed = None, code, True
                if code == 0 and not shard.stopping:
                    shard.done = True
                elif code == EXIT_BAD_INPUT or shard.attempts > self.retries or run.deadline_passed:
                    shard.done = shard.failed = True
                    why = ("not retried" if code == EXIT_BAD_INPUT else shard.stopping if run.deadline_passed
                           else f"{shard.stopping or f'exit code {code}'}; {shard.attempts} attempts")
                    run.message = self.failure(run, shard, f"shard {shard.index} failed", why)
        return changed


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
        for run in self.stages.values():
            for shard in run.shards:
                if shard.process is None:
                    continue
                if terminate:
                    shard.process.terminate()
                try:
                    shard.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    shard.process.send_signal(signal.SIGKILL)
                    shard.process.wait()
                shard.process = None
            if run.state == "running":
                run.message = why


    def running(self) -> int:
        return sum(s.process is not None for r in self.stages.values() for s in r.shards)
