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


def marker(tmp: Path, stage_folder: str, sample: str) -> str:
    return str(tmp / "out" / stage_folder / "_markers" / sample)


def test_a_stage_takes_its_upstreams_shards_as_they_finish(tmp_path: Path) -> None:
    # digest's last sample waits until upper committed its first one: only a streaming upper gets there
    done, stages = run_chain(tmp_path, [b"%d\n" % i for i in range(6)],
                             env={"GENFAB_TEST_HOLD": f"f005:{marker(tmp_path, 'uppers', 'f000')}"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(s["phase"], s["samples"]["succeeded"], s["shards"]["total"]) for s in stages.values()] == [
        ("Succeeded", 6, 3), ("Succeeded", 6, 3)]
    digest = (tmp_path / "out" / "digests" / "f004.txt").read_text()
    assert (tmp_path / "out" / "uppers" / "f004.txt").read_text() == digest.upper()


def test_an_upstream_that_fails_while_its_downstream_streams_stops_it(tmp_path: Path) -> None:
    # digest crashes on its last sample once upper committed what it made of digest's third: upper's
    # second shard is stopped mid-shard, and its last report still counts what it committed
    done, stages = run_chain(tmp_path, [b"%d\n" % i for i in range(5)] + [b"CRASH\n"],
                             env={"GENFAB_TEST_UPPER_SLEEP": "1",
                                  "GENFAB_TEST_HOLD": f"f005:{marker(tmp_path, 'uppers', 'f002')}"})
    assert done.returncode == 1
    assert stages["digest"]["phase"] == "Failed" and stages["digest"]["shards"]["failed"] == 1
    upper = stages["upper"]
    assert upper["phase"] != "Succeeded" and "upstream stage failed" in upper["message"]
    assert upper["samples"]["succeeded"] >= 3  # what it made of digest's first shards stays committed
    assert len(list((tmp_path / "out" / "uppers" / "_markers").iterdir())) == upper["samples"]["succeeded"]


def test_with_continue_on_error_the_downstream_streams_the_upstreams_good_samples(tmp_path: Path) -> None:
    contents = [b"%d\n" % i for i in range(6)]
    contents[2] = b"POISON\n"
    done, stages = run_chain(tmp_path, contents, continue_on_error=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (stages["digest"]["phase"], stages["digest"]["samples"]["succeeded"]) == ("PartiallySucceeded", 5)
    assert (stages["upper"]["phase"], stages["upper"]["samples"]) == (
        "Succeeded", {"total": 5, "succeeded": 5, "failed": 0})


def test_genfab_run_shares_no_compile_artifacts_through_the_output(tmp_path: Path) -> None:
    """torch's own caches on the machine keep a compile across the run's processes; artifacts in the
    output are code whoever can write it could place (genfab.stages.runtime.compile_cache)."""
    seen = tmp_path / "compile-cache.txt"
    done, _ = run_chain(tmp_path, [b"1\n", b"2\n"], env={"GENFAB_TEST_COMPILE_CACHE": str(seen)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(seen.read_text().split()) == {"off"}


def test_a_run_takes_every_file_name_the_file_system_allows(tmp_path: Path) -> None:
    """A macOS screenshot's U+202F, a no-break space, an escape: genfab's own listing wrote them into the
    sample manifest and its reader refused them, failing the stage (0 of 5); each is a sample now, and
    what reaches the terminal shows the escape as text."""
    names = ["Screenshot 2026-11-30 at 9.41.12\u202fPM.txt", "menu\u00a0card.txt", "red\x1b[31m.txt"]

    def write(folder: Path) -> None:
        for i, name in enumerate(names):
            (folder / name).write_bytes(b"%d\n" % i)
    path = toy_job(tmp_path, "checksum-chain", write, parallelism=1, retries=0)
    done = subprocess.run([sys.executable, "-m", "genfab.cli.main", "run", str(path), "--workers", "2"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads((tmp_path / "out" / "_genfab" / "status.json").read_text())["status"]
    assert [(s["phase"], s["samples"]["succeeded"]) for s in status["stages"]] == [("Succeeded", 3)] * 2
    assert "\x1b" not in done.stdout + done.stderr
