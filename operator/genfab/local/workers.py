"""Warm workers of `genfab run`: a built-in stage's process loads its models once and runs shard after
shard that the runner hands it (genfab.stages.runtime.feed), instead of one process per shard paying
every load and compilation again. The runner keeps the Job controller's part: which shard runs, its
attempts, retries, deadlines and logs stay per shard; a worker is only where a shard runs.

A worker gets a shard as one JSON line on its stdin and answers `{"index": i, "exit": code}` on a pipe
of its own; a shard that does not succeed ends its worker (the process's state is not trusted after a
crash), and a worker that dies mid-shard ends that shard's attempt with the process's exit code, as a
shard process's death did. A worker whose stage has no shard left to start is told so (its stdin
closed) and exits.

A shared worker (`PlannedStage.shares_worker`: stages that load the same models) is one such process for
several stages: each line also names the shard's stage and carries that stage's own environment, and it
answers with the stage (genfab.stages.runtime.shared)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genfab.contract.names import ENV_WORKER_FD

if TYPE_CHECKING:
    from genfab.local.stage_runs import Shard, StageRun

MAX_RESULT_LINE = 4096


@dataclass
class Worker:
    run: StageRun
    """The stage of the shard it runs now, or of its last one (a shared worker serves several)."""
    process: subprocess.Popen[bytes]
    results: int
    """The read end of the worker's results pipe (non-blocking)."""
    shard: Shard | None = None
    """The shard it runs now (None: idle)."""
    closing: bool = False
    """Told there is no more work (stdin closed): it is ending."""
    pending: bytes = b""
    group: tuple[str, ...] = ()
    """A shared worker's stages (`PlannedStage.shares_worker`); empty: its one stage's worker."""

    def serves(self, run: StageRun) -> bool:
        return run.stage.name in self.group if self.group else run is self.run

    @classmethod
    def start(cls, run: StageRun, command: list[str], env: Mapping[str, str], log: Path,
              group: tuple[str, ...] = ()) -> Worker:
        """A worker whose output goes to `log` until its first shard names its own (`group`: a shared one)."""
        read, write = os.pipe()
        try:
            with log.open("ab") as out:
                process = subprocess.Popen(command, env={**env, ENV_WORKER_FD: str(write)}, stdin=subprocess.PIPE,
                                           stdout=out, stderr=subprocess.STDOUT, pass_fds=(write,))
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        os.set_blocking(read, False)
        return cls(run, process, read, group=group)

    def give(self, run: StageRun, shard: Shard, log: Path, termination: Path, env: Mapping[str, str]) -> None:
        """Hand it `shard` of `run` (its stdin; a shared worker also gets the stage and its environment
        `env`); a worker that died meanwhile is found by `reap`, with the shard."""
        self.run, self.shard = run, shard
        doc: dict[str, object] = {"index": shard.index, "log": str(log), "termination": str(termination)}
        if self.group:
            doc.update(stage=run.stage.name, env=dict(env))
        line = json.dumps(doc) + "\n"
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):  # a broken pipe: it died, which `reap` finds
            self.process.stdin.write(line.encode())
            self.process.stdin.flush()

    def finished(self) -> list[tuple[int, int]]:
        """(shard index, exit code) of each shard it said ended since the last call (a shared worker's of
        the stage it runs now: it runs one shard at a time)."""
        while True:
            try:
                chunk = os.read(self.results, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.pending += chunk
        lines = self.pending.split(b"\n")
        self.pending = lines.pop()[-MAX_RESULT_LINE:]
        ended = []
        for line in lines:
            try:
                doc = json.loads(line)
                ended.append((int(doc["index"]), int(doc["exit"])))
            except (ValueError, KeyError, TypeError):
                continue  # not a result line: the runtime writes nothing else here
        return ended

    def close(self) -> None:
        """No more shards: the worker ends once its stage's `close` ran."""
        if not self.closing:
            self.closing = True
            assert self.process.stdin is not None
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def release(self) -> None:
        """Its process has exited: the pipes go."""
        os.close(self.results)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
