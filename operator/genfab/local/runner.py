"""Run a plan on this machine: every shard is a subprocess with exactly a stage Pod's contract.

Sequencing, retries and status follow the operator's rules: a stage starts when its upstream
stages succeeded (or partially succeeded, with `continueOnError`), independent stages run side by
side, a shard that crashes is retried `retries` times, a bad-input exit fails it at once. Samples
already committed with the same config hash are never redone, so a run that was interrupted or
crashed continues where it stopped when started again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from genfab.api.reasons import FILTERED
from genfab.api.resources import Resource
from genfab.api.status import ResourceStatus
from genfab.api.status_document import DocumentMeta, StatusDocument
from genfab.api.summary import RunSummary
from genfab.contract import EXIT_BAD_INPUT, STATUS_KEY, StageConfig, shard_count
from genfab.contract.names import (
    ENV_CPU_WORKERS,
    ENV_MODELS,
    ENV_PARENT_PID,
    ENV_PROGRESS_SECONDS,
    ENV_SAMPLE_MANIFEST,
    ENV_TERMINATION_LOG,
    ENV_VERIFY,
)
from genfab.contract.paths import join_uri
from genfab.inventory import InventoryError, ShardReport, clear_reports, read_report, resolve_samples
from genfab.inventory.manifest import InvalidManifest, write_manifest
from genfab.inventory.training import read_training
from genfab.local.devices import cuda_visible
from genfab.local.interrupts import interruption, signals_held
from genfab.local.lease import Lease, LeaseLost, OutputInUse
from genfab.local.output import finished_local_run
from genfab.local.refs import Lookup, resolve_refs
from genfab.local.shard_failures import TAIL_BYTES, failure_reason, read_text
from genfab.planner import Plan, PlannedStage, stage_config
from genfab.sequencing import (
    BLOCKED_MESSAGE,
    CannotRun,
    cuda_message,
    cuda_refusal,
    gang_env,
    gate,
    idle_seconds,
    models_env,
    no_progress_message,
    now_rfc3339,
    phase_of,
    shard_env,
    stage_command,
    status_outputs,
    unimplemented,
    unsupported_settings,
)
from genfab.sequencing.gate_reader import GateReader
from genfab.sequencing.manual import EXIT_AWAITING, Awaiting, gate_status, held_back
from genfab.sequencing.preflight import model_refusal
from genfab.sequencing.run_records import write_run_records
from genfab.sequencing.summary import stage_row
from genfab.status import StageObservation, build_status, failed_at_start, notes_message, produced_by, tally
from genfab.status.aggregate import ExecState
from genfab.status.training import training_status, with_training
from genfab.storage import S3Settings, Storage, StorageError, open_storage

TRACKER_NOTICE = "ignore:resource_tracker:UserWarning"
"""A `PYTHONWARNINGS` filter for multiprocessing's resource-tracker notice after a killed shard."""
POLL_SECONDS = 0.2
REPORT_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0
"""How long a stopped shard gets to end after SIGTERM before SIGKILL (like a Pod's grace period)."""


def free_port() -> int:
    """A TCP port nobody listens on now (a local process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunnerError(RuntimeError):
    """The run cannot start (no implementation for a stage, unusable output)."""


EXIT_CANNOT_RUN = 2
"""`genfab run`'s code for a run this machine cannot do (said before it starts, or at a stage past a
manual gate)."""


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
        )

    @property
    def status_message(self) -> str | None:
        """Why it failed, else its samples' first note (a scene that dropped frames, ...)."""
        return self.message or notes_message([n for r in sorted(self.reports.values(), key=lambda r: r.index)
                                              for n in r.notes])


@dataclass
class RunResult:
    status: ResourceStatus
    summary: RunSummary
    output_uri: str
    awaiting: list[Awaiting] = field(default_factory=list)
    """Gates the run stopped at: a person chooses, then runs it again."""
    refused: bool = False
    """A stage that this machine cannot run was reached past a manual gate (a CUDA stage without a
    GPU): refused as if before the start (exit 2), not failed."""

    @property
    def exit_code(self) -> int:
        if self.awaiting:
            return EXIT_AWAITING
        if self.refused:
            return EXIT_CANNOT_RUN
        return {"Succeeded": 0, "PartiallySucceeded": 0}.get(self.status.phase, 1)


