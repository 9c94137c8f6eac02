"""`genfab run`'s warm workers (genfab.local.workers), on the toy `checksums` pipeline and the real stage
runtime: a built-in stage's process loads once and runs shard after shard, each shard keeps its own log,
report and attempts; a worker killed mid-shard costs that shard one attempt and nothing else; a poisoned
sample is dropped alone while its worker goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.toy_pipeline.jobs import ENV, files, toy_job

pytestmark = pytest.mark.storage


def make_job(tmp: Path, contents: list[bytes]) -> Path:
    return toy_job(tmp, "checksums", files(contents), shardSize=1, retries=1, continueOnError=True)


def start(tmp: Path, path: Path, env: dict[str, str], workers: int = 2) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "genfab.cli.main", "run", str(path), "--workers", str(workers)],
                            cwd=tmp, env={**ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def reports(tmp: Path) -> dict[int, dict[str, object]]:
    folder = next((tmp / "out" / "_genfab" / "progress" / "digest").iterdir())
    return {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("shard-*.json")}


def status(tmp: Path) -> dict[str, object]:
    doc = json.loads((tmp / "out" / "_genfab" / "status.json").read_text())
    return dict(next(s for s in doc["status"]["stages"] if s["name"] == "digest"))


def test_a_worker_loads_once_and_runs_shard_after_shard_each_with_its_own_log_and_report(tmp_path: Path) -> None:
    path = make_job(tmp_path, [b"%d\n" % i for i in range(9)])
    setups = tmp_path / "setups.txt"
    run = start(tmp_path, path, {"GENFAB_TEST_SETUPS": str(setups)})
    out = run.communicate(timeout=120)[0].decode()
    assert run.returncode == 0, out
    assert status(tmp_path)["samples"] == {"total": 9, "succeeded": 9, "failed": 0}
    loads = lines(setups)
    assert 1 <= len(loads) <= 2 and len(set(loads)) == len(loads)  # once per worker, two workers at most
    by_shard = reports(tmp_path)
    assert sorted(by_shard) == list(range(9)) and all(r["state"] == "succeeded" for r in by_shard.values())
    # the load is the cost of the shard that paid it: one report per worker says it
    assert sum(r.get("model_load_seconds") is not None for r in by_shard.values()) == len(loads)
    for i in range(9):  # each shard's lines in its own log, as when a process ran only it
        log = (tmp_path / f"out/_genfab/logs/digest/shard-{i:05d}.log").read_text()
        assert log.startswith("--- attempt 1 at") and f'"shard": {i},' in log
        assert all(f'"shard": {j},' not in log for j in range(9) if j != i)


def test_a_worker_killed_mid_shard_costs_that_shard_one_attempt_and_loses_or_repeats_nothing(tmp_path: Path) -> None:
    path = make_job(tmp_path, [b"%d\n" % i for i in range(8)])
    setups, ledger = tmp_path / "setups.txt", tmp_path / "ledger.txt"
    run = start(tmp_path, path, {"GENFAB_TEST_SETUPS": str(setups), "GENFAB_TEST_LEDGER": str(ledger),
                                 "GENFAB_TEST_SLEEP": "0.25"}, workers=1)
    deadline = time.monotonic() + 60
    while len(lines(ledger)) < 2 * 3 and time.monotonic() < deadline:  # the third sample started: mid-shard
        time.sleep(0.05)
    victim = int(lines(setups)[0])
    os.kill(victim, signal.SIGKILL)
    out = run.communicate(timeout=120)[0].decode()
    assert run.returncode == 0, out
    assert status(tmp_path)["samples"] == {"total": 8, "succeeded": 8, "failed": 0}
    made = Counter(lines(ledger)[1::2])
    assert set(made) == {f"f{i:03d}" for i in range(8)}
    assert sorted(made.values()) == [1] * 7 + [2]  # only the sample in flight at the kill is started again
    assert len(lines(setups)) == 2  # the killed worker's replacement loaded once, for every shard left
    retried = [i for i in range(8)
               if "--- attempt 2" in (tmp_path / f"out/_genfab/logs/digest/shard-{i:05d}.log").read_text()]
    assert len(retried) == 1


def test_a_poisoned_sample_is_dropped_alone_and_its_worker_goes_on(tmp_path: Path) -> None:
    contents = [b"%d\n" % i for i in range(6)]
    contents[2] = b"POISON\n"
    path = make_job(tmp_path, contents)
    setups = tmp_path / "setups.txt"
    run = start(tmp_path, path, {"GENFAB_TEST_SETUPS": str(setups)}, workers=1)
    out = run.communicate(timeout=120)[0].decode()
    assert run.returncode == 0, out
    assert status(tmp_path)["samples"] == {"total": 6, "succeeded": 5, "failed": 1}
    assert len(lines(setups)) == 1  # one worker did all six shards, the poisoned one among them
    assert reports(tmp_path)[2]["failed"][0]["reason"] == "BadContent"
