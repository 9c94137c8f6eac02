"""Imported once by the worker pool's forkserver as it starts (multiprocessing's preload): the
forkserver dies with the shard process that started it, so a shard killed with SIGKILL (itself
killed with its `genfab run`) leaves no forkserver behind. The pool's workers, forked from the
forkserver, ask the same of it (`parallel._init_worker`); the resource tracker then sees its last
writer go and exits on its own."""

from __future__ import annotations

import os
import signal

from genfab.stages.runtime.lifetime import die_with_parent_after_fork
from genfab.stages.runtime.parallel import POOL_OWNER

# The terminal's Ctrl-C reaches the whole process group: the shard stops its pool. multiprocessing's
# forkserver gives each child the SIGINT handler it found after this preload, so a worker forked now
# ignores Ctrl-C from its first instruction, not only once its initializer has run.
signal.signal(signal.SIGINT, signal.SIG_IGN)
die_with_parent_after_fork()
# Killed before the line above ran, the shard sent no signal: a forkserver whose parent is already gone
# ends now. Its workers check the same of it (`parallel._init_worker`).
if os.environ.get(POOL_OWNER, "").isdigit() and os.getppid() != int(os.environ[POOL_OWNER]):
    os._exit(128 + signal.SIGKILL)
PID = os.getpid()
"""This forkserver's pid: the parent its workers expect."""
