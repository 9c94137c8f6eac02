"""The execution folder a resource writes when its pipeline lets the executor choose it
(`Pipeline.execution`: reference-object's `executionMode`, the lab's reference-object `--execution_mode`):
- `new`: a timestamped folder, `YYYYMMDD_HHMMSS` (UTC) as the seed names it, `_2`, `_3` ... when
  that second's folder already exists under the output;
- `last`: the most recently modified execution under the output (its newest object).
Chosen once, when the resource first runs, then kept: the operator in status `execution`, the local
runner in `{output}/_genfab/executions/{kind}-{name}.json`. Decisions are pure; the executors list
(`choose_execution` takes the listing as a function)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from genfab.api.pipeline import selected
from genfab.api.reference_object import EXECUTION_NAME
from genfab.api.resources import Resource
from genfab.storage.base import ObjectInfo

NAME = re.compile(EXECUTION_NAME)


class ExecutionError(ValueError):
    """No execution can be chosen (`last` with none under the output)."""


def execution_choice(resource: Resource) -> str | None:
    """What the executor has to choose for this resource (`new`, `last`), or None."""
    pipeline = selected(resource.kind, resource.spec)
    return pipeline.execution(pipeline.block_of(resource.spec)) if pipeline.execution is not None else None


def execution_stamp(now: float) -> str:
    """The seed's name for an execution started at `now` (seconds since the epoch)."""
    return time.strftime("%Y%m%d_%H%M%S", time.gmtime(now))


def new_execution(now: float, taken: Iterable[str]) -> str:
    """`execution_stamp(now)`, made unique among `taken` (the executions listed under that stamp)."""
    stamp = execution_stamp(now)
    used = set(taken)
    name, n = stamp, 1
    while name in used:
        n += 1
        name = f"{stamp}_{n}"
    return name


def executions(objects: Iterable[ObjectInfo]) -> dict[str, float]:
    """Execution folder -> when its newest object was written, from a listing of the output. Only
    first-level folders with an execution's name count (genfab's own `_genfab` does not)."""
    newest: dict[str, float] = {}
    for obj in objects:
        folder, slash, _ = obj.key.partition("/")
        if slash and NAME.match(folder):
            newest[folder] = max(newest.get(folder, float("-inf")), obj.modified or 0.0)
    return newest


def last_execution(objects: Iterable[ObjectInfo], output: str) -> str:
    """The most recently modified execution under `output` (ties: the later name)."""
    found = executions(objects)
    if not found:
        raise ExecutionError(f"referenceObject.executionMode last: no execution under {output} to continue "
                             "(set executionMode new, or executionName with byName)")
    return max(found, key=lambda name: (found[name], name))


def choose_execution(choice: str, now: float, output: str, listing: Callable[[str], Iterable[ObjectInfo]]) -> str:
    """Choose for `choice` (`new`, `last`); `listing(prefix)` lists the output under a prefix."""
    if choice == "new":
        return new_execution(now, executions(listing(execution_stamp(now))))
    return last_execution(listing(""), output)
