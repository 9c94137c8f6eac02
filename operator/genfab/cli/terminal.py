"""What genfab prints reaches a person's terminal as text only: stage names and messages, drop
reasons, log lines, conditions and `producedBy` come from stages and other users, and a control
character in them would be a command to the terminal (an OSC title, a clipboard write, a clear
screen). `shown` makes each one visible as an escape instead; `echo` and `GenfabConsole` (cli.console)
apply it to everything the commands print, at the boundary, so no caller has to remember to."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from genfab.contract.text import shown


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` of `text` as `shown` makes it."""
    click.echo(shown(text), err=err, nl=nl)


MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError, RecursionError, UnicodeError,
             OverflowError)
"""What reading a run's documents raises when they are not what genfab writes (a value of the wrong
type, a missing key, text that is not a number): such a document gives one line, never a traceback."""
F = TypeVar("F", bound=Callable[..., Any])


def fail(command: str, message: str, code: int = 2) -> NoReturn:
    """End `genfab COMMAND` with one line on stderr and the README's exit code (2: refused before any
    work; bad input that was read is exit 1, said where it is read)."""
    echo(f"genfab {command}: {message}", err=True)
    sys.exit(code)


def malformed_is_one_line(command: str) -> Callable[[F], F]:
    """Decorate a command that reads a run's documents: what MALFORMED raises inside it ends the command
    with one line and exit 2."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MALFORMED as exc:
                echo(f"genfab {command}: the run's records are not what genfab writes ({type(exc).__name__}: "
                     f"{' '.join(str(exc).split())[:200]})", err=True)
                sys.exit(2)
        return inner  # type: ignore[return-value]
    return wrap
