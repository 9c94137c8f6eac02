"""Worker processes for CPU-bound per-sample work (the classical stages): the shard process keeps
the I/O and hands pixels to a pool sized to the CPUs the Pod may use."""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from genfab.contract.names import ENV_CPU_WORKERS
from genfab.stages.runtime.lifetime import die_with_parent_after_fork

FORKSERVER_GUARD = "genfab.stages.runtime.forkserver_guard"
POOL_OWNER = "GENFAB_POOL_OWNER"
"""The pid of the shard that starts the pool: the forkserver's parent (`forkserver_guard`)."""
WORKER_START_SECONDS = 120
"""How long `CpuPool.start` waits for every worker to come up (each imports the stage's module)."""


def cpu_workers(env: Mapping[str, str] | None = None, cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Worker processes for this shard: `GENFAB_CPU_WORKERS`, else the cgroup CPU limit (a Pod's
    `resources.limits.cpu`), else the CPUs this process may run on."""
    env = os.environ if env is None else env
    if env.get(ENV_CPU_WORKERS):
        return max(1, int(env[ENV_CPU_WORKERS]))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            available = min(available, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, available)


def _init_worker(started: Any = None) -> None:
    die_with_parent_after_fork()  # the forkserver's child: it ends when the forkserver does
    guard = sys.modules.get(FORKSERVER_GUARD)  # imported by the forkserver it was forked from
    if guard is not None and os.getppid() != guard.PID:  # the forkserver died before the line above ran
        os._exit(128 + signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C: the shard stops its pool
    try:  # one OpenCV thread per process: the pool is the parallelism
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    if started is not None:
        started.release()  # this worker is up (`CpuPool.start` waits for every one)


class CpuPool:
    """`map` runs a picklable module-level function over inputs in worker processes (in-process when
    one worker or one input suffices) and returns, per input, its result or the exception it raised;
    `submit` starts one such call and returns at once."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def start(self, preload: str = "") -> None:
        """Start the worker processes now (at the stage's setup), each importing module `preload`
        (the compute function's), not at the first `map`."""
        if self.workers > 1 and self._pool is None:
            # Started from the main thread: the forkserver's kernel parent-death signal follows the
            # thread that forked it.
            os.environ[POOL_OWNER] = str(os.getpid())  # the forkserver checks its parent is still this shard
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([FORKSERVER_GUARD])
            # Every worker, not only those that ran a first task: a worker still being forked when the
            # shard stops (a Ctrl-C just after setup) would find the pool's semaphores gone and print
            # multiprocessing's traceback into the shard's log.
            started = context.Semaphore(0)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                             initargs=(started,))
            for future in [self._pool.submit(_ready, preload) for _ in range(self.workers)]:
                future.result()
            for _ in range(self.workers):
                if not started.acquire(timeout=WORKER_START_SECONDS):
                    raise RuntimeError(f"worker pool: {self.workers} workers did not all start within "
                                       f"{WORKER_START_SECONDS} s")

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self.workers == 1 or len(items) <= 1:
            return [_call(fn, item) for item in items]
        return [self.result(f) for f in [self.submit(fn, item) for item in items]]

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Future[Any]:
        """Start `fn(item)` in a worker and return at once (in-process, done on return, with one
        worker); `result` gives what `map` would have."""
        if self.workers == 1:
            done: Future[Any] = Future()
            done.set_result(_call(fn, item))
            return done
        self.start()
        assert self._pool is not None
        return self._pool.submit(fn, item)

    @staticmethod
    def result(future: Future[Any]) -> Any:
        """A submitted call's result or the exception it raised (a dead worker's is raised)."""
        return _result(future)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _ready(module: str) -> None:
    """A worker's first task: it exists, with `module` imported, once this returns."""
    if module:
        importlib.import_module(module)


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    try:
        return fn(item)
    except MemoryError:
        raise
    except Exception as exc:
        return exc


def _result(future: Future[Any]) -> Any:
    exc = future.exception()
    if isinstance(exc, MemoryError | BrokenProcessPool):  # a worker died (OOM kill): the shard retries
        raise exc
    return exc if exc is not None else future.result()
