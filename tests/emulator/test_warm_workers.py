"""Warm worker Jobs in a cluster: a stage of more shards than its `parallelism` runs as that many worker
Pods (the Job's indexes are the workers'), each taking shard after shard from the stage's cursor with the
real runtime's `ClaimFeed`; the operator counts the shards from the workers' records, not the Job's
indexes. A crash costs its shard one try (the worker's Pod is started again and runs it again), bad input
fails that shard alone while its worker goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import counts, jobs, stage, wait_phase, wait_status

pytestmark = pytest.mark.emulator
STAGES = ("scaffold", "expansion", "gaussians")


def stage_job(emu: Emulator, doc: dict[str, object], name: str) -> dict[str, object]:
    return next(j for j in jobs(emu, doc) if j["metadata"]["labels"]["genfab.dev/stage"] == name)


def env_of(job: dict[str, object]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_a_stage_of_more_shards_than_its_parallelism_runs_as_workers_that_take_every_shard(
        emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc = make_scenejob(tmp_path, samples=7, shard_size=1, parallelism=2)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Succeeded", "Failed")
    assert st["phase"] == "Succeeded", st
    for name in STAGES:
        assert counts(st, name)[:5] == ("Succeeded", 7, 7, 0, 7)
        assert stage(st, name)["shards"]["total"] == 7
        job = stage_job(emu, doc, name)
        assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (2, 2)  # type: ignore[index]
        assert job["metadata"]["annotations"]["genfab.dev/shards"] == "7"  # type: ignore[index]
        assert env_of(job)["GENFAB_WORKERS"] == "2" and env_of(job)["GENFAB_SHARD_COUNT"] == "7"


def test_a_crash_costs_its_shard_one_try_and_bad_input_fails_that_shard_alone(
        emu: Emulator, tmp_path: Path) -> None:
    def script(stage: str, index: int, attempt: int) -> Behaviour:
        if (stage, index, attempt) == ("scaffold", 3, 0):
            return Behaviour(outcome="crash", seconds=0.05)
        if (stage, index) == ("scaffold", 1):
            return Behaviour(outcome="bad-input", seconds=0.05)
        return Behaviour(seconds=0.05)

    emu.kubelet.script = script
    doc = make_scenejob(tmp_path, samples=6, shard_size=1, parallelism=2, retries=1)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Succeeded", "Failed")
    scaffold = stage(st, "scaffold")
    assert (scaffold["phase"], scaffold["shards"]["succeeded"], scaffold["shards"]["failed"]) == ("Failed", 5, 1)
    assert scaffold["samples"]["succeeded"] == 5  # every other shard ran: its worker went on
    assert scaffold["reason"] == "FailedIndexes"
    assert scaffold["message"].startswith("shard 1: ") and "(1 of 6 shards of job" in scaffold["message"]
    job = stage_job(emu, doc, "scaffold")
    assert job["status"]["failed"] == 1  # type: ignore[index]  # the crashed worker's Pod, started again
    assert job["status"]["succeeded"] == 2  # type: ignore[index]  # both workers ended when the cursor did
    assert stage(st, "expansion")["phase"] == "Pending"


def test_suspended_and_resumed_workers_go_on_with_their_shards_without_spending_a_try(
        emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05, hold=stage == "scaffold" and index >= 2)
    doc = make_scenejob(tmp_path, samples=6, shard_size=1, parallelism=2, retries=0)
    emu.apply(doc)
    ns = doc["metadata"]["namespace"]
    emu.wait("both workers on a held shard", lambda: len(list((tmp_path / "out" / "_genfab" / "progress" / "scaffold")
                                                              .rglob("shard-*.json"))) >= 4)
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": True}})
    emu.wait("the worker Pods gone", lambda: not emu.objects("pods", ns))
    emu.kubelet.release("scaffold")
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": False}})
    st = wait_status(emu, doc, "resumed and done", lambda st: st.get("phase") in ("Succeeded", "Failed"))
    # retries 0: had the suspension counted as a try, the held shards would have been given up
    assert st["phase"] == "Succeeded" and counts(st, "scaffold")[:5] == ("Succeeded", 6, 6, 0, 6)


def test_a_spec_change_mid_run_starts_new_workers_on_a_cursor_of_the_new_config(
        emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05, hold=stage == "gaussians" and index >= 1)
    doc = make_scenejob(tmp_path, samples=4, shard_size=1, parallelism=2)
    emu.apply(doc)
    work = tmp_path / "out" / "_genfab" / "work" / "gaussians"
    emu.wait("gaussians' workers running", lambda: work.exists() and any(work.iterdir()))
    old = {p.name for p in work.iterdir()}
    emu.apply({**doc, "spec": {**doc["spec"], "gaussians": {"steps": 7000}}})
    emu.kubelet.release("gaussians")
    st = wait_status(emu, doc, "generation 2 done", lambda st: st.get("observedGeneration") == 2
                     and st["phase"] in ("Succeeded", "Failed"))
    assert st["phase"] == "Succeeded" and counts(st, "gaussians")[:5] == ("Succeeded", 4, 4, 0, 4)
    new = {p.name for p in work.iterdir()} - old
    assert len(new) == 1  # the new config's cursor and records, apart from the old one's
    cursor = (work / new.pop() / "cursor.json").read_text()
    assert '"next": 4' in cursor  # every shard of the new config taken from its own cursor
