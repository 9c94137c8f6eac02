"""Text from stages and other users, made safe to show and to file: control characters written out
as escapes (`shown`), and the drop reasons genfab records held to an identifier (`reason_name`)."""

from __future__ import annotations

import re

CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 controls but tab and newline (ESC, BEL, carriage return, backspace ...), DEL, C1 controls (CSI
and OSC have one-byte forms), and the bidirectional overrides that reorder what a line seems to say."""
REASON = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
"""A drop reason: a name (`Unreadable`, `QualityOutOfRange`, a custom stage's own, an exception's class)."""
BAD_REASON = "InvalidReason"


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """`text` with every terminal control character written out as an escape (`\\x1b`, `\\u202e`)."""
    return CONTROLS.sub(_escaped, text)


def reason_name(reason: str, message: str) -> tuple[str, str]:
    """(reason, message) as recorded: a reason that is not a name becomes `InvalidReason`, the one
    given kept (escaped) at the front of the message."""
    if REASON.fullmatch(reason):
        return reason, message
    return BAD_REASON, f"reason {shown(reason[:80])!r} is not a name; {message}"
