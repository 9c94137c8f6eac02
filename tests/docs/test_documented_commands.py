"""Every code block a docs page (or the README) marks runnable runs, in order per page, in a scratch
folder that sees the repository (examples, scripts, the venv) but writes its outputs beside it.

Mark a block with an HTML comment on the line above its fence (GitHub and the site hide it):

    <!-- runnable -->            the docs tier runs it
    <!-- runnable: slow -->      only with --slow (CI), like the slow end-to-end tests

The block runs under `bash -euo pipefail` with the venv's `bin` first on PATH; it passes when it exits 0.
Commands that need a cluster, a GPU, a network or minutes of set-up are left unmarked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- runnable(?::\s*(?P<flags>[a-z ,]+))? -->$", re.M)
BLOCK = re.compile(r"```(?:bash|sh)\n(?P<body>.*?)\n```", re.S)
LEFT_OUT = {".git", "genfab-runs", "genfab-models", "site", ".venv"}
"""Not linked into the scratch folder: what the commands write, and the venv (linked to this one)."""


def runnable_blocks(text: str) -> list[tuple[set[str], str]]:
    """(flags, body) of each marked block; a marker not directly above a bash fence is an error."""
    blocks = []
    for marker in MARKER.finditer(text):
        block = BLOCK.match(text, marker.end() + 1)
        assert block is not None, f"'{marker[0]}' is not directly above a ```bash block"
        blocks.append(({f.strip() for f in re.split(r"[ ,]+", marker["flags"] or "") if f.strip()}, block["body"]))
    return blocks


def pages() -> dict[str, list[tuple[set[str], str]]]:
    found = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        blocks = runnable_blocks(page.read_text())
        if blocks:
            found[str(page.relative_to(ROOT))] = blocks
    return found


PAGES = pages()


@pytest.mark.parametrize("page", [
    pytest.param(page, marks=[pytest.mark.slow] if any("slow" in flags for flags, _ in blocks) else [])
    for page, blocks in sorted(PAGES.items())])
def test_the_runnable_commands_of_a_page_run(page: str, tmp_path: Path) -> None:
    for entry in ROOT.iterdir():
        if entry.name not in LEFT_OUT:
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {**os.environ, "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    for _, body in PAGES[page]:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (f"{page}: exit {done.returncode}\n{body}\n--- stdout\n{done.stdout[-3000:]}"
                                      f"\n--- stderr\n{done.stderr[-3000:]}")


def test_the_docs_mark_their_commands_and_a_stray_marker_is_an_error() -> None:
    assert "docs/get-started/command-line.md" in PAGES
    assert any("slow" in flags for flags, _ in PAGES["docs/get-started/quickstart.md"])
    assert runnable_blocks("<!-- runnable -->\n```bash\ntrue\n```\n") == [(set(), "true")]
    with pytest.raises(AssertionError, match="not directly above"):
        runnable_blocks("<!-- runnable -->\n\nsome prose\n```bash\ntrue\n```\n")
