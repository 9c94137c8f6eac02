"""The docs tier builds the site once (`mkdocs build --strict`, as CI and `mkdocs serve` do) for every
test that reads or opens it, and starts Debian's headless Chromium once per module that opens pages."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.browser import chromium, find_chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                           "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def devtools() -> Iterator[str]:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("GENFAB_REQUIRE_BROWSER"):
            pytest.fail("GENFAB_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)")
        pytest.skip("no chromium (apt-get install chromium, or GENFAB_CHROMIUM=/path/to/chromium)")
    with chromium(binary) as endpoint:
        yield endpoint
