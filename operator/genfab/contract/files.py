"""Reading a local file a user or tenant named, without ever waiting on it or reading without end:
regular files only (a FIFO, a device or a socket is refused with one line: `O_NONBLOCK` makes opening
a FIFO return at once, and `/dev/zero` is a device), and never more than a bound."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class NotRegularFile(OSError):
    """The path names something other than a regular file (`strerror` says what)."""


def special_kind(mode: int) -> str:
    """What a non-regular file is, for a one-line refusal."""
    return next((what for test, what in _SPECIAL if test(mode)), "not a regular file")


def open_regular(path: str | Path, flags: int = 0) -> int:
    """A read-only descriptor of the regular file at `path` (extra open `flags`, e.g. O_NOFOLLOW);
    NotRegularFile for anything else, without blocking on it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(0, f"it is {special_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class TooLarge(ValueError):
    """The file is larger than its reader's bound."""


def read_regular(path: str | Path, limit: int) -> bytes:
    """The content of the regular file at `path`, at most `limit` bytes (TooLarge beyond, having read
    no more than `limit` + 1); OSError (NotRegularFile among them) when it cannot be read."""
    with os.fdopen(open_regular(path), "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"larger than {limit} bytes")
    return data
