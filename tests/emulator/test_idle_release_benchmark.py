"""benchmarks/idle_release.py at its smallest size (the emulator tier, where its operators run): it runs to
its table, both modes make every sample, and the release holds fewer waiting worker-seconds."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.emulator


def test_the_idle_release_benchmark_runs_to_its_table() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/idle_release.py"), "--samples", "6", "--shard-size",
                           "2", "--parallelism", "2", "--seconds", "0.05,0.05,0.05", "--straggler", "1",
                           "--straggler-seconds", "4", "--release-seconds", "0.3"],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(re.findall(r"^\| (release|no release) \| [^|]+ \| ([\d.]+) \|", done.stdout, re.M))
    assert set(rows) == {"release", "no release"}, done.stdout
    assert float(rows["release"]) < float(rows["no release"]), done.stdout
    assert "release / no release" in done.stdout and "| 6 |" in done.stdout
