"""`genfab run`'s execution folder (`Pipeline.execution`): chosen at a resource's first local run
and kept next to the executions, in `{output}/_genfab/executions/{kind}-{name}.json`, so running the
same file again continues the same execution, as the operator's status keeps it for a resource."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from genfab.api.resources import Resource
from genfab.sequencing import CannotRun
from genfab.sequencing.execution import ExecutionError, choose_execution, execution_choice, executions
from genfab.storage import Storage, StorageError


@dataclass(frozen=True)
class LocalExecution:
    name: str | None
    """The execution folder; None when the spec names it (`executionName`) or has none."""
    note: str = ""
    """Where it came from, for the person running it."""
    keep: bytes | None = None
    """The pointer to write once the run holds its output (a new choice); None: nothing to write."""
    key: str = ""


def pointer_key(resource: Resource) -> str:
    return f"_genfab/executions/{resource.kind}-{resource.metadata.name}.json"


def local_execution(resource: Resource, output: Storage, again: bool = False) -> LocalExecution:
    """The execution this run writes. `again`: choose anew instead of continuing the kept one
    (`--new-execution`). Nothing is written here (`keep_execution` does, once the run starts)."""
    choice = execution_choice(resource)
    if choice is None:
        return LocalExecution(None)
    key = pointer_key(resource)
    try:
        kept = None if again or not output.exists(key) else json.loads(output.read_bytes(key)).get("execution")
        if isinstance(kept, str) and kept in executions(output.list(f"{kept}/")):
            return LocalExecution(kept, f"execution {kept}: kept from this resource's first run "
                                        f"(executionMode {choice}; `--new-execution` chooses again)")
        name = choose_execution(choice, time.time(), output.uri, output.list)
    except ExecutionError as exc:
        raise CannotRun(str(exc)) from None
    except (StorageError, ValueError) as exc:
        raise CannotRun(f"output {output.uri}: {exc}") from None
    pointer = {"execution": name, "executionMode": choice,
               "chosenAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return LocalExecution(name, f"execution {name}: chosen now (executionMode {choice}), kept for the next runs "
                                f"in {output.child(key)}", json.dumps(pointer, indent=2).encode(), key)


def keep_execution(output: Storage, chosen: LocalExecution) -> None:
    if chosen.keep is not None:
        output.write_bytes(chosen.key, chosen.keep)
