"""Run a plan on this machine: every shard is a subprocess with exactly a stage Pod's contract.

Sequencing, retries and status follow the operator's rules: a stage starts when its upstream
stages succeeded (or partially succeeded, with `continueOnError`), independent stages run side by
side, a shard that crashes is retried `retries` times, a bad-input exit fails it at once. Samples
already committed with the same config hash are never redone, so a run that was interrupted or
crashed continues where it stopped when started again.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from genfab.api.resources import Resource
from genfab.api.status import ResourceStatus
from genfab.api.status_document import DocumentMeta, StatusDocument
from genfab.api.summary import RunSummary
from genfab.contract import STATUS_KEY, shard_count, too_many_shards
from genfab.contract.names import (
    ENV_MODELS,
    ENV_VERIFY,
)
from genfab.contract.paths import join_uri
from genfab.contract.streams import stream_shards
from genfab.inventory import InventoryError, clear_reports, read_report, resolve_samples
from genfab.inventory.manifest import InvalidManifest, write_manifest
from genfab.inventory.training import read_training
from genfab.local.devices import cuda_visible
from genfab.local.interrupts import interruption, signals_held
from genfab.local.lease import Lease, LeaseLost, OutputInUse
from genfab.local.output import finished_local_run
from genfab.local.refs import Lookup, resolve_refs
from genfab.local.shards import REPORT_SECONDS, ShardProcesses
from genfab.local.stage_runs import Shard, StageRun
from genfab.planner import Plan, PlannedStage, stage_config
from genfab.sequencing import (
    BLOCKED_MESSAGE,
    CannotRun,
    cuda_message,
    cuda_refusal,
    gate,
    models_env,
    now_rfc3339,
    phase_of,
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
from genfab.status import build_status, failed_at_start, tally
from genfab.status.training import training_status, with_training
from genfab.storage import S3Settings, Storage, StorageError, open_storage

POLL_SECONDS = 0.2


class RunnerError(RuntimeError):
    """The run cannot start (no implementation for a stage, unusable output)."""


EXIT_CANNOT_RUN = 2
"""`genfab run`'s code for a run this machine cannot do (said before it starts, or at a stage past a
manual gate)."""


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
        self.cuda = cuda_visible(self.environ)
        """Whether this machine has a GPU for the stages (the stages' GPU time is counted only then)."""
        self.check_runnable()
        try:
            self.plan = resolve_refs(plan, refs or {}, lookup)
        except CannotRun as exc:
            raise RunnerError(str(exc)) from None
        self.stages = {s.name: StageRun(s, state="waiting" if s.run else "skipped",
                                        gpus=s.resources.gpus if self.cuda else 0) for s in self.plan.stages}
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
        self.shards = ShardProcesses(self.stages, workers=self.workers, parallelism=resource.spec.parallelism,
                                     retries=self.retries, log_dir=log_dir, environ=self.environ, command=self.command,
                                     models_env=self._models_env,
                                     config_path=lambda name: self._config_dir / f"{name}.json")

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
                self.shards.launch()
                self.shards.enforce_deadlines()
                changed = self.shards.reap()
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
                self.shards.stop_all(why, terminate=True)
                self._refresh_reports()
                self._write_status(interrupted=why)
            raise stop from None
        self.shards.end_workers()
        self._refresh_reports()
        self._read_gates()  # a gated stage that finished last (`onlyStages` ending at it) still waits
        status = self._write_status()
        summary = self._write_summary(status)
        return RunResult(status, summary, self.plan.output_uri, list(self.awaiting.values()), self.refused)

    def _keep_lease(self) -> None:
        try:
            self.lease.renew_if_due()
        except LeaseLost as exc:
            self.shards.stop_all("stopped: lost the output's lease", terminate=True)
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
            if run.state == "running" and run.stage.streams_from and gate(
                    run.stage, phases, self.continue_on_error) == "blocked":
                self._block(run)  # its upstream failed while it streamed: what it committed stays
                phases[run.stage.name] = "Blocked"
                continue
            if run.state != "waiting":
                continue
            verdict = gate(run.stage, phases, self.continue_on_error)
            if verdict == "waiting" and self._streams(run):
                verdict = "ready"
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

    def _streams(self, run: StageRun) -> bool:
        """`run` takes its upstream's shards as they finish, and that stage is running now."""
        return bool(run.stage.streams_from) and all(
            self.stages[u].state == "running" and self.stages[u].shards for u in run.stage.streams_from)

    def _block(self, run: StageRun) -> None:
        run.state, run.message = "blocked", f"stopped: {BLOCKED_MESSAGE.removeprefix('not started: ')}"
        for shard in run.shards:
            self.shards.stop(shard, run.message)
        self.listener("end", run)

    def _start_stage(self, run: StageRun) -> None:
        source = self.stages[run.stage.streams_from[0]] if run.stage.streams_from else None
        run.config = stage_config(self.plan, run.stage, len(source.shards) if source is not None else None)
        run.start_time, run.started = now_rfc3339(), time.monotonic()
        if run.stage.cuda and not self.cuda:  # past a manual gate: refused now, no process, no retry
            self.refused = True
            self._fail_at_start(run, cuda_message(self.plan.pipeline, [run.stage.name], []))
            return
        if source is not None:  # its shards map onto the upstream's (genfab.contract.streams)
            count = stream_shards(len(source.shards), source.stage.shard_size, run.stage.shard_size)
        else:
            try:
                samples = resolve_samples(run.config, self.open)
                # Listed once, here: each shard reads its slice of the list instead of listing them again.
                write_manifest(self.run_storage, run.stage.name, run.stage.config_hash,
                               [(s.id, s.source) for s in samples])
            except (InventoryError, InvalidManifest, StorageError) as exc:
                self._fail_at_start(run, f"cannot list samples: {exc}", reason="BadInput")
                return
            run.samples = len(samples)
            count = shard_count(len(samples), run.stage.shard_size, run.stage.fixed_shards)
            too_many = too_many_shards(run.stage.name, len(samples), run.stage.shard_size, count)
            if too_many is not None:
                self._fail_at_start(run, too_many, reason="BadInput")
                return
        clear_reports(self.run_storage, run.stage.name, run.stage.config_hash)
        run.reports, run.final = {}, set()
        (self._config_dir / f"{run.stage.name}.json").write_text(run.config.to_json())
        run.shards = [Shard(i) for i in range(count)]
        run.state = "running"
        self.listener("start", run)

    def _fail_at_start(self, run: StageRun, message: str, reason: str | None = None) -> None:
        run.state, run.message, run.completion_time = "finished", message, now_rfc3339()
        run.shards = [Shard(0, done=True, failed=True)]
        run.start_failure = failed_at_start(run.stage.name, run.stage.config_hash, run.stage.output_uri, message,
                                            run.completion_time, reason)
        self.listener("end", run)

    def _refresh_reports(self) -> None:
        """Read the reports of the shards running now, and once more each shard's final one when it ended:
        a tick reads as many reports as shards run at once, however many shards the stage has."""
        for run in self.stages.values():
            if run.state not in ("running", "finished", "blocked"):
                continue
            # A stage stopped while it streamed (blocked): its stopped shards' last reports count too, for
            # what they committed before the stop stays (a shard never started has none).
            stopped = run.state == "blocked"
            try:
                for shard in run.shards:
                    ended = shard.done or (stopped and shard.process is None)
                    ran = shard.process is not None or shard.done or (stopped and shard.attempts > 0)
                    if shard.index in run.final or not ran:
                        continue
                    report = read_report(self.run_storage, run.stage.name, run.stage.config_hash, shard.index,
                                         len(run.shards))
                    if report is not None:
                        run.reports[shard.index] = tally.checked(report, run.stage.shard_capacity)
                    if ended:
                        run.final.add(shard.index)
            except StorageError:
                continue
            if run.stage.streams_from:  # its samples so far: what its upstream's finished shards committed
                up = self.stages[run.stage.streams_from[0]]
                run.samples = sum(len(up.reports[s.index].succeeded) for s in up.shards
                                  if s.done and s.index in up.reports)
            self.listener("progress", run)

    def _finish_stages(self) -> None:
        for run in self.stages.values():
            if run.state == "running" and all(s.done for s in run.shards):
                run.state, run.completion_time = "finished", now_rfc3339()
                run.seconds = round(time.monotonic() - (run.started or time.monotonic()), 3)
                self.listener("end", run)

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
