"""benchmarks/operator_real_cluster.py runs to its table at its smallest size (a smoke run, not a
measurement: it starts a control plane of its own and the emulator; nothing is written to
benchmarks/results/). Here, not with the other CPU benchmarks (tests/storage), because it needs the real
control plane this tier needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.realcluster.cluster import RealCluster

pytestmark = pytest.mark.realcluster


def test_the_real_cluster_request_benchmark_runs_to_its_table(cluster: RealCluster, tmp_path: Path) -> None:
    results = ROOT / "benchmarks" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.iterdir()}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "operator_real_cluster.py"), "--n", "2",
                           "--namespaces", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "| `PATCH scenejobs` | 1.00 | 1.00 |" in done.stdout, done.stdout[-3000:]
    assert "start-up included: **0**" in done.stdout, done.stdout[-3000:]  # nothing of the operator's refused
    assert {p: p.stat().st_mtime_ns for p in results.iterdir()} == before, "a smoke run wrote to benchmarks/results/"
