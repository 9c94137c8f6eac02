"""Where a stage process gets its shards from.

- `OneShard`: the shard its environment names (`JOB_COMPLETION_INDEX`): a Pod of an Indexed Job, a
  custom stage, every process that was not told otherwise. One shard, then the process ends.
- `ParentFeed`: shard after shard from the process that started it (`GENFAB_WORKER_FD` set): a warm
  worker of `genfab run`. It reads one JSON line per shard on stdin (`{"index": 3, "log": PATH,
  "termination": PATH}`), runs it with the models it already loaded, answers `{"index": 3, "exit": 0}`
  on the descriptor, and waits for the next; end of input ends it. Each shard's lines go to that
  shard's own log (its stdout and stderr are pointed there), so a shard's log reads the same as when a
  process ran only it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from genfab.contract.names import ENV_INDEX, ENV_TERMINATION_LOG
from genfab.stages.runtime.errors import BadInput


@dataclass(frozen=True)
class Assignment:
    index: int
    log: str | None = None
    """Where this shard's stdout and stderr go (None: where they already go)."""
    termination: str | None = None
    """This shard's termination message file (None: the environment's)."""

    def env(self) -> dict[str, str]:
        """What the shard's environment has of its own (its index, its termination file)."""
        own = {ENV_INDEX: str(self.index)}
        if self.termination:
            own[ENV_TERMINATION_LOG] = self.termination
        return own


class ShardFeed(Protocol):
    def __iter__(self) -> Iterator[Assignment]: ...

    def done(self, assignment: Assignment, code: int) -> None:
        """The shard ended with exit code `code` (0: its final report is stored)."""

    def close(self) -> None:
        """No more shards from this feed."""

    def continues_after(self, code: int) -> bool:
        """Whether the process goes on to its next shard after one that ended with `code`."""


class OneShard:
    def __init__(self, index: int) -> None:
        self.index = index

    def __iter__(self) -> Iterator[Assignment]:
        yield Assignment(self.index)

    def done(self, assignment: Assignment, code: int) -> None:
        """The process's own exit code says it."""

    def close(self) -> None:
        """Nothing is held."""

    def continues_after(self, code: int) -> bool:
        return code == 0


class ParentFeed:
    def __init__(self, results_fd: int, shards: int) -> None:
        self.results = os.fdopen(results_fd, "w", buffering=1)
        self.shards = shards

    def __iter__(self) -> Iterator[Assignment]:
        for line in sys.stdin:
            if not line.strip():
                continue
            assignment = self.parse(line)
            if assignment.log:
                redirect_output(assignment.log)
            yield assignment

    def parse(self, line: str) -> Assignment:
        try:
            doc = json.loads(line)
            index = doc["index"]
            if not isinstance(index, int) or not 0 <= index < self.shards:
                raise ValueError(f"index {index!r} is not a shard of {self.shards}")
            return Assignment(index, doc.get("log") or None, doc.get("termination") or None)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"the local runner sent a shard this worker cannot read ({exc}): {line[:200]!r}") from None

    def done(self, assignment: Assignment, code: int) -> None:
        # a BrokenPipeError: the runner is gone, and the process dies with it (die_with_parent)
        with contextlib.suppress(BrokenPipeError):
            self.results.write(json.dumps({"index": assignment.index, "exit": code}) + "\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.results.close()

    def continues_after(self, code: int) -> bool:
        """Only after a success: the runner decides what a failed shard's next try runs in."""
        return code == 0


def redirect_output(path: str) -> None:
    """Point this process's stdout and stderr (the descriptors: the logging handler, C libraries and
    child processes write there too) at the end of `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
