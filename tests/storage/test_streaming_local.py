"""`genfab run` streams between stages (genfab.planner.streaming) on the toy `checksum-chain` pipeline and the
real stage runtime: `upper` takes `digest`'s shards as they finish, so both run together; an upstream that
fails while its downstream streams stops the downstream (what it committed stays), and with
`continueOnError` the downstream goes on with the upstream's good samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.toy_pipeline.jobs import ENV, files, toy_job

pytestmark = pytest.mark.storage


def run_chain(tmp: Path, contents: list[bytes], continue_on_error: bool = False,
              env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    path = toy_job(tmp, "checksum-chain", files(contents), parallelism=1, retries=0,
                   continueOnError=continue_on_error)
    done = subprocess.run([sys.executable, "-m", "genfab.cli.main", "run", str(path), "--workers", "2"],
                          cwd=tmp, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=180)
    status = json.loads((tmp / "out" / "_genfab" / "status.json").read_text())["status"]
    return done, {s["name"]: s for s in status["stages"]}


def times(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        stage, _, rest = line.partition(":")
        out.setdefault(stage, []).append(float(rest.split()[0]))
    return out


def test_a_stage_takes_its_upstreams_shards_as_they_finish(tmp_path: Path) -> None:
    log = tmp_path / "times.txt"
    done, stages = run_chain(tmp_path, [b"%d\n" % i for i in range(6)],
                             env={"GENFAB_TEST_SLEEP": "0.5", "GENFAB_TEST_TIMES": str(log)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(s["phase"], s["samples"]["succeeded"], s["shards"]["total"]) for s in stages.values()] == [
        ("Succeeded", 6, 3), ("Succeeded", 6, 3)]
    seen = times(log)
    assert min(seen["upper"]) < max(seen["digest"])  # upper began before digest's last sample: together
    digest = (tmp_path / "out" / "digests" / "f004.txt").read_text()
    assert (tmp_path / "out" / "uppers" / "f004.txt").read_text() == digest.upper()


def test_an_upstream_that_fails_while_its_downstream_streams_stops_it(tmp_path: Path) -> None:
    done, stages = run_chain(tmp_path, [b"%d\n" % i for i in range(5)] + [b"CRASH\n"],
                             env={"GENFAB_TEST_SLEEP": "0.2"})
    assert done.returncode == 1
    assert stages["digest"]["phase"] == "Failed" and stages["digest"]["shards"]["failed"] == 1
    upper = stages["upper"]
    assert upper["phase"] != "Succeeded" and "upstream stage failed" in upper["message"]
    assert upper["samples"]["succeeded"] >= 2  # what it made of digest's first shards stays committed
    assert len(list((tmp_path / "out" / "uppers" / "_markers").iterdir())) == upper["samples"]["succeeded"]


def test_with_continue_on_error_the_downstream_streams_the_upstreams_good_samples(tmp_path: Path) -> None:
    contents = [b"%d\n" % i for i in range(6)]
    contents[2] = b"POISON\n"
    done, stages = run_chain(tmp_path, contents, continue_on_error=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (stages["digest"]["phase"], stages["digest"]["samples"]["succeeded"]) == ("PartiallySucceeded", 5)
    assert (stages["upper"]["phase"], stages["upper"]["samples"]) == (
        "Succeeded", {"total": 5, "succeeded": 5, "failed": 0})
