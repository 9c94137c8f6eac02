"""`genfab plan` with what a hostile or careless file gives it (issue: a shared cluster, attacked a
third time, L2 and L3): one line and exit 1, never a traceback, a hang or unbounded memory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from genfab.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "datasetjob-relighting.yaml"


def invoke(*args: str, seconds: float = 20.0) -> Result:
    box: dict[str, Result] = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", CliRunner().invoke(cli, list(args))), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"genfab {' '.join(args)} still running after {seconds}s"
    return box["r"]


def test_a_uri_that_looks_like_markup_is_printed_as_written(tmp_path: Path) -> None:
    """L2: rich read `[/]` in an output URI as a closing tag (MarkupError) where validate said valid."""
    text = EXAMPLE.read_text()
    output = next(line for line in text.splitlines() if line.strip().startswith("output:"))
    path = tmp_path / "job.yaml"
    path.write_text(text.replace(output, '  output: "s3://lab-out/team-a/[/]x"'))
    result = invoke("plan", str(path))
    assert result.exit_code == 0, result.output
    assert "[/]x" in result.output.replace("\n", "").replace("│", "").replace(" ", "")
    since = invoke("plan", str(path), "--since", str(path))
    assert since.exit_code == 0, since.output


@pytest.mark.parametrize("make", ["fifo", "dev-zero"])
def test_a_special_file_is_one_line_not_a_hang(tmp_path: Path, make: str) -> None:
    """L3: the size was checked with st_size (0 for /dev/zero: MemoryError; a FIFO: blocked forever)."""
    special = tmp_path / "since.yaml"
    if make == "fifo":
        os.mkfifo(special)
    else:
        special.symlink_to("/dev/zero")
    for args in (("plan", str(EXAMPLE), "--since", str(special)), ("plan", str(special)), ("validate", str(special))):
        result = invoke(*args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        kind = "a FIFO" if make == "fifo" else "a character device"
        assert f"{special}: (file): cannot read: it is {kind}, not a regular file" in result.output, result.output


def test_a_file_past_the_bound_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(2 << 30)  # sparse: 2 GiB of zeros that cost no disk
    result = invoke("plan", str(big))
    assert result.exit_code == 1 and "too large for a resource file (at most 3 MiB" in result.output
