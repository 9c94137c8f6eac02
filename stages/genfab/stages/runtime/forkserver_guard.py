"""Imported once by the worker pool's forkserver as it starts (multiprocessing's preload): the
forkserver dies with the shard process that started it, so a shard killed with SIGKILL (itself
killed with its `genfab run`) leaves no forkserver behind. The pool's workers, forked from the
forkserver, ask the same of it (`parallel._init_worker`); the resource tracker then sees its last
writer go and exits on its own."""

from __future__ import annotations

from genfab.stages.runtime.lifetime import die_with_parent_after_fork

die_with_parent_after_fork()
