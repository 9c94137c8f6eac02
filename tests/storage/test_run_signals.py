"""However `genfab run` is stopped, nothing of it stays running: SIGINT, SIGTERM and SIGHUP to the
runner alone, and its stdout closing (`| head`), stop every shard, the shard's worker pool (the
forkserver and its workers) and the resource tracker, and leave a status whose phase, conditions
and stages agree, with the lease released; SIGKILL of the runner leaves no process within seconds.
Every process of a run carries a marker in its environment, so the test counts them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT
from tests.storage.relighting_inputs import PORTRAITS

MARK = "GENFAB_TEST_RUN_MARK"
"""An environment variable every process of the run inherits (shards, forkserver, workers, tracker)."""


def marked(mark: str) -> list[str]:
    """`pid cmdline` of every live process whose environment carries `mark`."""
    found = []
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if "zombie" not in state:
                    found.append(f"{entry.name} {command}")
        except (OSError, StopIteration):
            continue
    return found


def wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


def start(tmp_path: Path, stdout: int | None = subprocess.PIPE) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A classical relighting run of 12 portraits in one shard with a pool of two workers, stopped by
    the test once the pool is up (the forkserver and its workers exist)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(3):
        for picture in sorted(PORTRAITS.glob("*.*g")):
            (inputs / f"{picture.stem}_{i}{picture.suffix}").write_bytes(picture.read_bytes())
    out = tmp_path / "out"
    doc = {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "signals"},
           "spec": {"type": "relighting", "output": f"file://{out}", "shardSize": 12,
                    "relighting": {"input": {"uri": f"file://{inputs}"},
                                   "segmentation": {"backends": ["classical"]},
                                   "degradation": {"softShading": {"normals": "classical"}}}}}
    (tmp_path / "job.yaml").write_text(json.dumps(doc))
    mark = uuid.uuid4().hex
    paths = os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", ""))
    env = {**os.environ, "PYTHONPATH": paths, MARK: mark, "GENFAB_CPU_WORKERS": "2"}
    process = subprocess.Popen([sys.executable, "-m", "genfab.cli.main", "run", str(tmp_path / "job.yaml")],
                               cwd=tmp_path, env=env, stdout=stdout, stderr=subprocess.PIPE,
                               start_new_session=True)
    # The runner, its shard, the forkserver, two workers and the resource tracker; the shard past its
    # setup, so its pool is whole (a stop during the pool's own start is not what this file tests).
    assert wait_for(lambda: sum("forkserver" in p for p in marked(mark)) >= 1 and len(marked(mark)) >= 5
                    and "setup done" in shard_logs(out), 60), (marked(mark), shard_logs(out)[-2000:])
    return process, mark, out


def shard_logs(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((out / "_genfab" / "logs").rglob("*.log"))) \
        if (out / "_genfab" / "logs").is_dir() else ""


def stopped_status(out: Path) -> dict[str, Any]:
    status: dict[str, Any] = json.loads((out / "_genfab" / "status.json").read_text())["status"]
    return status


def assert_consistent(status: dict[str, Any], why: str, mid_stage: bool = True) -> None:
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Failed"
    assert conditions["Running"]["status"] == "False"
    assert conditions["Failed"]["status"] == "True" and conditions["Failed"]["reason"] == "Interrupted"
    assert why in conditions["Failed"]["message"] and "run the same command again" in conditions["Failed"]["message"]
    assert not any(s["phase"] == "Running" for s in status["stages"])
    interrupted = [s for s in status["stages"] if s.get("reason") == "Interrupted"]
    assert interrupted or not mid_stage
    assert all(s["phase"] == "Failed" and s["shards"]["active"] == 0 for s in interrupted)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_to_the_runner_stops_every_process_and_leaves_a_consistent_status(
        tmp_path: Path, sig: signal.Signals, code: int) -> None:
    process, mark, out = start(tmp_path)
    process.send_signal(sig)  # the runner alone, as `kill` or `timeout` sends it
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err.decode()
    assert err.decode().strip().splitlines()[-1] == (
        f"genfab run: interrupted by {sig.name}; run the same command again to continue (file://{out})")
    assert "Traceback" not in err.decode()
    assert wait_for(lambda: not marked(mark), 5), marked(mark)
    assert_consistent(stopped_status(out), sig.name)
    assert json.loads((out / "_genfab" / "lease.json").read_text())["expires_at"] == 0  # released
    # the runner stopped its shard with SIGTERM: the shard says so with the shell's code for it
    assert clean_logs(out) == [143], clean_logs(out)


def clean_logs(out: Path) -> list[int]:
    """The shard logs hold no traceback, no "ignored due to race condition" and no resource-tracker
    notice; returns the exit codes the shards logged."""
    text = shard_logs(out)
    for noise in ("Traceback", "race condition", "leaked semaphore", "resource_tracker"):
        assert noise not in text, (noise, text[-3000:])
    return [json.loads(line)["exit"] for line in text.splitlines()
            if line.startswith("{") and json.loads(line).get("msg") == "shard done"]


def test_ctrl_c_to_the_whole_group_leaves_clean_shard_logs(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group: the shard gets SIGINT, then the runner's
    SIGTERM while it is stopping (the second must not become "Signal 15 ignored due to race condition")."""
    process, mark, out = start(tmp_path)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert wait_for(lambda: not marked(mark), 5), marked(mark)
    assert set(clean_logs(out)) <= {130, 143}


def test_a_closed_stdout_stops_the_run_like_a_signal(tmp_path: Path) -> None:
    process, mark, out = start(tmp_path)
    assert process.stdout is not None
    process.stdout.close()  # `genfab run … | head -1` once head has its line: the next print fails
    process.wait(timeout=120)
    err = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == 141, err
    assert "interrupted by stdout closed (broken pipe)" in err and "Traceback" not in err
    assert wait_for(lambda: not marked(mark), 5), marked(mark)
    # The print that fails is a stage's end line: the next stage may not have started yet.
    assert_consistent(stopped_status(out), "broken pipe", mid_stage=False)


def test_sigkill_of_the_runner_leaves_no_process(tmp_path: Path) -> None:
    process, mark, out = start(tmp_path)
    os.kill(process.pid, signal.SIGKILL)  # the runner only: its shard, pool and tracker must follow
    process.wait(timeout=10)
    assert wait_for(lambda: not marked(mark), 5), marked(mark)
    clean_logs(out)  # the killed pool's semaphores: the tracker's cleanup, not a notice in the log
    # `genfab status` says the run is gone, not Running
    shown = subprocess.run([sys.executable, "-m", "genfab.cli.main", "status", str(out)], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               str(ROOT / p) for p in ("operator", "stages", ""))}, timeout=60)
    first = shown.stdout.splitlines()[0]
    assert first.startswith("DatasetJob/signals: Stopped: the run of DatasetJob/signals by ") and \
        f"(pid {process.pid} on " in first and "run the same `genfab run` again" in first, shown.stdout


@pytest.mark.parametrize("args", [["validate", "examples/datasetjob-relighting.yaml"],
                                  ["plan", "examples/datasetjob-relighting.yaml"], ["--help"]])
def test_any_command_whose_reader_is_gone_exits_quietly_with_the_shells_code(args: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # `| head -1` that already has its line: every write fails
    paths = os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", ""))
    done = subprocess.run([sys.executable, "-m", "genfab.cli.main", *args], stdout=write, stderr=subprocess.PIPE,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": paths}, timeout=60, text=True)
    os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
