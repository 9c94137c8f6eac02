"""How a streaming stage's shards map onto its upstream's (pure; the planner, both executors and the
stage runtime use it): the two shard sizes divide one another, so each shard of the stage is
- a part of one upstream shard when its shards are smaller (`k` = upstream size / its size: shard j is
  part j mod k of upstream shard j // k's committed samples, in their sorted order), or
- the union of `k` consecutive upstream shards when they are larger (`k` = its size / upstream size:
  shard j is upstream shards jk .. jk + k - 1), or
- the upstream shard of the same index when the sizes are equal.
A shard's input is committed once every upstream shard it reads ended."""

from __future__ import annotations


def lines_up(upstream_size: int, size: int) -> bool:
    """Whether a stage of shard size `size` can stream from one of `upstream_size`."""
    return upstream_size > 0 and size > 0 and (upstream_size % size == 0 or size % upstream_size == 0)


def stream_shards(upstream_shards: int, upstream_size: int, size: int) -> int:
    """The stage's shard count."""
    if size <= upstream_size:
        return upstream_shards * (upstream_size // size)
    k = size // upstream_size
    return -(-upstream_shards // k)


def upstream_span(index: int, upstream_shards: int, upstream_size: int, size: int) -> range:
    """The upstream shards shard `index` reads."""
    if size <= upstream_size:
        first = index // (upstream_size // size)
        return range(first, first + 1) if first < upstream_shards else range(0)
    k = size // upstream_size
    return range(index * k, min((index + 1) * k, upstream_shards))


def part(index: int, upstream_size: int, size: int) -> slice:
    """Which of an upstream shard's committed samples (sorted) shard `index` takes: all of them unless its
    shards are smaller."""
    if size >= upstream_size:
        return slice(None)
    r = index % (upstream_size // size)
    return slice(r * size, (r + 1) * size)


def ready_below(upstream_ready: int, upstream_shards: int, upstream_size: int, size: int) -> int:
    """How many of the stage's shards (from 0 on) have their input committed once the upstream's first
    `upstream_ready` shards ended."""
    if upstream_ready >= upstream_shards:
        return stream_shards(upstream_shards, upstream_size, size)
    if size <= upstream_size:
        return upstream_ready * (upstream_size // size)
    return upstream_ready // (size // upstream_size)
