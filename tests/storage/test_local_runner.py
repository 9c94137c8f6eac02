"""`genfab run` end to end: real subprocesses per shard, the real stage runtime, file:// and s3://."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.storage import S3Settings, Storage, open_storage
from tests.helpers import ROOT, genfab_run
from tests.storage.ledger import LEDGER, inputs, job, status
from tests.storage.s3 import BUCKET


def stages(run: Storage) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status(run)["stages"]}


def markers(run: Storage, stage_dir: str) -> int:
    return sum(o.key.endswith("_SUCCESS.json") for o in run.list(f"{stage_dir}/_markers/"))




def test_custom_stages_run_end_to_end_and_a_failing_sample_is_recorded(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage]) -> None:
    uri, env, run = target
    result = genfab_run(tmp_path, job("ledger", uri, inputs(tmp_path, 5, bad=(3,))), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    st = status(run)
    assert st["phase"] == "PartiallySucceeded"
    by_name = stages(run)
    seg, dig = by_name["segment"], by_name["digest"]
    assert (seg["phase"], seg["samples"], seg["shards"]["total"]) == (
        "PartiallySucceeded", {"total": 5, "succeeded": 4, "failed": 1}, 3)
    assert (dig["phase"], dig["samples"]) == ("Succeeded", {"total": 4, "succeeded": 4, "failed": 0})
    assert by_name["albedo"]["phase"] == "Skipped"
    assert markers(run, "data/stage_1") == 4
    assert run.read_bytes("data/stage_1/img_000.txt").startswith(b"8 ")
    dropped = list(csv.DictReader(io.StringIO(run.read_bytes("_genfab/dropped_samples.csv").decode())))
    assert dropped == [{"stage": "segment", "sample_id": "img_003", "reason": "BadContent",
                        "message": "img_003 starts with FAIL"}]
    summary = json.loads(run.read_bytes("_genfab/summary.json"))
    assert summary["phase"] == "PartiallySucceeded" and summary["dropped"] == 1
    assert "PartiallySucceeded" in result.stdout and "dropped: 1 sample(s)" in result.stdout
    # What made the samples is said in the status, the summary and the output, never left to the plan.
    assert seg["custom"] == {"image": "example.org/ledger:1", "replaces": True}
    assert dig["custom"] == {"image": "example.org/ledger:1", "replaces": False}
    assert "custom" not in by_name["albedo"]
    made = {s["name"]: s["custom"] for s in summary["stages"]}
    assert made["segment"] == {"image": "example.org/ledger:1", "replaces": True, "command": ["python", str(LEDGER)]}
    assert made["albedo"] is None
    said = " ".join(result.stdout.split())
    assert f"segment: made by a custom stage, in place of genfab's own stage: python {LEDGER}" in said
    assert f"digest: made by a custom stage, added by the spec: python {LEDGER}" in said


def test_without_continue_on_error_a_failed_sample_fails_the_run_and_blocks_downstream(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = genfab_run(tmp_path, job("strict", f"file://{out}", inputs(tmp_path, 4, bad=(0,)),
                                      continue_on_error=False))
    assert result.returncode == 1
    run = open_storage(f"file://{out}")
    by_name = stages(run)
    assert by_name["segment"]["phase"] == "Failed" and by_name["segment"]["samples"]["succeeded"] == 3
    assert by_name["digest"]["phase"] == "Pending" and "upstream" in by_name["digest"]["message"]
    failed = {c["type"]: c for c in status(run)["conditions"]}["Failed"]
    assert failed["status"] == "True"


def test_a_crashed_shard_is_retried(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = job("retry", f"file://{out}", inputs(tmp_path, 2), extra_stage=False, retries=1)
    result = genfab_run(tmp_path, doc, env={"GENFAB_TEST_CRASH_ONCE": str(tmp_path / "crashed")})
    assert result.returncode == 0, result.stdout
    assert stages(open_storage(f"file://{out}"))["segment"]["samples"]["succeeded"] == 2
    log = (out / "_genfab/logs/segment/shard-00000.log").read_text()
    assert "--- attempt 2" in log


def test_a_killed_run_resumes_with_only_the_missing_samples(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = job("resume", f"file://{out}", inputs(tmp_path, 12), extra_stage=False, shard_size=3)
    first = genfab_run(tmp_path, doc, env={"GENFAB_TEST_SLEEP": "0.3",
                                           "GENFAB_TEST_LEDGER": str(tmp_path / "first.txt")}, wait=False)
    run = open_storage(f"file://{out}")
    deadline = time.monotonic() + 60
    while markers(run, "data/stage_1") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the runner and every shard process, mid-run
    first.wait()
    done = markers(run, "data/stage_1")
    assert 3 <= done < 12

    second = genfab_run(tmp_path, doc, "--resume", env={"GENFAB_TEST_LEDGER": str(tmp_path / "second.txt")})
    assert second.returncode == 0, second.stdout
    redone = (tmp_path / "second.txt").read_text().split()
    assert len(redone) == 12 - done  # exactly the samples without a marker
    assert markers(run, "data/stage_1") == 12
    seg = stages(run)["segment"]
    assert seg["samples"] == {"total": 12, "succeeded": 12, "failed": 0}
    assert json.loads(run.read_bytes("_genfab/summary.json"))["stages"][0]["reused"] == done


def test_reuse_redoes_deleted_or_changed_outputs_and_verify_catches_same_size_edits(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage]) -> None:
    uri, env, run = target
    doc = job("verify", uri, inputs(tmp_path, 6), extra_stage=False, shard_size=3)
    assert genfab_run(tmp_path, doc, env=env).returncode == 0
    outputs = "data/stage_1/img_{:03d}.txt"
    original = run.read_bytes(outputs.format(2))
    run.delete_prefix(outputs.format(0))                          # deleted
    run.write_bytes(outputs.format(1), b"truncated")              # another size
    run.write_bytes(outputs.format(2), original[:-1] + b"!")      # same size, other content

    ledger = tmp_path / "ledger.txt"
    second = genfab_run(tmp_path, doc, env={**env, "GENFAB_TEST_LEDGER": str(ledger)})
    assert second.returncode == 0, second.stdout + second.stderr
    assert sorted(ledger.read_text().split()) == ["img_000", "img_001"]
    assert "reuse check: 2 sample(s) of segment had missing or changed outputs" in " ".join(second.stdout.split())
    assert run.read_bytes(outputs.format(1)).startswith(b"8 ")
    stage = json.loads(run.read_bytes("_genfab/summary.json"))["stages"][0]
    assert (stage["reused"], stage["redone"], stage["succeeded"]) == (4, 2, 6)

    ledger.unlink()
    third = genfab_run(tmp_path, doc, "--verify", env={**env, "GENFAB_TEST_LEDGER": str(ledger)})
    assert third.returncode == 0, third.stdout + third.stderr
    assert ledger.read_text().split() == ["img_002"]  # only sha256 sees the same-size edit
    assert run.read_bytes(outputs.format(2)) == original


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = job("lease", f"file://{out}", inputs(tmp_path, 6), extra_stage=False, shard_size=3)
    # 1.5 s per sample: the first run still holds the lease when the second (a fresh Python process,
    # seconds to start on a loaded machine) asks for it
    first = genfab_run(tmp_path, doc, env={"GENFAB_TEST_SLEEP": "1.5"}, wait=False)
    deadline = time.monotonic() + 60
    while not (out / "data/stage_1/_markers").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = genfab_run(tmp_path, doc)
    assert second.returncode == 2, second.stdout + second.stderr
    line = " ".join(second.stderr.split())
    assert f"output file://{out} is in use by DatasetJob/lease run by" in line and "lease expires at" in line
    assert len(second.stderr.strip().splitlines()) == 1
    first_out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, first_out
    lease = json.loads((out / "_genfab/lease.json").read_text())
    assert lease["expires_at"] == 0  # released at the end
    assert genfab_run(tmp_path, doc).returncode == 0


@pytest.mark.parametrize(("override", "says", "attempts"), [
    ({"progressDeadlineSeconds": 2}, "NoProgress: shard 0 of stage segment committed no sample for", 2),
    ({"activeDeadlineSeconds": 2}, "DeadlineExceeded: stage ran longer than activeDeadlineSeconds 2", 1),
])
def test_a_hung_shard_is_stopped_at_its_deadline(tmp_path: Path, override: dict[str, int], says: str,
                                                 attempts: int) -> None:
    doc = job("hung", f"file://{tmp_path}/out", inputs(tmp_path, 1), extra_stage=False, retries=1,
              stages={"segment": override})
    started = time.monotonic()
    result = genfab_run(tmp_path, doc, env={"GENFAB_TEST_SLEEP": "60"})
    assert time.monotonic() - started < 40
    assert result.returncode == 1, result.stdout + result.stderr
    assert says in " ".join(result.stderr.split())
    log = (tmp_path / "out/_genfab/logs/segment/shard-00000.log").read_text()
    assert log.count("--- attempt") == attempts


def test_sample_notes_become_the_stage_message(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = job("notes", f"file://{out}", inputs(tmp_path, 3), extra_stage=False, shard_size=2)
    result = genfab_run(tmp_path, doc, env={"GENFAB_TEST_NOTE": "selected 0/10 extra frames: holes too small"})
    assert result.returncode == 0, result.stdout + result.stderr
    segment = stages(open_storage(f"file://{out}"))["segment"]
    assert segment["message"] == "img_000: selected 0/10 extra frames: holes too small (+2 more in the shard reports)"


def test_resume_without_an_earlier_run_is_an_error(tmp_path: Path) -> None:
    result = genfab_run(tmp_path, job("nothing", f"file://{tmp_path}/out", inputs(tmp_path, 1)), "--resume")
    assert result.returncode == 2 and "no earlier run" in result.stderr


def test_unreachable_output_falls_back_to_a_local_folder(tmp_path: Path) -> None:
    env = {"GENFAB_S3_ENDPOINT": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    doc = job("fallback", "s3://lab-datasets/relight", inputs(tmp_path, 2), extra_stage=False)
    result = genfab_run(tmp_path, doc, env=env)
    assert result.returncode == 0, result.stdout
    assert "s3://lab-datasets/relight is not reachable from here" in result.stdout
    assert "writing to file://./genfab-runs/fallback instead" in " ".join(result.stdout.split())
    assert (tmp_path / "genfab-runs/fallback/_genfab/status.json").is_file()


def test_built_in_stages_that_cannot_run_their_settings_are_named(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "scenejob-worldexplorer-tiny.yaml").read_text())
    doc["spec"]["output"] = f"file://{tmp_path}/out"
    block = doc["spec"]["worldexplorer"]
    block["scaffold"] = {"method": "single_image"}  # SEVA's: research code, its own image
    block["seva"] = {}
    block.pop("vggt", None)
    result = genfab_run(tmp_path, doc)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "genfab run: stage scaffold: " in result.stderr and "set worldexplorer.seva.image" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_the_custom_stage_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "genfab.cli.main", "run", "examples/datasetjob-custom-stage.yaml",
           "--out", f"file://{out}"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(p.name for p in (out / "data/stage_1").glob("*.png"))
    assert len(names) == 12 and "hopper_mask.png" in names
    assert len(list((out / "contact-sheet").glob("*/sheet.png"))) == 4


def test_spec_storage_endpoint_and_named_secret_are_used_without_environment(
        tmp_path: Path, s3_endpoint: str) -> None:
    secrets = tmp_path / "secrets" / "lab-s3"
    secrets.mkdir(parents=True)
    (secrets / "AWS_ACCESS_KEY_ID").write_text("test")
    (secrets / "AWS_SECRET_ACCESS_KEY").write_text("test-secret")
    uri = f"s3://{BUCKET}/spec-storage-{tmp_path.name}"
    doc = job("specstore", uri, inputs(tmp_path, 3), extra_stage=False,
              storage={"endpoint": s3_endpoint, "addressingStyle": "path", "secretRef": {"name": "lab-s3"}})
    no_env = {k: "" for k in ("GENFAB_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                              "AWS_ENDPOINT_URL_S3")}
    result = genfab_run(tmp_path, doc, "--secrets", str(tmp_path / "secrets"), env=no_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not reachable" not in result.stdout and not (tmp_path / "genfab-runs" / "specstore").exists()
    run = open_storage(uri, S3Settings(endpoint=s3_endpoint, addressing_style="path", access_key_id="test",
                                       secret_access_key="test-secret"))
    assert stages(run)["segment"]["samples"]["succeeded"] == 3
    assert markers(run, "data/stage_1") == 3
