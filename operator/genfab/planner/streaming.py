"""Which stages take their upstream's shards as they finish instead of waiting for the whole stage
(pure): a sample flows to the next stage as soon as its shard is committed, and a stage's GPUs do not
wait for the slowest shard of the stage before it.

A stage streams from its upstream when its shard i can be exactly what the upstream's shard i committed:
- it has one upstream stage, both run now (a stage that reuses its outputs is already whole), and both
  are genfab's own (a custom stage's command lists its samples itself) and not a process group;
- it makes one output per upstream sample: no declared units (a fan-out, a first stage's own listing),
  not the whole set at once (`singleton`), and not declared a `barrier` (it needs all its input: a folder
  that holds exactly the current samples, a file summing up the set);
- the upstream's samples do not wait for a person's choice (a manual gate), and neither stage has a
  fixed shard count;
- their shard sizes divide one another, so each of its shards reads a part of one upstream shard, one
  upstream shard, or a run of them (genfab.contract.streams).
Everything else is a barrier, as before: the stage starts when its upstream stages finished."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from genfab.api.families import CUSTOM_FAMILY
from genfab.api.pipeline import StageDecl
from genfab.contract.streams import lines_up
from genfab.planner.model import Plan, PlannedStage


def stream_source(stage: PlannedStage, decl: StageDecl | None, by_name: Mapping[str, PlannedStage]) -> str | None:
    """The upstream stage `stage` streams from, or None (a barrier); `decl`: its declaration (None: a
    custom stage)."""
    if decl is None or not _streamable(stage) or len(stage.upstream) != 1:
        return None
    if decl.units is not None or decl.singleton or decl.barrier:
        return None
    up = by_name.get(stage.upstream[0])
    if up is None or not _streamable(up) or up.manual_gate is not None or not lines_up(up.shard_size, stage.shard_size):
        return None
    return up.name


def _streamable(stage: PlannedStage) -> bool:
    return (stage.run and stage.family != CUSTOM_FAMILY and not stage.gang and stage.fixed_shards is None)


def without_streams(plan: Plan) -> Plan:
    """`plan` with every stage a barrier (streaming turned off where it runs: `stages.streaming`)."""
    if not any(s.streams_from for s in plan.stages):
        return plan
    return replace(plan, stages=tuple(replace(s, streams_from=()) for s in plan.stages))
