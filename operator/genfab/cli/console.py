"""genfab's rich console: output piped into a reader that stops early (`| head`) raises
`BrokenPipeError` to the command, which stops what it does cleanly (`genfab run` stops its shards
and writes its status), instead of rich's default of exiting at once with code 1."""

from __future__ import annotations

import errno

from rich.console import Console

from genfab.local.interrupts import quiet_stdout


class GenfabConsole(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True
        quiet_stdout()
        raise BrokenPipeError(errno.EPIPE, "stdout closed")
