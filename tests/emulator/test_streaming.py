"""Streaming between stages in a cluster: a stage whose shards line up with its upstream's starts once the
upstream committed a first shard, as a worker Job whose Pods take a shard only after the operator marked
its input committed, and whose parallelism the operator raises as the upstream commits more. An upstream
that fails stops it (what it committed stays) unless `continueOnError`. Its workers that wait for input
past their bound are released, and started again for new input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genfab.inventory import read_report
from genfab.storage import open_storage
from tests.emulator.harness import Emulator, OperatorProcess, own_cluster
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import counts, jobs, stage, wait_phase, wait_status

pytestmark = pytest.mark.emulator
STAGES = ["segment", "albedo", "degrade"]


def streaming_job(tmp: Path, name: str, samples: int, **spec: Any) -> dict[str, Any]:
    """A relighting DatasetJob's first three stages over `samples` inputs, two a shard (every stage the
    same shard size: each streams from the one before)."""
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(samples):
        (inputs / f"p{i:03d}.png").write_bytes(b"png")
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob",
            "metadata": {"name": name, "namespace": f"lab-{name}"},
            "spec": {"type": "relighting", "output": f"file://{tmp}/out", "shardSize": 2, "onlyStages": STAGES,
                     "relighting": {"input": {"uri": f"file://{inputs}"}, "segmentation": {"backends": ["classical"]},
                                    "degradation": {"softShading": {"normals": "classical"}}}, **spec}}


def stage_job(emu: Emulator, doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((j for j in jobs(emu, doc) if j["metadata"]["labels"]["genfab.dev/stage"] == name), None)


def env_of(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_next_stages_start_while_the_first_runs_and_take_each_shard_as_it_is_committed(
        emu: Emulator, tmp_path: Path) -> None:
    """segment's last shard is held: albedo and degrade start, run every shard segment committed, and wait
    for the last one; released, every stage ends with every sample, shard i of each holding the samples
    shard i of segment committed."""
    emu.kubelet.script = lambda stage_, index, attempt: Behaviour(seconds=0.05, hold=(stage_, index) == ("segment", 5))
    doc = streaming_job(tmp_path, "flow", samples=12, parallelism=2)
    emu.apply(doc)
    st = wait_status(emu, doc, "degrade ran what segment committed", lambda s: any(
        x["name"] == "degrade" and x["samples"]["succeeded"] >= 10 for x in s.get("stages", [])))
    assert stage(st, "segment")["phase"] == "Running"  # its last shard is held
    for name, upstream in (("albedo", "segment"), ("degrade", "albedo")):
        job = stage_job(emu, doc, name)
        assert job is not None
        assert job["metadata"]["annotations"]["genfab.dev/streams-from"] == upstream
        assert env_of(job)["GENFAB_WORKERS"] == "2" and env_of(job)["GENFAB_SHARD_COUNT"] == "6"
        assert job["spec"]["completions"] == 2
    run = open_storage(f"file://{tmp_path}/out")

    def mark(name: str) -> int:
        key = f"_genfab/work/{name}/{stage_hash(st, name)[:10]}/input.json"
        return int(json.loads(run.read_bytes(key))["ready"]) if run.exists(key) else -1
    # the operator's mark follows what it read of segment's workers (every progressSeconds): it reaches 5,
    # and never 6, while segment's shard 5 is held
    emu.wait("albedo's input marked up to segment's held shard", lambda: mark("albedo") == 5)
    time.sleep(1.0)
    assert mark("albedo") == 5
    emu.kubelet.release("segment", 5)
    st = wait_phase(emu, doc, "Succeeded", "Failed")
    assert st["phase"] == "Succeeded", st
    for name in STAGES:
        assert counts(st, name)[:4] == ("Succeeded", 12, 12, 0)
    for index in range(6):
        made = [sorted(read_report(run, name, stage_hash(st, name), index, 6).succeeded)  # type: ignore[union-attr]
                for name in STAGES]
        assert made[0] == made[1] == made[2] and len(made[0]) == 2


def stage_hash(st: dict[str, Any], name: str) -> str:
    return str(stage(st, name)["configHash"])


@pytest.mark.parametrize("continue_on_error", [False, True])
def test_an_upstream_that_fails_after_the_next_stage_began_stops_it_unless_continue_on_error(
        emu: Emulator, tmp_path: Path, continue_on_error: bool) -> None:
    """segment's last shard fails a sample after albedo began: without `continueOnError` segment Failed,
    and albedo's Job is deleted, the stage stopped with what it committed kept (as a stage a failed
    upstream blocks, Pending); with it segment PartiallySucceeded, and albedo and degrade run every sample
    segment committed."""
    def script(stage_: str, index: int, attempt: int) -> Behaviour:
        if (stage_, index) == ("segment", 4):
            return Behaviour(seconds=0.5, fail_samples=1)
        return Behaviour(seconds=0.05 if stage_ == "segment" else 0.02)

    emu.kubelet.script = script
    doc = streaming_job(tmp_path, f"fails-{int(continue_on_error)}", samples=10, parallelism=2,
                        continueOnError=continue_on_error)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Succeeded", "PartiallySucceeded", "Failed")
    albedo = stage(st, "albedo")
    if continue_on_error:
        assert st["phase"] == "PartiallySucceeded", st
        assert counts(st, "segment")[:4] == ("PartiallySucceeded", 10, 9, 1)
        for name in ("albedo", "degrade"):
            assert counts(st, name)[:4] == ("Succeeded", 9, 9, 0), st
    else:
        assert st["phase"] == "Failed" and stage(st, "segment")["phase"] == "Failed", st
        assert albedo["phase"] == "Pending" and albedo["message"] == "stopped: an upstream stage failed", albedo
        # segment's first four shards, run before it failed; and the good sample of its last shard when an
        # albedo worker took that shard (a succeeded report, one sample dropped) before the operator saw
        # segment fail: a sample flows on once committed, and what albedo committed stays
        assert albedo["samples"]["succeeded"] in (8, 9), albedo
        assert stage_job(emu, doc, "albedo") is None


def test_a_streaming_run_suspended_and_resumed_ends_with_every_sample(emu: Emulator, tmp_path: Path) -> None:
    """Suspended while albedo streams (segment's last shards held): every Job suspended, no Pod left;
    resumed, each stage goes on from its cursor and ends with every sample, none made twice."""
    emu.kubelet.script = lambda stage_, index, attempt: Behaviour(seconds=0.05,
                                                                  hold=stage_ == "segment" and index >= 3)
    doc = streaming_job(tmp_path, "pause", samples=10, parallelism=2, retries=0)
    emu.apply(doc)
    ns = doc["metadata"]["namespace"]
    emu.wait("albedo streaming", lambda: stage_job(emu, doc, "albedo") is not None)
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": True}})
    emu.wait("every Job suspended, no Pod", lambda: not emu.objects("pods", ns) and all(
        j["spec"]["suspend"] for j in jobs(emu, doc) if j["metadata"]["labels"]["genfab.dev/stage"] in STAGES))
    emu.kubelet.release("segment")
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": False}})
    st = wait_status(emu, doc, "resumed and done", lambda s: s.get("phase") in ("Succeeded", "Failed")
                     and s.get("observedGeneration") == 3)
    assert st["phase"] == "Succeeded", st
    for name in STAGES:
        assert counts(st, name)[:4] == ("Succeeded", 10, 10, 0)


def test_a_spec_change_mid_stream_runs_the_changed_stages_on_their_own_cursor_and_marks(
        emu: Emulator, tmp_path: Path) -> None:
    """degrade's settings change while it streams: its old Job goes, the new config's Job streams from
    albedo with a cursor and input marks of its own (the old config's stay apart), and ends with every
    sample."""
    emu.kubelet.script = lambda stage_, index, attempt: Behaviour(seconds=0.05,
                                                                  hold=stage_ == "segment" and index >= 3)
    doc = streaming_job(tmp_path, "change", samples=10, parallelism=2)
    emu.apply(doc)
    work = tmp_path / "out" / "_genfab" / "work" / "degrade"
    emu.wait("degrade streaming", lambda: work.exists() and any(work.iterdir()))
    old = {p.name for p in work.iterdir()}
    relit = {**doc["spec"]["relighting"], "degradation": {**doc["spec"]["relighting"]["degradation"],
                                                          "weights": {"softShading": 1.0, "specular": 0.5}}}
    emu.apply({**doc, "spec": {**doc["spec"], "relighting": relit}})
    emu.wait("the new degrade streaming", lambda: len({p.name for p in work.iterdir()} - old) == 1)
    emu.kubelet.release("segment")
    st = wait_status(emu, doc, "generation 2 done", lambda s: s.get("observedGeneration") == 2
                     and s.get("phase") in ("Succeeded", "Failed"))
    assert st["phase"] == "Succeeded", st
    assert counts(st, "degrade")[:4] == ("Succeeded", 10, 10, 0)
    (new,) = {p.name for p in work.iterdir()} - old
    assert stage_hash(st, "degrade").startswith(new)
    assert '"next": 5' in (work / new / "cursor.json").read_text()


def test_a_streaming_worker_killed_mid_shard_runs_it_again_and_a_poisoned_sample_is_dropped_alone(
        emu: Emulator, tmp_path: Path) -> None:
    """albedo's worker crashes in shard 2 on its first try (its Pod is started again and runs the shard
    once more); degrade's shard 1 drops one sample: every other sample goes through every stage once."""
    def script(stage_: str, index: int, attempt: int) -> Behaviour:
        if (stage_, index, attempt) == ("albedo", 2, 0):
            return Behaviour(outcome="crash", seconds=0.05)
        if (stage_, index) == ("degrade", 1):
            return Behaviour(seconds=0.05, fail_samples=1)
        return Behaviour(seconds=0.05)

    emu.kubelet.script = script
    doc = streaming_job(tmp_path, "crash", samples=10, parallelism=2, retries=1, continueOnError=True)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Succeeded", "PartiallySucceeded", "Failed")
    assert counts(st, "segment")[:4] == ("Succeeded", 10, 10, 0)
    assert counts(st, "albedo")[:4] == ("Succeeded", 10, 10, 0), st
    assert counts(st, "degrade")[:4] == ("PartiallySucceeded", 10, 9, 1), st
    run = open_storage(f"file://{tmp_path}/out")
    made = [i for index in range(5)
            for i in read_report(run, "albedo", stage_hash(st, "albedo"), index, 5).succeeded]  # type: ignore[union-attr]
    assert sorted(made) == sorted(set(made)) and len(made) == 10  # none lost, none made twice


@pytest.fixture(scope="module")
def releasing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, OperatorProcess]]:
    """An operator whose streaming workers keep their GPU at most half a second while they wait."""
    with own_cluster(tmp_path_factory.mktemp("operator"), GENFAB_IDLE_RELEASE_SECONDS="0.5") as running:
        yield running


