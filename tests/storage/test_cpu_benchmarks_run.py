"""Every CPU benchmark script runs, at its smallest size, to its table: a results file under
benchmarks/results/ must never outlive the code that made it (benchmarks/big_jobs.py crashed at its summary
step for a round, unnoticed, once the summary became a model). A smoke run, not a measurement: seconds
each, nothing written to benchmarks/results/ (no `--write`). The GPU scripts are checked by
tests/unit/test_benchmark_imports.py and run on the GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

SMOKE: dict[str, tuple[list[str], str]] = {
    "big_jobs.py": (["--sizes", "200"], "| step |"),
    "report_scale.py": (["--samples", "20"], "pictured"),
    "storage.py": (["--small", "50", "--large-mib", "8", "--workers", "4"], "x"),
    "bounded_json.py": (["--mb", "0.5", "--levels", "300", "--repeat", "1"], "/ json.loads"),
    "relighting.py": (["--images", "1"], "**speed-up**"),
    "mask_quality.py": (["--backends", "selfie"], "| selfie | 4 | 4 | 0 |"),
    "large_inputs.py": (["--side", "1024"], "ratio (baseline / working)"),
    "difix_export.py": (["--scenes", "1", "--frames", "4", "--size", "64x48"], "vs plain loop"),
    "reference_object.py": (["cv", "--images", "2", "--size", "96", "--count", "1", "--workers", "1"], "|"),
    "quality_cost.py": (["--repeat", "1"], "of segment's per-sample time"),
    "relighting_gpu.py": (["--tiny", "--images", "2", "--side", "64", "--workers", "1", "--work", "{tmp}/work"],
                          "| segment (SAM3) | plain loop |"),
    "tuning.py": (["--tiny", "--sizes", "64x64", "--steps", "2", "--warmup", "1", "--gpus", "0"], "|"),
    "flops.py": (["count", "--models", "flux-fill"], "TFLOP per step"),
    "operator_scale.py": (["--n", "5", "--workers", "2", "--floor"], "|"),
    "streaming.py": (["--samples", "8", "--shard-size", "2", "--parallelism", "2", "--seconds", "0.05,0.05,0.05"],
                     "streaming / barrier"),
    "worker_records.py": (["--shards", "1000"], "| before / now |"),
    "duplicates.py": (["--sizes", "3000", "--baseline-max", "3000"], "every pair / multi-index"),
}
"""Script -> (its smallest arguments, `{tmp}` the test's folder; a piece of its table that a finished run
prints)."""

GPU_ONLY = {"gaussians.py", "gaussians_simple_trainer.py", "gaussians_profile.py", "gaussians_schedule.py",
            "vistadream.py", "vistadream_coarse.py", "vistadream_e2e.py", "vistadream_lab.py", "worldexplorer.py",
            "worldexplorer_stages.py",
            "flux_blocks.py", "research_adapters.py", "seva_speed.py", "compile_cache.py", "gpu_busy.py",
            "operator_floor.py"}
"""Scripts that need CUDA (or, operator_floor.py, run only by operator_scale.py --floor, smoked above)."""
SMOKED_ELSEWHERE = {"operator_real_cluster.py": "tests/realcluster/test_benchmark_smoke.py",
                    "idle_release.py": "tests/emulator/test_idle_release_benchmark.py"}
"""Scripts smoked by the tier that has what they need (the real control plane)."""


def test_every_benchmark_script_is_smoked_here_or_needs_a_gpu() -> None:
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")}
    known = set(SMOKE) | GPU_ONLY | set(SMOKED_ELSEWHERE)
    assert scripts == known, (scripts - known, known - scripts)
    assert all((ROOT / test).is_file() for test in SMOKED_ELSEWHERE.values())


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_the_cpu_benchmark_runs_to_its_table_at_its_smallest_size(script: str, tmp_path: Path) -> None:
    args, table = SMOKE[script]
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert table in done.stdout, done.stdout[-2000:]
    after = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    assert after == before, "a smoke run wrote to benchmarks/results/"
