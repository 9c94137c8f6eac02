"""Which stages share one warm worker (pure): a pipeline declares stages that load the same models
(`Pipeline.shared_workers`), and the plan groups them where one process can run them all, loading each
shared model once instead of once per stage.

A declared group is formed from its members that run now when:
- at least two of them run, the holder (the member that loads every shared model itself) among them, so
  the group needs no more GPU memory than the holder alone;
- each is genfab's own warm stage (not a custom stage, not a process group) with the holder's GPUs;
- their settings name the same models (`SharedWorker.differs`): a member set to another fill model
  shares nothing and runs apart.
Members that do not qualify keep workers of their own. `genfab run` runs a group in one process; a
cluster in one worker Job, its first member's (genfab.operator.hosting; `docs/operate/operator.md`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from genfab.api.families import CUSTOM_FAMILY
from genfab.api.pipeline import SharedWorker
from genfab.planner.model import PlannedStage


def shared_group(declared: SharedWorker, by_name: Mapping[str, PlannedStage]) -> tuple[str, ...]:
    """The members of `declared` that share one worker in this plan (empty: none do)."""
    holder = by_name.get(declared.holder)
    if holder is None or not _hostable(holder):
        return ()
    members = tuple(name for name in declared.stages if (s := by_name.get(name)) is not None and _hostable(s)
                    and s.resources.gpus == holder.resources.gpus)
    if len(members) < 2:
        return ()
    if declared.differs is not None and declared.differs({name: by_name[name].config for name in members}):
        return ()
    return members


def with_shared_workers(stages: Sequence[PlannedStage], declared: Sequence[SharedWorker]) -> list[PlannedStage]:
    """`stages` with `shares_worker` set on the members of each group this plan forms."""
    by_name = {s.name: s for s in stages}
    groups = {name: (group, d.holder) for d in declared for group in [shared_group(d, by_name)] for name in group}
    return [replace(s, shares_worker=groups[s.name][0], shared_holder=groups[s.name][1]) if s.name in groups else s
            for s in stages]


def _hostable(stage: PlannedStage) -> bool:
    return stage.run and stage.family != CUSTOM_FAMILY and not stage.gang and stage.implementation is not None