Listener = Callable[[str, "StageRun"], None]
"""Called with an event (`start`, `progress`, `end`) and the stage; the CLI draws progress bars."""


class LocalRunner:
    def __init__(self, resource: Resource, plan: Plan, *, workers: int, log_dir: Path,
                 listener: Listener | None = None, python: str = sys.executable,
                 environ: Mapping[str, str] | None = None, refs: Mapping[str, str] | None = None,
                 lookup: Lookup = finished_local_run, verify: bool = False, resource_file: str = "FILE") -> None:
        self.resource = resource
        self.resource_file = resource_file
        """The resource's file as the user named it (the gate's advice names it)."""
        self.plan = plan
        self.workers = max(1, workers)
        self.log_dir = log_dir
        self.listener = listener or (lambda event, stage: None)
        self.python = python
        self.retries: int = resource.spec.retries
        self.continue_on_error: bool = resource.spec.continue_on_error
        self.environ = dict(os.environ if environ is None else environ)
        """The environment of the run's storage clients and shard processes (`spec.storage` applied)."""
        if verify:
            self.environ[ENV_VERIFY] = "sha256"
        self.s3 = S3Settings.from_env(self.environ)
        self.run_storage: Storage = self.open(plan.output_uri)
        self.check_runnable()
        try:
            self.plan = resolve_refs(plan, refs or {}, lookup)
        except CannotRun as exc:
            raise RunnerError(str(exc)) from None
        self.stages = {s.name: StageRun(s, state="waiting" if s.run else "skipped") for s in self.plan.stages}
        self._status: ResourceStatus | None = None
        self.lease = Lease(self.run_storage, f"{plan.kind}/{plan.name}")
        self.notes: list[str] = []
        """One-line remarks for the person running it (a stale lease taken over)."""
        self._config_dir = Path()
        """Stage configs of this run (a temporary folder, removed when the run ends in any way)."""
        self.awaiting: dict[str, Awaiting] = {}
        """Finished gated stages whose samples wait for a person's choice."""
        self.refused = False
        """A stage this machine cannot run was reached past a manual gate (RunResult.refused)."""
        self._gates_read: set[str] = set()

    def open(self, uri: str) -> Storage:
        return open_storage(uri, self.s3)

    # -- preflight
    def command(self, stage: PlannedStage) -> list[str]:
        command, args = stage_command(stage, self.python)
        if command is None:
            raise RunnerError(f"custom stage {stage.name!r} has no `command`; locally there is no image "
                              f"entrypoint to fall back to, so set customStages[].command")
        return [*command, *args]

    def check_runnable(self) -> None:
        missing = unimplemented(self.plan.stages)
        reasons = unsupported_settings(self.plan.stages)
        if reasons:
            raise RunnerError("; ".join(reasons))
        self.cuda = cuda_visible(self.environ)
        no_gpu = cuda_refusal(self.plan, self.cuda)
        if no_gpu:
            raise RunnerError(no_gpu)
        if missing:
            raise RunnerError(
                f"no implementation in genfab yet for stage(s) {', '.join(missing)} of pipeline "
                f"{self.plan.pipeline}; replace them with customStages of the same name or leave them out "
                f"with onlyStages")
        for s in self.plan.stages:
            if s.run:
                self.command(s)
        no_models = model_refusal(self.plan, self._models_env().get(ENV_MODELS))
        if no_models:
            raise RunnerError(no_models[1])

    def _models_env(self) -> dict[str, str]:
        try:
            return models_env(self.resource.spec.models, mounted=False)
        except CannotRun as exc:
            raise RunnerError(str(exc)) from None

    # -- the loop
    def more_notes(self, shown: int = 5) -> list[str]:
        """Each stage's notes past the first (which its end line shows), up to `shown` more: a resized
        input or a fallback is said on the console even where another note came first."""
        lines = []
        for run in self.stages.values():
            notes = [n for r in sorted(run.reports.values(), key=lambda r: r.index) for n in r.notes][1:]
            lines += [f"stage {run.stage.name}: {n}" for n in notes[:shown]]
            if len(notes) > shown:
                lines.append(f"stage {run.stage.name}: {len(notes) - shown} more note(s) in the shard reports")
        return lines

    def claim(self) -> None:
        """Take the output's lease (RunnerError naming its holder); `run` does it when not done yet."""
        if self.lease.version is not None:
            return
        try:
            self.lease.acquire()
        except OutputInUse as exc:
            raise RunnerError(str(exc)) from None
        if self.lease.took_over is not None:
            old = self.lease.took_over
            self.notes.append(f"took over the lease of {old.resource} run by {old.holder} (pid {old.pid}): it "
                              "stopped without releasing it")

    def run(self) -> RunResult:
        self.claim()
        try:
            with tempfile.TemporaryDirectory(prefix="genfab-run-") as config_dir:
                self._config_dir = Path(config_dir)
                return self._run()
        finally:
            self.lease.release()

    def _run(self) -> RunResult:
        self._write_status()
        last_report = 0.0
        try:
            while not all(r.state in ("finished", "skipped", "blocked") or self._held(r) for r in self.stages.values()):
                self._keep_lease()
                self._start_ready_stages()
                self._launch_shards()
                self._enforce_deadlines()
                changed = self._reap_shards()
                if changed or time.monotonic() - last_report >= REPORT_SECONDS:
                    last_report = time.monotonic()
                    self._refresh_reports()
                    self._finish_stages()
                    self._write_status()
                time.sleep(POLL_SECONDS)
        except (KeyboardInterrupt, BrokenPipeError) as exc:  # a signal, or stdout closed (`| head`)
            stop = interruption(exc)
            why = f"interrupted by {stop.why}; run the same command again to continue"
            with signals_held():
                self._stop_all(why, terminate=True)
                self._refresh_reports()
                self._write_status(interrupted=why)
            raise stop from None
        self._refresh_reports()
        self._read_gates()  # a gated stage that finished last (`onlyStages` ending at it) still waits
        status = self._write_status()
        summary = self._write_summary(status)
        return RunResult(status, summary, self.plan.output_uri, list(self.awaiting.values()), self.refused)

    def _keep_lease(self) -> None:
        try:
            self.lease.renew_if_due()
        except LeaseLost as exc:
            self._stop_all("stopped: lost the output's lease", terminate=True)
            self._refresh_reports()
            self._write_status(interrupted="stopped: lost the output's lease")
            raise RunnerError(str(exc)) from None

    def _held(self, run: StageRun) -> bool:
        """Waiting only for a person's choice upstream (the run stops there: exit 3)."""
        return run.state == "waiting" and held_back(run.stage, self.awaiting, self.plan) is not None

    def _read_gates(self) -> None:
        """Each gated stage once it finished: which committed samples still lack the chosen files (the
        operator's reader, read whole: nothing here bounds a call)."""
        for run in self.stages.values():
            if run.stage.manual_gate is None or run.state != "finished" or run.stage.name in self._gates_read:
                continue
            self._gates_read.add(run.stage.name)
            stage = run.stage
            reader = GateReader(seconds=0.0, reports=max(1, len(run.shards)))
            while True:
                reading = reader.read((None, stage.name, stage.config_hash), stage, len(run.shards),
                                      lambda: self.run_storage, partial(self.open, stage.output_uri),
                                      run_uri=self.plan.output_uri, file=self.resource_file)
                if not reading.more:
                    break
            if reading.held is not None:
                self.awaiting[stage.name] = reading.held
                run.message = reading.held.message

    def _start_ready_stages(self) -> None:
        self._read_gates()
        phases = {name: phase_of(r.observation(), self.continue_on_error) for name, r in self.stages.items()}
        for run in self.stages.values():
            if run.state != "waiting":
                continue
            verdict = gate(run.stage, phases, self.continue_on_error)
            if verdict == "waiting":
                continue
            if verdict == "ready" and held_back(run.stage, self.awaiting, self.plan) is not None:
                continue
            if verdict == "blocked":
                run.state, run.message = "blocked", BLOCKED_MESSAGE
                phases[run.stage.name] = "Blocked"
                self.listener("end", run)
                continue
            self._start_stage(run)

    def _start_stage(self, run: StageRun) -> None:
        run.config = stage_config(self.plan, run.stage)
        run.start_time, run.started = now_rfc3339(), time.monotonic()
        if run.stage.cuda and not self.cuda:  # past a manual gate: refused now, no process, no retry
            self.refused = True
            self._fail_at_start(run, cuda_message(self.plan.pipeline, [run.stage.name], []))
            return
        try:
            samples = resolve_samples(run.config, self.open)
            # Listed once, here: each shard reads its slice of the list instead of listing the samples again.
            write_manifest(self.run_storage, run.stage.name, run.stage.config_hash,
                           [(s.id, s.source) for s in samples])
        except (InventoryError, InvalidManifest, StorageError) as exc:
            self._fail_at_start(run, f"cannot list samples: {exc}", reason="BadInput")
            return
        run.samples = len(samples)
        count = shard_count(len(samples), run.stage.shard_size, run.stage.fixed_shards)
        clear_reports(self.run_storage, run.stage.name, run.stage.config_hash)
        run.reports, run.final = {}, set()
        (self._config_dir / f"{run.stage.name}.json").write_text(run.config.to_json())
        run.shards = [Shard(i) for i in range(count)]
        run.state = "running"
        self.listener("start", run)

    def _running(self) -> int:
        return sum(s.process is not None for r in self.stages.values() for s in r.shards)

    def _fail_at_start(self, run: StageRun, message: str, reason: str | None = None) -> None:
        run.state, run.message, run.completion_time = "finished", message, now_rfc3339()
        run.shards = [Shard(0, done=True, failed=True)]
        run.start_failure = failed_at_start(run.stage.name, run.stage.config_hash, run.stage.output_uri, message,
                                            run.completion_time, reason)
        self.listener("end", run)

    def _launch_shards(self) -> None:
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
            cap = self.resource.spec.parallelism or len(run.shards)
            active = sum(s.process is not None for s in run.shards)
            for shard in run.shards:
                if self._running() >= self.workers or active >= cap:
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
            run.config, stage, len(run.shards), shard.index, self._models_env(),
            str(self._config_dir / f"{stage.name}.json"),
            **{ENV_PROGRESS_SECONDS: str(REPORT_SECONDS), ENV_PARENT_PID: str(os.getpid()), ENV_SAMPLE_MANIFEST: "1",
               ENV_TERMINATION_LOG: str(self._termination_path(run, shard))},
            **gang_env(stage, len(run.shards), "127.0.0.1", run.port,
                       f"{stage.output_uri}#{stage.short_hash}@{run.port}"))}
        # A shard killed with `genfab run` (SIGKILL: no cleanup) leaves its pool's semaphores to
        # multiprocessing's tracker, which unlinks them and warns into the shard log; the cleanup is the
        # tracker's job, done, so its notice is not a problem worth a line in every log.
        env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), TRACKER_NOTICE) if w)
        # Shards run side by side: split the CPUs between their worker pools.
        env.setdefault(ENV_CPU_WORKERS, str(max(1, (os.cpu_count() or 1) // min(self.workers, len(run.shards)))))
        self._termination_path(run, shard).unlink(missing_ok=True)  # says why this attempt ended, or nothing
        shard.attempts += 1
        shard.started_at, shard.stopping, shard.kill_at = time.time(), "", None
        with (logs / f"shard-{shard.index:05d}.log").open("ab") as log:
            log.write(f"--- attempt {shard.attempts} at {now_rfc3339()}\n".encode())
            log.flush()
            shard.process = subprocess.Popen(self.command(stage), env=env, stdout=log, stderr=subprocess.STDOUT)

    def _reap_shards(self) -> bool:
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
                    run.message = self._failure(run, shard, f"shard {shard.index} failed", why)
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
                    self._stop(other, f"node {shard.index} of the group failed")
        if run.group_failure and not any(s.process is not None for s in run.shards):
            bad_input = any(s.exit_code == EXIT_BAD_INPUT for s in run.shards)
            if bad_input or run.group_attempts > self.retries or run.deadline_passed:
                for shard in run.shards:
                    shard.failed = True
                first = next((s for s in run.shards if s.failed), run.shards[0])
                run.message = self._failure(run, first, "process group failed",
                                            f"{run.group_failure}; {run.group_attempts} group attempts")
            else:
                for shard in run.shards:
                    shard.done = shard.failed = False
            run.group_failure = ""
        return changed

    def _enforce_deadlines(self) -> None:
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
                        self._stop(shard, why)
            for shard in run.shards:
                if shard.process is None:
                    continue
                if shard.kill_at is not None and time.monotonic() >= shard.kill_at:
                    shard.process.kill()
                    continue
                report = run.reports.get(shard.index)
                idle = idle_seconds(shard.started_at, report.last_activity if report else None, now)
                if not shard.stopping and idle > stage.progress_deadline_seconds:
                    self._stop(shard, "NoProgress: " + no_progress_message(
                        stage.name, shard.index, idle, stage.progress_deadline_seconds, "process stopped"))

    @staticmethod
    def _stop(shard: Shard, why: str) -> None:
        if shard.process is None or shard.stopping:
            return
        shard.stopping, shard.kill_at = why, time.monotonic() + STOP_GRACE_SECONDS
        shard.process.terminate()  # the runtime writes its final report on SIGTERM; SIGKILL follows

    def _log_path(self, run: StageRun, shard: Shard) -> Path:
        return self.log_dir / run.stage.name / f"shard-{shard.index:05d}.log"

    def _termination_path(self, run: StageRun, shard: Shard) -> Path:
        return self._log_path(run, shard).with_name(f"shard-{shard.index:05d}.termination.json")

    def _failure(self, run: StageRun, shard: Shard, what: str, why: str) -> str:
        """`what: the stage's own reason (why); log: PATH`, the reason read from the shard's
        termination message or log (one line: what failed, where, the fix)."""
        log = self._log_path(run, shard)
        reason = failure_reason(read_text(self._termination_path(run, shard)), read_text(log, tail=TAIL_BYTES))
        return f"{what}: {reason} ({why}); log: {log}" if reason else f"{what} ({why}); log: {log}"

    def _refresh_reports(self) -> None:
        """Read the reports of the shards running now, and once more each shard's final one when it ended:
        a tick reads as many reports as shards run at once, however many shards the stage has."""
        for run in self.stages.values():
            if run.state not in ("running", "finished"):
                continue
            try:
                for shard in run.shards:
                    if shard.index in run.final or (shard.process is None and not shard.done):
                        continue
                    report = read_report(self.run_storage, run.stage.name, run.stage.config_hash, shard.index,
                                         len(run.shards))
                    if report is not None:
                        run.reports[shard.index] = tally.checked(report, run.stage.shard_capacity)
                    if shard.done:
                        run.final.add(shard.index)
            except StorageError:
                continue
            self.listener("progress", run)

    def _finish_stages(self) -> None:
        for run in self.stages.values():
            if run.state == "running" and all(s.done for s in run.shards):
                run.state, run.completion_time = "finished", now_rfc3339()
                run.seconds = round(time.monotonic() - (run.started or time.monotonic()), 3)
                self.listener("end", run)

    def _stop_all(self, why: str, terminate: bool = False) -> None:
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

    # -- status and summary
    def _write_status(self, interrupted: str | None = None) -> ResourceStatus:
        """Write the status; `interrupted` says why the run stopped before its end."""
        status = build_status([r.observation() for r in self.stages.values()],
                              continue_on_error=self.continue_on_error, generation=self.resource.metadata.generation,
                              now=now_rfc3339(), previous=self._status, outputs=status_outputs(self.plan),
                              custom=self.plan.custom_stages, interrupted=interrupted)
        gates = {}
        for name in sorted(self._gates_read):
            gate_ = self.stages[name].stage.manual_gate
            assert gate_ is not None
            held = self.awaiting.get(name)
            gates[gate_.condition] = held.message if held is not None else ""
        status = gate_status(status, gates, now_rfc3339(), self.resource.metadata.generation)
        status = status.model_copy(update={"execution": self.plan.execution})
        if any(s.gang for s in self.plan.stages):  # a training run: its step, loss and checkpoints
            status = with_training(status, training_status(read_training(self.run_storage),
                                                           join_uri(self.plan.output_uri, "checkpoints")))
        self._status = status
        doc = StatusDocument(kind=self.plan.kind, metadata=DocumentMeta(name=self.plan.name,
                                                                        namespace=self.plan.namespace),
                             executor="local", status=status)
        self.run_storage.write_bytes(STATUS_KEY, doc.to_json())
        return status

    def _write_summary(self, status: ResourceStatus) -> RunSummary:
        by_name = {s.name: s for s in status.stages}
        rows = [stage_row(run.stage, by_name[run.stage.name], tally.of_reports(run.reports, run.stage.shard_capacity),
                          seconds=run.seconds, samples_per_second=run.samples_per_second(time.monotonic()),
                          message=run.message)
                for run in self.stages.values()]
        reports = {n: r.reports for n, r in self.stages.items()}
        return write_run_records(self.run_storage, self.plan, status, rows, reports,
                                 continue_on_error=self.continue_on_error, executor="local", finished_at=now_rfc3339())
