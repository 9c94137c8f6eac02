"""What genfab prints reaches a person's terminal as text only: stage names and messages, drop
reasons, log lines, conditions and `producedBy` come from stages and other users, and a control
character in them would be a command to the terminal (an OSC title, a clipboard write, a clear
screen). `shown` makes each one visible as an escape instead; `echo` and `GenfabConsole` (cli.console)
apply it to everything the commands print, at the boundary, so no caller has to remember to."""

from __future__ import annotations

import click

from genfab.contract.text import shown


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` of `text` as `shown` makes it."""
    click.echo(shown(text), err=err, nl=nl)
