"""The worker pool's forkserver hands its children a SIGINT that is ignored from their first
instruction: a terminal's Ctrl-C to the whole group while a worker is still starting (before its
initializer ran) must not print a KeyboardInterrupt traceback into the shard's log."""

from __future__ import annotations

import multiprocessing
import signal
from typing import Any

from genfab.stages.runtime.parallel import FORKSERVER_GUARD


def _report(queue: Any) -> None:
    queue.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_a_child_of_the_pools_forkserver_ignores_sigint_before_any_initializer() -> None:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([FORKSERVER_GUARD])
    queue = context.Queue()
    child = context.Process(target=_report, args=(queue,))  # no initializer: what the fork alone gives
    child.start()
    ignored = queue.get(timeout=60)
    child.join(timeout=60)
    assert ignored is True
