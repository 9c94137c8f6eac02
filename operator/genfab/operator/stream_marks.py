"""Carrying out the streaming decisions (genfab.operator.streams): a running streaming stage's input mark
written when it changed (one small write, not one per reconcile), and its worker Job's parallelism raised."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

from genfab.inventory.workers import write_input
from genfab.operator.kube import Conflict, Kube, NotFound
from genfab.operator.objects import Key, Owner, resource_path
from genfab.operator.ownership import Children
from genfab.operator.streams import StreamInput
from genfab.planner import Plan
from genfab.storage import Storage

log = logging.getLogger("genfab.operator")


class StreamMarks:
    def __init__(self, kube: Kube, children: Children, open_run: Callable[[Key, Plan, Owner], Storage]) -> None:
        self.kube = kube
        self.children = children
        self.open_run = open_run
        self._written: dict[tuple[Key, str], tuple[str, int]] = {}
        """(resource, stage) -> (config hash, ready) last written: written again only when it changes."""

    def apply(self, key: Key, plan: Plan, owner: Owner, streams: Sequence[StreamInput]) -> None:
        run: Storage | None = None
        for stream in streams:
            stage = plan.stage(stream.stage)
            mark = (stage.config_hash, stream.ready)
            if self._written.get((key, stage.name)) != mark:
                run = run or self.open_run(key, plan, owner)
                write_input(run, stage.name, stage.config_hash, stream.ready)
                self._written[(key, stage.name)] = mark
            if stream.parallelism is not None:
                with contextlib.suppress(NotFound, Conflict):  # Conflict: not the Job it made (UID precondition)
                    self.kube.patch(resource_path("batch/v1", "jobs", owner.namespace, stream.job), {
                        "metadata": self.children.uid_precondition(key, stream.job),
                        "spec": {"parallelism": stream.parallelism}})
                log.info("%s %s/%s: stage %s: %d shards' input committed, %d workers", *key, stage.name, stream.ready,
                         stream.parallelism)

    def forget(self, key: Key) -> None:
        for slot in [slot for slot in list(self._written) if slot[0] == key]:
            self._written.pop(slot, None)
