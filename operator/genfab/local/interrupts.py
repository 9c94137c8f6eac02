"""How a local run ends early: Ctrl-C (SIGINT), SIGTERM (`timeout`, systemd, a container runtime),
SIGHUP (the terminal closed) or its stdout closing (`genfab run … | head`). Each becomes one
`Interrupted`, which the runner turns into stopped shards, a consistent interrupted status and a
released lease, and the CLI into a line saying how to continue and the shell's exit code for it."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from genfab.contract import EXIT_INTERRUPTED

EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""A process whose reader went away: what a shell reports for `yes | head -1`."""

CAUGHT = (signal.SIGTERM, signal.SIGHUP)
"""Signals whose default action would end the run without cleanup (SIGINT already raises)."""


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop: `why` for people, `exit_code` for the shell."""

    def __init__(self, why: str, exit_code: int) -> None:
        super().__init__(why)
        self.why = why
        self.exit_code = exit_code

    @property
    def broken_pipe(self) -> bool:
        return self.exit_code == EXIT_BROKEN_PIPE


def interruption(exc: BaseException) -> Interrupted:
    """The `Interrupted` an exception that ended a run early stands for."""
    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, BrokenPipeError):
        return Interrupted("stdout closed (broken pipe)", EXIT_BROKEN_PIPE)
    return Interrupted("SIGINT", EXIT_INTERRUPTED)


def quiet_stdout() -> None:
    """Point stdout at /dev/null once its reader is gone: Python's final flush would otherwise fail
    again and print a traceback-like warning."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


STOPS = (*CAUGHT, signal.SIGINT)


def hold_signals() -> None:
    """Ignore further stop signals (a second Ctrl-C must not cut short the shards' final reports and the
    status write); `signals_interrupt` and `signals_held` restore them."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOPS:  # a handler that does nothing, not SIG_IGN: a signal already caught at the C level
            signal.signal(sig, _ignore)  # would find SIG_IGN and raise "Signal N ignored due to race condition"


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A stop signal while the run is already stopping (or holds its shards' last writes)."""


@contextmanager
def signals_held() -> Iterator[None]:
    """Stop signals ignored within the block, and as they were after it (a runner used as a library
    leaves its caller's Ctrl-C working)."""
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in STOPS} if main else {}
    hold_signals()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise(signum: int, frame: FrameType | None) -> None:
    hold_signals()
    raise Interrupted(signal.Signals(signum).name, 128 + signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise `Interrupted` (in the main thread, as SIGINT does)."""
    previous = {sig: signal.getsignal(sig) for sig in STOPS}
    for sig in CAUGHT:
        signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
