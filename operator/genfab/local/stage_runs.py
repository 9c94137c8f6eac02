"""What `genfab run` knows of a stage and its shards while it runs them: each shard's attempts and
process, the stage's reports, and the stage's observation for the status (the local runner's Job and
Pod objects)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from genfab.api.reasons import FILTERED
from genfab.contract import StageConfig
from genfab.inventory import ShardReport
from genfab.planner import PlannedStage
from genfab.status import StageObservation, notes_message, produced_by
from genfab.status.aggregate import ExecState
from genfab.status.cost import gpu_seconds, shard_seconds


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
