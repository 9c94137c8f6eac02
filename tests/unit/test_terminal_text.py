"""Text from stages shown safely: every terminal control character escaped, tabs and newlines kept;
a drop reason that is not a name recorded as InvalidReason with the given one escaped."""

from __future__ import annotations

import pytest

from genfab.contract.text import reason_name, shown


@pytest.mark.parametrize(("text", "expected"), [
    ("plain text, ünïcödé, 日本", "plain text, ünïcödé, 日本"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC title
    ("\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),  # OSC 52: a clipboard write
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen, cursor home
    ("\x9b31m", "\\x9b31m"),  # the one-byte CSI
    ("over\rwrite\b\x7f", "over\\x0dwrite\\x08\\x7f"),
    ("\u202eevil\u2066", "\\u202eevil\\u2066"),  # bidi overrides
])
def test_shown(text: str, expected: str) -> None:
    assert shown(text) == expected


@pytest.mark.parametrize(("reason", "expected"), [
    ("Unreadable", ("Unreadable", "m")),
    ("QualityOutOfRange", ("QualityOutOfRange", "m")),
    ("model.v2-failure_x", ("model.v2-failure_x", "m")),
    ("Bad\x1b]0;x\x07", ("InvalidReason", "reason 'Bad\\\\x1b]0;x\\\\x07' is not a name; m")),
    ("", ("InvalidReason", "reason '' is not a name; m")),
    ("two words", ("InvalidReason", "reason 'two words' is not a name; m")),
    ("x" * 65, ("InvalidReason", f"reason '{'x' * 65}' is not a name; m")),
])
def test_reason_name(reason: str, expected: tuple[str, str]) -> None:
    assert reason_name(reason, "m") == expected
