"""No process outlives its run: a shard process, the launcher it starts and the workers the launcher
starts each ask the kernel to kill them when their parent exits (Linux `PR_SET_PDEATHSIG`). So a
`genfab run` killed with SIGKILL leaves no shard, torchrun or training worker behind, writing to an
output the next run takes over, or waiting forever on a dead peer. In a Pod the parent is the
container's init, whose end is the Pod's anyway; elsewhere than Linux this does nothing."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Mapping

from genfab.contract.names import ENV_PARENT_PID

PR_SET_PDEATHSIG = 1


def die_with_parent(env: Mapping[str, str] | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent exits; exit at once if the parent the local
    runner named (`GENFAB_PARENT_PID`) is already gone (it died before this line ran)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    expected = (os.environ if env is None else env).get(ENV_PARENT_PID)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        os._exit(128 + signal.SIGKILL)


def die_with_parent_after_fork() -> None:
    """`preexec_fn` of a child this process starts (torchrun): it dies with this process. The flag
    survives exec; call Popen from the thread that lives as long as the child should."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
