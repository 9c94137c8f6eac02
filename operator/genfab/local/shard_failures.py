"""Why a local shard process failed, in one line for the console and the stage's status: what the
stage said (its termination message), else the last error its log holds (a JSON `error` line, or a
Python exception's last line when it died before its runtime started)."""

from __future__ import annotations

import json
import re
from pathlib import Path

MAX_REASON = 300
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*)(?:Error|Exception|Interrupt)\b.*")
ATTEMPT_MARK = "--- attempt "


def failure_reason(termination: str | None, log: str) -> str:
    """The first of: the termination message's `message`; the last `error` JSON line of the latest
    attempt in `log`; the last exception line or `genfab.stages:` line there. "" when none."""
    if termination:
        try:
            message = str(json.loads(termination).get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        if message:
            return _short(message)
    attempt = log.rsplit(ATTEMPT_MARK, 1)[-1]
    found = ""
    for line in attempt.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "critical") and entry.get("msg"):
                found = str(entry["msg"])
        elif line.startswith("genfab.stages: ") or EXCEPTION_LINE.match(line):
            found = line.removeprefix("genfab.stages: ")
    return _short(found)


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


TAIL_BYTES = 64 << 10
"""Of a shard's log, the end is read: the latest attempt's last lines say why it ended."""


def read_text(path: Path, tail: int | None = None) -> str:
    """A local file's text (its last `tail` bytes), "" when it is missing or unreadable."""
    try:
        with path.open("rb") as f:
            if tail is not None:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - tail))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