def test_workers_that_wait_past_their_bound_are_released_and_started_again_for_new_input(
        releasing: tuple[Emulator, OperatorProcess], tmp_path: Path) -> None:
    """segment's shard 3 is held: albedo and degrade run what segment committed before it (a stage takes
    its shards in order), then every one of their workers waits. Past the bound the operator lowers their
    Jobs' parallelism, and the Job controller stops the waiting (not Ready) workers, counting none of them
    failed; no stall is said. Released, the shard's input starts workers again, and every stage ends with
    every sample once."""
    emu, _ = releasing
    emu.kubelet.script = lambda stage_, index, attempt: Behaviour(seconds=0.05, hold=(stage_, index) == ("segment", 3))
    doc = streaming_job(tmp_path, "release", samples=12, parallelism=3)
    emu.apply(doc)

    def parallelism(name: str) -> int | None:
        job = stage_job(emu, doc, name)
        return None if job is None else int(job["spec"]["parallelism"])
    emu.wait("albedo's and degrade's waiting workers released", lambda: parallelism("albedo") == 0
             and parallelism("degrade") == 0, timeout=60)
    for name in ("albedo", "degrade"):
        job = stage_job(emu, doc, name)
        assert job is not None and not (job.get("status") or {}).get("failed"), job.get("status")
    st = wait_status(emu, doc, "the three shards before the held one", lambda s: counts(s, "degrade")[2] == 6)
    assert stage(st, "albedo")["phase"] == "Running" and st.get("conditions") and not any(
        c["type"] == "Stalled" and c["status"] == "True" for c in st["conditions"]), st  # waiting is not stuck
    emu.kubelet.release("segment", 3)
    st = wait_phase(emu, doc, "Succeeded", "Failed")
    assert st["phase"] == "Succeeded", st
    run = open_storage(f"file://{tmp_path}/out")
    for name in STAGES:
        assert counts(st, name)[:4] == ("Succeeded", 12, 12, 0)
        made = [read_report(run, name, stage_hash(st, name), i, 6) for i in range(6)]
        assert [len(r.succeeded) for r in made if r is not None] == [2] * 6  # each shard once, whole
