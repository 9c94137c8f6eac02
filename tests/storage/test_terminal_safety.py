"""Nothing a stage writes drives the terminal of the person who runs or inspects it: a custom stage
prints escape sequences everywhere it can (stdout, stderr, log records, notes, producedBy, a drop's
reason and message), and `genfab run`, `genfab status` and `genfab logs`, each on a real pseudo-terminal,
put no control sequence on it but rich's own (colours, and its progress display's cursor moves and
line erases): no OSC (title, clipboard), no clear screen, no C1 control, no bell, no bidi override; the
payload is shown escaped instead. The drop's reason is recorded as
`InvalidReason` with the given one escaped in its message."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT

HOSTILE = ROOT / "tests" / "fixtures" / "hostile_stage.py"
RICH_OWN = re.compile(rb"\x1b\[\??[0-9;]*[mKAGhl]")
"""What rich itself writes to a terminal: SGR colours, cursor up / to a column, erase in line, and
showing and hiding the cursor."""


def on_a_terminal(args: list[str], cwd: Path, timeout: float = 180) -> tuple[int, bytes]:
    """`python -m genfab.cli.main ARGS` with stdout and stderr on a pseudo-terminal: its exit code and
    every byte the terminal received."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", "")),
           "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "genfab.cli.main", *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    received = b""
    while True:
        ready, _, _ = select.select([primary], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError(f"{args}: no output for {timeout} s: {received[-2000:]!r}")
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        received += chunk
    os.close(primary)
    return proc.wait(timeout=30), received


def test_no_control_sequence_reaches_the_terminal_from_run_status_or_logs(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"img_{i}.png").write_bytes(b"pixels")
    out = tmp_path / "out"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({
        "apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "hostile"},
        "spec": {"type": "relighting", "output": f"file://{out}", "continueOnError": True, "onlyStages": ["segment"],
                 "relighting": {"input": {"uri": f"file://{inputs}"}},
                 "customStages": [{"name": "segment", "image": "example.org/hostile:1",
                                   "command": ["python", str(HOSTILE)]}]}}))
    for args in (["run", "job.yaml", "--workers", "1"], ["status", str(out)], ["logs", str(out)]):
        code, received = on_a_terminal(args, tmp_path)
        assert code in (0, 1), (args, code, received[-3000:])
        left = RICH_OWN.sub(b"", received)
        assert b"\x1b" not in left and b"\x07" not in left and "\x9b".encode() not in left, (args, left[-3000:])
        assert "\u202e".encode() not in left and b"\r\x1b" not in left
        if args[0] == "logs":  # the raw lines and the records' fields: shown, escaped
            assert left.count(b"\\x1b]0;pwned") >= 6, left[-3000:]
    status = json.loads((out / "_genfab/status.json").read_text())["status"]
    stage = next(s for s in status["stages"] if s["name"] == "segment")
    dropped = (out / "_genfab/dropped_samples.csv").read_text()
    assert "InvalidReason" in dropped and "\x1b" in dropped  # the file keeps what was said; terminals do not
    assert stage["samples"] == {"total": 3, "succeeded": 2, "failed": 1}
