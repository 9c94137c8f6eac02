"""Streaming between stages on the cluster, pure: when a stage that takes its upstream's shards as they
finish (`PlannedStage.streams_from`) starts, which of its shards may be taken, and how many of its
worker Pods run.

- It starts once its upstream runs as a Job and has finished the shards its first shard reads
  (`may_start`); its shards map onto the upstream's (genfab.contract.streams), so its shard count follows
  from the upstream's.
- Its shards whose input is committed are those that read only the prefix of the upstream's shards that
  ended (done, or failed for good), all of them once the upstream stage ended (`ready_shards`). The
  operator writes that count for its workers (`input.json`, genfab.inventory.workers); a worker takes a
  shard below it, or once the upstream shards it reads succeeded.
- Its Job is a worker Job whose `parallelism` follows the committed input not yet finished: one worker
  per shard that can run now, within the Job's workers (`spec.parallelism`) (`wanted_parallelism`). So a
  worker starts only for input already there, and waits only between shards, while the workers ahead took
  what was committed.
- A worker that waited for input longer than its stage's bound is released (`release_after`: the chart's
  floor, or the stage's measured model load when longer: holding a GPU idle that long costs what starting a
  worker again would, the ski-rental rule, so the GPU time a release wastes is at most twice the least any
  choice could have wasted, knowing the future). The operator lowers the Job's parallelism by the workers
  waiting past it; the Job controller stops not-Ready Pods first (a waiting worker's readiness probe fails:
  genfab.operator.builders.waiting_probe) and does not count Pods it stops for parallelism as failed, and
  more committed input raises the parallelism again. So the stage's workers follow its measured
  throughput against its upstream's: a stage faster than its input keeps as few workers as the input keeps
  busy, and the GPUs go to the stages that have the work. Once the upstream ended it is a worker Job as any
  other: every shard is committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from genfab.contract import indexes
from genfab.contract.streams import ready_below, stream_shards
from genfab.status import StageObservation


@dataclass(frozen=True)
class StreamStart:
    """A streaming stage to start now: its shard count and its upstream's, its samples so far (an upper
    bound: what the upstream committed, its running shards' included) and its shards ready now."""

    shards: int
    upstream_shards: int
    samples: int
    ready: int


@dataclass(frozen=True)
class StreamInput:
    """A running streaming stage: its shards ready now, and the Job parallelism to set (None: as it is)."""

    stage: str
    job: str
    ready: int
    parallelism: int | None = None


def ready_prefix(finished: indexes.Ranges) -> int:
    """How many shards from 0 on have ended (the upstream takes its shards in index order)."""
    return finished[0][1] + 1 if finished and finished[0][0] == 0 else 0


def may_start(upstream: StageObservation, finished: indexes.Ranges, upstream_size: int, size: int
              ) -> StreamStart | None:
    """Whether a stage (shard size `size`) streaming from `upstream` (shard size `upstream_size`) starts
    now, and with what: its upstream runs as a Job and finished what its first shard reads, or its
    upstream's Job ended with samples (every shard ready). A stage that may stream starts streaming
    whenever it starts: an operator restarted between a stage's start and the status write that records
    it then builds the very children it made before (a start that depended on when it ran made them
    differ, and they were refused as not genfab's: NameTaken)."""
    if upstream.state not in ("running", "finished") or not upstream.job_name or upstream.shards_total <= 0:
        return None
    up = upstream.shards_total
    if upstream.state == "finished":
        if upstream.samples_succeeded <= 0:
            return None
        ready = stream_shards(up, upstream_size, size)
    else:
        ready = ready_below(ready_prefix(finished), up, upstream_size, size)
    if ready <= 0:
        return None
    return StreamStart(stream_shards(up, upstream_size, size), up, upstream.samples_succeeded, ready)


def ready_shards(upstream: StageObservation, finished: indexes.Ranges, shards: int, upstream_size: int,
                 size: int) -> int:
    """A running streaming stage's shards whose input is committed: every one once its upstream ended."""
    if upstream.state != "running":
        return shards
    return min(shards, ready_below(ready_prefix(finished), upstream.shards_total, upstream_size, size))


def streams_under(streaming: bool, queue: str | None, elastic_jobs: bool) -> bool:
    """Whether a resource's stages may stream: the chart's `stages.streaming`, and, for a resource whose Jobs
    Kueue admits (`queue`), Kueue resizing them as elastic Jobs (`kueue.elasticJobs`). Kueue admits a Job
    for the Pods it asks when admitted; a running Job whose parallelism then changes no longer matches its
    Workload, and Kueue suspends it and queues it again (its jobframework reconciler: NoMatchingWorkload),
    unless the Job is elastic (`kueue.x-k8s.io/elastic-job`): then a lower parallelism is recorded in its
    Workload at once, and a higher one is admitted as a new Workload slice, its extra Pods gated until
    then. A streaming Job's parallelism follows its committed input, so without elastic Jobs it would be
    suspended at its first change: its stages wait for their upstreams instead."""
    return streaming and (queue is None or elastic_jobs)


IDLE_RELEASE_SECONDS = 60.0
"""The floor of `release_after` when the chart says none (`stages.idleReleaseSeconds`)."""


def release_after(floor: float, model_load_seconds: float | None) -> float:
    """Seconds a waiting worker keeps its GPU: the chart's floor, or what its stage's model load measured
    when longer (a worker started again pays it again)."""
    return max(floor, model_load_seconds or 0.0)


def idle_past(waiting: Mapping[int, float], now: float, bound: float) -> int:
    """How many of the running workers waiting for input (since when, epoch seconds) waited `bound` or more."""
    return sum(1 for since in waiting.values() if now - since >= bound)


def wanted_parallelism(workers: int, current: int, ready: int, done: int, shards: int, idle: int = 0
                       ) -> int | None:
    """The worker Job's parallelism (None: as it is). One worker per ready shard not finished, within its
    `workers`: raised as committed input arrives; lowered by the `idle` workers that waited past their
    bound, never below the shards ready and not finished (a worker waits only when no committed shard is
    left to take, so those are the busy ones). Once every shard is committed (`ready == shards`, the
    upstream ended) at least one: the Job's remaining workers must start to end it."""
    floor = 1 if ready >= shards else 0
    need = min(workers, max(floor, ready - done))
    if need > current:
        return need
    if idle > 0 and ready < shards:
        lowered = max(need, current - idle)
        return lowered if lowered < current else None
    return None
