"""genfab's rich console: what it prints has its terminal control characters shown as escapes
(`cli.terminal.shown`: text from stages and other users never drives the terminal; rich's own style
codes are not text and stay), and output piped into a reader that stops early (`| head`) raises
`BrokenPipeError` to the command, which stops what it does cleanly (`genfab run` stops its shards
and writes its status), instead of rich's default of exiting at once with code 1."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment

from genfab.contract.text import shown
from genfab.local.interrupts import quiet_stdout


class GenfabConsole(Console):
    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # every text segment, whatever renderable it came from (a table cell, a Live display); control
        # segments are rich's own cursor moves
        return super()._render_buffer(segment if segment.control else Segment(shown(segment.text), segment.style)
                                      for segment in buffer)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        quiet_stdout()
        raise BrokenPipeError(errno.EPIPE, "stdout closed")
