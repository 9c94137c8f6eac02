"""`genfab run` at a lab's sizes, on the toy `checksums` pipeline (one cheap sample each, so what is
measured is genfab's own work): the run lists its input once and writes the stage's sample manifest
(each shard reads its slice from it), is killed (SIGKILL, the whole process group) partway, and the same
command resumes it: every sample committed before the kill is reused, none is made again, and the rest
are made once. 1,000 samples in the default run; 50,000 (to the end, in 10 shards) and 1,000,000 (listed, started,
killed, listed again and resumed, then stopped) in the slow tier."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genfab.inventory.manifest import read_manifest
from genfab.storage.local import FileStorage
from tests.helpers import many_files
from tests.toy_pipeline.jobs import ENV, toy_job

pytestmark = pytest.mark.storage


def make_job(tmp: Path, samples: int, shard_size: int) -> Path:
    """The job and its input folder of `samples` files (beyond the first 1,000, hard links: `many_files`)."""
    return toy_job(tmp, "checksums", lambda inputs: many_files(inputs, samples, lambda i: f"f{i:07d}.txt",
                                                               lambda i: b"%d\n" % i), shardSize=shard_size)


def start(path: Path, tmp: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "genfab.cli.main", "run", str(path), "--workers", "2"],
                            cwd=tmp, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def markers(tmp: Path) -> dict[str, int]:
    """Committed samples: marker path -> its modification time (ns)."""
    folder = tmp / "out" / "digests" / "_markers"
    if not folder.exists():
        return {}
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("_SUCCESS.json")}


def wait_for(what: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def reports(tmp: Path) -> list[dict[str, object]]:
    folder = next((tmp / "out" / "_genfab" / "progress" / "digest").iterdir())
    return [json.loads(p.read_text()) for p in sorted(folder.glob("shard-*.json"))]


@pytest.mark.parametrize(("samples", "shard_size", "to_the_end"), [
    (1_000, 250, True),
    pytest.param(50_000, 5_000, True, marks=pytest.mark.slow),
    pytest.param(1_000_000, 50_000, False, marks=pytest.mark.slow),
])
def test_a_big_local_run_lists_once_and_resumes_after_a_kill_with_no_sample_made_twice(
        tmp_path: Path, samples: int, shard_size: int, to_the_end: bool) -> None:
    path = make_job(tmp_path, samples, shard_size)
    first = start(path, tmp_path)
    try:
        wait_for("a tenth of the samples committed", lambda: len(markers(tmp_path)) >= min(samples // 10, 2000),
                 timeout=max(120, samples / 2000))
    finally:
        kill(first)
    before = markers(tmp_path)
    run = FileStorage(f"file://{tmp_path}/out", tmp_path / "out")
    stage_hash = next((tmp_path / "out" / "_genfab" / "samples" / "digest").iterdir()).name
    manifest = json.loads((tmp_path / "out" / "_genfab" / "samples" / "digest" / stage_hash / "manifest.json")
                          .read_text())
    assert manifest["count"] == samples and len(manifest["parts"]) == -(-samples // 10_000)
    assert read_manifest(run, "digest", manifest["config_hash"]).count == samples

    second = start(path, tmp_path)
    try:
        if to_the_end:
            assert second.wait(max(300, samples / 200)) == 0
        else:  # listed again, started, and reusing what the first run committed: enough here
            wait_for("the resumed run's shards reusing committed samples",
                     lambda: sum(int(r.get("reused", 0)) for r in _safe(reports, tmp_path)) >= 100, timeout=600)
    finally:
        if second.poll() is None:
            kill(second)
    after = markers(tmp_path)
    remade = [m for m, t in before.items() if after.get(m) != t]
    assert not remade, f"{len(remade)} committed samples made again, e.g. {remade[:3]}"
    if to_the_end:
        assert len(after) == samples
        final = reports(tmp_path)
        assert sum(int(r["reused"]) for r in final) == len(before)  # type: ignore[call-overload]
        assert sum(len(r["succeeded"]) for r in final) == samples  # type: ignore[arg-type]
        status = json.loads((tmp_path / "out" / "_genfab" / "status.json").read_text())["status"]
        assert status["phase"] == "Succeeded" and status["stages"][0]["samples"]["succeeded"] == samples


def _safe(fn, tmp: Path) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    try:
        return fn(tmp)  # type: ignore[no-any-return]
    except (OSError, ValueError, StopIteration):  # a report being replaced, or none yet
        return []
