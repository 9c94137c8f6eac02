"""`genfab run`'s shared workers (genfab.planner.sharing, genfab.stages.runtime.shared) on the toy
`checksum-shared` pipeline (`checksum-chain`'s two stages declared to share a worker) and the real stage
runtime: one process sets up and runs both stages' shards, each shard with its own log, report and
attempts; the plan shows the group; a shard that fails ends the worker, and its next attempt runs in a new
one, as with a warm worker of one stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.toy_pipeline.jobs import ENV, files, toy_job

pytestmark = pytest.mark.storage


def run(tmp: Path, contents: list[bytes], *args: str, env: dict[str, str] | None = None,
        **spec: object) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    path = toy_job(tmp, "checksum-shared", files(contents), retries=1, **spec)
    done = subprocess.run([sys.executable, "-m", "genfab.cli.main", "run", str(path), "--workers", "3", *args],
                          cwd=tmp, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=180)
    status = json.loads((tmp / "out" / "_genfab" / "status.json").read_text())["status"]
    return done, {s["name"]: s for s in status["stages"]}


def test_two_stages_that_share_a_worker_run_in_one_process_each_shard_on_its_own(tmp_path: Path) -> None:
    setups = tmp_path / "setups.txt"
    done, stages = run(tmp_path, [b"%d\n" % i for i in range(6)], env={"GENFAB_TEST_SETUPS": str(setups)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(s["phase"], s["samples"]["succeeded"]) for s in stages.values()] == [("Succeeded", 6), ("Succeeded", 6)]
    loads = setups.read_text().split("\n")
    digest_pids = {line for line in loads if line and not line.startswith("upper")}
    upper_pids = {line.split()[1] for line in loads if line.startswith("upper")}
    assert len(digest_pids) == 1 and upper_pids == digest_pids  # one process set up both stages, once each
    for stage, index in (("digest", 0), ("upper", 2)):  # each shard's lines in its own log
        log = (tmp_path / f"out/_genfab/logs/{stage}/shard-{index:05d}.log").read_text()
        assert log.startswith("--- attempt 1 at") and f'"stage": "{stage}"' in log and f'"shard": {index},' in log
    for i in range(6):
        digest = (tmp_path / "out" / "digests" / f"f{i:03d}.txt").read_text()
        assert (tmp_path / "out" / "uppers" / f"f{i:03d}.txt").read_text() == digest.upper()


def test_the_plan_says_which_stages_share_a_worker(tmp_path: Path) -> None:
    path = toy_job(tmp_path, "checksum-shared", files([b"1\n", b"2\n"]))
    done = subprocess.run([sys.executable, "-m", "genfab.cli.main", "plan", str(path)], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "shared worker: digest, upper run in one warm worker that loads nothing (a test pipeline) once" in \
        " ".join(done.stdout.split())


def test_a_crash_ends_the_shared_worker_and_the_shard_runs_again_in_a_new_one(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    done, stages = run(tmp_path, [b"%d\n" % i for i in range(3)] + [b"CRASH\n"], shardSize=1,
                       env={"GENFAB_TEST_LEDGER": str(ledger)})
    assert done.returncode == 1, done.stdout + done.stderr  # the crashing sample's shard fails after its retry
    digest = stages["digest"]
    assert (digest["phase"], digest["samples"]["succeeded"], digest["shards"]["failed"]) == ("Failed", 3, 1), digest
    tries = [line.split()[0] for line in ledger.read_text().splitlines() if line.endswith("f003")]
    assert len(tries) == 2 and tries[0] != tries[1]  # two attempts, each in a process of its own
    assert "upstream stage failed" in stages["upper"]["message"]
