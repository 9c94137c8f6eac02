"""A shared worker (`PlannedStage.shares_worker`): one process runs the shards of several stages of a
pipeline that load the same models (vistadream's outpaint, depth and coarse: the FLUX fill and the depth
model), and each shared model is loaded once for all of them (`ModelSet.load(share=...)`).

`genfab run` starts it as `python -m genfab.stages --shared-worker` and feeds it as it feeds a warm worker
(genfab.stages.runtime.feed), one JSON line per shard on stdin, naming the stage and carrying that
stage's own environment (its config, hash, shard count: what differs from the first stage's):
`{"stage": "coarse", "env": {...}, "index": 3, "log": PATH, "termination": PATH}`; it answers
`{"stage": "coarse", "index": 3, "exit": 0}` on its results descriptor. Each stage is held as a warm
worker holds its one stage (`Warm`: set up before its first shard needs a model, closed at the end), so a
shard runs, reports and fails exactly as it does in a process of its own; a shard that does not succeed
ends the process, as it ends a warm worker."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from genfab.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRYABLE
from genfab.contract.names import ENV_METRICS_PORT, ENV_WORKER_FD
from genfab.stages.runtime.context import StageContext, load_context
from genfab.stages.runtime.errors import BadInput
from genfab.stages.runtime.feed import Assignment, redirect_output
from genfab.stages.runtime.lifetime import die_with_parent
from genfab.stages.runtime.logs import configure
from genfab.stages.runtime.loop import Warm, interrupted_exit, missing_package, run_assigned
from genfab.stages.runtime.metrics import SharedPodMetrics, StageMetrics
from genfab.stages.runtime.stage import Stage
from genfab.stages.runtime.stops import STOP_SIGNALS, ignore_signal, raise_interrupt
from genfab.storage import StorageError

log = logging.getLogger("genfab.stages")
MAX_LINE = 1 << 20
"""The longest shard line read (a stage's environment is a few KB)."""


@dataclass
class Hosted:
    """One stage as the shared worker holds it."""

    stage: Stage[Any]
    ctx: StageContext
    settings: type[BaseModel] | None
    warm: Warm


@dataclass(frozen=True)
class SharedAssignment:
    stage: str
    env: Mapping[str, str]
    """The stage's own environment (over the process's)."""
    shard: Assignment


class SharedFeed:
    """The shards the runner hands this process, each with its stage (see the module's docs)."""

    def __init__(self, results_fd: int) -> None:
        self.results = os.fdopen(results_fd, "w", buffering=1)

    def __iter__(self) -> Iterator[SharedAssignment]:
        for line in sys.stdin:
            if not line.strip():
                continue
            assignment = parse(line)
            if assignment.shard.log:
                redirect_output(assignment.shard.log)
            yield assignment

    def continues_after(self, code: int) -> bool:
        """A shard that does not succeed ends the process, as it ends a warm worker of `genfab run`."""
        return code == EXIT_OK

    def done(self, assignment: SharedAssignment, code: int) -> None:
        with contextlib.suppress(BrokenPipeError):  # the runner is gone: the process dies with it
            self.results.write(json.dumps({"stage": assignment.stage, "index": assignment.shard.index,
                                           "exit": code}) + "\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.results.close()


def parse(line: str) -> SharedAssignment:
    """A shard line, or BadInput naming what is wrong with it."""
    try:
        if len(line) > MAX_LINE:
            raise ValueError(f"{len(line)} characters, more than {MAX_LINE}")
        doc = json.loads(line)
        stage, env, index = doc["stage"], doc.get("env") or {}, doc["index"]
        if not isinstance(stage, str) or not isinstance(index, int) or index < 0 or not isinstance(env, dict) \
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("stage, env or index of the wrong type")
        return SharedAssignment(stage, env, Assignment(index, doc.get("log") or None, doc.get("termination") or None))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"the local runner sent a shard this shared worker cannot read ({exc}): {line[:200]!r}"
                       ) from None


def hold(name: str, env: Mapping[str, str]) -> Hosted:
    """Stage `name` as its environment describes it (its config names the pipeline and implementation)."""
    from genfab.stages.runtime.registry import load

    ctx = load_context(env)
    if ctx.stage != name:
        raise BadInput(f"asked to run stage {name!r}, but its config is for {ctx.stage!r}")
    stage, decl = load(ctx.cfg.pipeline, ctx.cfg.stage)
    ctx.metrics = StageMetrics(ctx.stage)
    return Hosted(stage, ctx, decl.settings, Warm(stage))


def host(env: Mapping[str, str] | None = None) -> int:
    """Run the shards the runner hands this process until it has none left (or one does not succeed, whose
    exit code it returns)."""
    environ = dict(os.environ if env is None else env)
    die_with_parent(environ)
    fd = environ.get(ENV_WORKER_FD, "")
    if not fd.isdigit():
        configure({"worker": "shared"})
        log.error("a shared worker needs %s (the runner's results descriptor), got %r", ENV_WORKER_FD, fd)
        return EXIT_BAD_INPUT
    return serve(SharedFeed(int(fd)), environ)


class Feed(Protocol):
    """Where a shared worker's shards come from: the local runner (`SharedFeed`) or, on a cluster, the
    hosted stages' cursors (genfab.stages.runtime.group)."""

    def __iter__(self) -> Iterator[SharedAssignment]: ...

    def done(self, assignment: SharedAssignment, code: int) -> None: ...

    def continues_after(self, code: int) -> bool: ...

    def close(self) -> None: ...


def serve(feed: Feed, environ: Mapping[str, str]) -> int:
    """Run each shard `feed` hands over with its stage, each stage set up once, until the feed has no more
    (or one ends as its feed says the process ends, whose exit code it returns)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, raise_interrupt)
    configure({"worker": "shared"})
    hosted: dict[str, Hosted] = {}
    port = environ.get(ENV_METRICS_PORT, "")
    metrics = SharedPodMetrics() if port.isdigit() else None  # a Pod's: every stage it runs, on its port
    if metrics is not None:
        metrics.serve(int(port))
    code = EXIT_OK
    try:
        for assignment in feed:
            held = hosted.get(assignment.stage)
            if held is None:
                try:
                    held = hosted[assignment.stage] = hold(assignment.stage, {**environ, **assignment.env})
                    if metrics is not None and held.ctx.metrics is not None:
                        metrics.add(held.ctx.metrics)
                except BadInput as exc:
                    log.error("bad stage contract: %s", exc)
                    code = EXIT_BAD_INPUT
                except ModuleNotFoundError as exc:
                    log.error("%s", missing_package(exc, "", assignment.stage, ""))
                    code = EXIT_BAD_INPUT
                if held is None:
                    feed.done(assignment, code)
                    break
            ended = run_assigned(held.warm, held.ctx, assignment.shard, held.settings)
            feed.done(assignment, ended)
            if not feed.continues_after(ended):
                code = ended
                break
    except KeyboardInterrupt as exc:  # stopped between shards
        code = interrupted_exit(str(exc))
    except BadInput as exc:  # a line it cannot read, a hosted stage's document that is not the operator's
        log.error("%s", exc)
        code = EXIT_BAD_INPUT
    except StorageError as exc:  # a cursor or a record: the Pod's next try reads them again
        log.error("shards not taken: %s", exc)
        code = EXIT_RETRYABLE
    except Exception as exc:  # a stage's setup or close gone wrong outside a shard: the runner retries
        log.exception("shared worker failed: %s", exc)
        code = EXIT_RETRYABLE
    finally:
        feed.close()
        for held in hosted.values():
            try:
                held.warm.close()
            except Exception as exc:  # one stage's close must not hide the others' or the outcome
                log.warning("stage close failed: %s: %s", type(exc).__name__, exc)
            if "workdir" in held.ctx.__dict__:
                shutil.rmtree(held.ctx.workdir, ignore_errors=True)
    for sig in STOP_SIGNALS:
        signal.signal(sig, ignore_signal)
    return code
