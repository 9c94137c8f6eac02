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
  per shard that can run now, within the Job's workers (`spec.parallelism`). The operator only raises it
  (`wanted_parallelism`): lowering it would let the Job controller stop a busy worker. So a worker starts
  only for input already there, and waits only between shards, while the workers ahead took what was
  committed: at most until the upstream's next shard ends.
"""

from __future__ import annotations

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
    """A running streaming stage: its shards ready now, and the Job parallelism to raise it to (None: as it is)."""

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
    now: its upstream runs as a Job and finished what its first shard reads; and with what."""
    if upstream.state != "running" or not upstream.job_name or upstream.shards_total <= 0:
        return None
    up = upstream.shards_total
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


def wanted_parallelism(workers: int, current: int, ready: int, done: int) -> int | None:
    """The worker Job's parallelism to raise to: one worker per ready shard not finished, within its
    `workers`; None where it stays (never lowered: that would stop a busy worker)."""
    wanted = min(workers, max(1, ready - done))
    return wanted if wanted > current else None
