"""Stop signals in a stage process (preemption's SIGTERM, Ctrl-C, a closed terminal): the first raises
`KeyboardInterrupt` in the main thread, where the shard stops between writes and reports; later ones are
ignored. `deferred_stop` holds one back through a few writes that must not be cut apart."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Deferral:
    """Whether a stop signal waits (`deferred_stop`), and the one that came meanwhile."""

    active = False
    pending: int | None = None


@contextmanager
def deferred_stop() -> Iterator[None]:
    """A stop signal arriving inside is raised as the block ends, not in its middle: the two writes that
    take a shard (the cursor, then the worker's record naming it) are never cut apart by a stop, which
    would leave a shard taken that no record names, and so never run."""
    _Deferral.active, _Deferral.pending = True, None
    try:
        yield
    finally:
        _Deferral.active = False
    if _Deferral.pending is not None:
        raise_interrupt(_Deferral.pending, None)


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """The stop signals' handler (`signal.signal(sig, raise_interrupt)`)."""
    if _Deferral.active:
        _Deferral.pending = signum
        return
    for sig in STOP_SIGNALS:  # one stop: a second signal must not cut the final report short
        # A Python handler that does nothing, not SIG_IGN: a signal already caught at the C level (Ctrl-C's
        # SIGINT, then `genfab run`'s SIGTERM) would find SIG_IGN and raise "Signal 15 ignored due to race
        # condition" into the shard's cleanup.
        signal.signal(sig, ignore_signal)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def ignore_signal(signum: int, frame: FrameType | None) -> None:
    """A stop signal after the first: the shard is already stopping."""
