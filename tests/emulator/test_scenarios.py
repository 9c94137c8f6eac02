"""Operator scenarios end to end: real kopf operator process, emulated API server, fake kubelet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import OWN_METHODS, make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import condition, counts, jobs, stage, wait_phase, wait_status

pytestmark = pytest.mark.emulator
STAGES = ("scaffold", "expansion", "gaussians")


def test_three_stage_scenejob_reports_exact_counts_at_every_step(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    doc = make_scenejob(tmp_path, samples=5, shard_size=2)  # 5 samples -> 3 balanced shards of 1, 2, 2
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    emu.apply(doc)
    for i, current in enumerate(STAGES):
        st = wait_status(emu, doc, f"{current} running with 3 active shards",
                         lambda st, c=current: counts(st, c) == ("Running", 5, 0, 0, 0, 3))
        assert st["phase"] == "Running" and st["currentStage"] == current and st["progress"] == "0/5"
        assert condition(st, "Running")["status"] == "True" and condition(st, "Accepted")["status"] == "True"
        for later in STAGES[i + 1:]:
            assert stage(st, later)["phase"] == "Waiting"
        emu.kubelet.release(current, 0)
        st = wait_status(emu, doc, f"{current} shard 0 done", lambda st, c=current: counts(st, c) ==
                         ("Running", 5, 1, 0, 1, 2))
        assert st["progress"] == "1/5"
        emu.kubelet.release(current)
        st = wait_status(emu, doc, f"{current} done", lambda st, c=current: counts(st, c)[:5] ==
                         ("Succeeded", 5, 5, 0, 3))
    st = wait_phase(emu, doc, "Succeeded")
    assert [counts(st, s) for s in STAGES] == [("Succeeded", 5, 5, 0, 3, 0)] * 3
    assert st["progress"] == "5/5" and st["observedGeneration"] == 1
    assert condition(st, "Succeeded")["status"] == "True" and condition(st, "Stalled")["status"] == "False"
    created = jobs(emu, doc)
    assert sorted(j["metadata"]["labels"]["genfab.dev/stage"] for j in created) == sorted(STAGES)
    job = created[0]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    assert job["metadata"]["ownerReferences"][0]["name"] == name
    emu.wait("events", lambda: {"StageRunning", "StageSucceeded", "Running", "Succeeded"} <= {
        e["reason"] for e in emu.objects("events", ns)})  # posted asynchronously


def test_a_custom_stage_is_named_in_the_status_of_the_stage_it_makes(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.1)
    doc = make_scenejob(tmp_path, samples=2, customStages=[
        {"name": "scaffold", "image": "lab/seva-fork:1", "command": ["python", "-m", "seva_stage"]},
        {"name": "package", "image": "lab/tool:2", "after": ["gaussians"]}])
    emu.apply(doc)
    st = wait_phase(emu, doc, "Succeeded")
    assert stage(st, "scaffold")["custom"] == {"image": "lab/seva-fork:1", "replaces": True}
    assert stage(st, "package")["custom"] == {"image": "lab/tool:2", "replaces": False}
    assert "custom" not in stage(st, "expansion") and "custom" not in stage(st, "gaussians")
    images = {j["metadata"]["labels"]["genfab.dev/stage"]: j["spec"]["template"]["spec"]["containers"][0]["image"]
              for j in jobs(emu, doc)}
    assert (images["scaffold"], images["package"]) == ("lab/seva-fork:1", "lab/tool:2")


def test_failing_index_is_retried_then_succeeds(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(
        outcome="crash" if (stage, index, attempt) == ("scaffold", 1, 0) else "succeed", seconds=0.1)
    doc = make_scenejob(tmp_path, samples=4, retries=2)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Succeeded", "Failed")
    assert st["phase"] == "Succeeded"
    assert counts(st, "scaffold")[:5] == ("Succeeded", 4, 4, 0, 2)
    scaffold = next(j for j in jobs(emu, doc) if j["metadata"]["labels"]["genfab.dev/stage"] == "scaffold")
    assert scaffold["status"]["failed"] == 1 and scaffold["spec"]["backoffLimitPerIndex"] == 2


def test_bad_input_exit_fails_the_index_at_once_and_blocks_downstream(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(
        outcome="bad-input" if stage == "scaffold" and index == 0 else "succeed", seconds=0.1)
    doc = make_scenejob(tmp_path, samples=4, retries=3)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed")
    scaffold = next(j for j in jobs(emu, doc) if j["metadata"]["labels"]["genfab.dev/stage"] == "scaffold")
    assert scaffold["status"]["failed"] == 1  # no retries: podFailurePolicy FailIndex on exit 42
    assert stage(st, "scaffold")["phase"] == "Failed" and stage(st, "expansion")["phase"] == "Pending"
    assert condition(st, "Failed")["status"] == "True"
    assert len(jobs(emu, doc)) == 1


def test_continue_on_error_ends_partially_succeeded_and_only_good_samples_flow_on(emu: Emulator,
                                                                                 tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(
        fail_samples=1 if (stage, index) == ("scaffold", 0) else 0, seconds=0.1)
    doc = make_scenejob(tmp_path, samples=5, continueOnError=True)
    emu.apply(doc)
    st = wait_phase(emu, doc, "PartiallySucceeded", "Failed", "Succeeded")
    assert st["phase"] == "PartiallySucceeded"
    assert counts(st, "scaffold")[:4] == ("PartiallySucceeded", 5, 4, 1)
    assert counts(st, "expansion")[:4] == ("Succeeded", 4, 4, 0)
    assert counts(st, "gaussians")[:4] == ("Succeeded", 4, 4, 0)


def test_without_continue_on_error_a_failed_sample_fails_the_resource(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(
        fail_samples=1 if (stage, index) == ("scaffold", 0) else 0, seconds=0.1)
    doc = make_scenejob(tmp_path, samples=3)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed", "Succeeded", "PartiallySucceeded")
    assert st["phase"] == "Failed" and stage(st, "expansion")["phase"] == "Pending"


@pytest.mark.parametrize("outcome, reason", [("image-pull", "ImagePullBackOff"), ("unschedulable", "Unschedulable")])
def test_stalled_pod_reasons(emu: Emulator, tmp_path: Path, outcome: str, reason: str) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(outcome=outcome)
    doc = make_scenejob(tmp_path, samples=2)
    emu.apply(doc)
    st = wait_status(emu, doc, f"Stalled {reason}", lambda st: condition(st, "Stalled").get("reason") == reason)
    assert condition(st, "Stalled")["status"] == "True" and st["phase"] == "Running"
    assert stage(st, "scaffold")["reason"] == reason
    ns = doc["metadata"]["namespace"]
    emu.wait(f"{reason} event", lambda: any(e["reason"] == reason and e["type"] == "Warning"
                                            for e in emu.objects("events", ns)))  # posted asynchronously


def test_stalled_deadline_exceeded_fails_the_stage_and_frees_its_pods(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(outcome="unschedulable")
    doc = make_scenejob(tmp_path, samples=2, startDeadlineSeconds=2)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed", timeout=90)
    assert condition(st, "Stalled")["reason"] == "DeadlineExceeded"
    assert stage(st, "scaffold")["reason"] == "DeadlineExceeded"
    assert "no Pod of job" in stage(st, "scaffold")["message"]
    emu.wait("job deleted", lambda: not jobs(emu, doc))
    st = wait_phase(emu, doc, "Failed")  # the failure outlives its Job: nothing is re-created
    assert not jobs(emu, doc)


def test_a_hung_pod_reaches_no_progress_is_stopped_and_retried_then_fails_the_stage(
        emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)  # running, never a sample
    doc = make_scenejob(tmp_path, samples=1, retries=1, progressDeadlineSeconds=2)
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    first = emu.wait("first pod running", lambda: [p["metadata"]["name"] for p in emu.objects("pods", ns)
                                                   if p["status"].get("phase") == "Running"])[0]
    # Stalled NoProgress lasts from the deadline until the replacement Pod runs: seen as its Event.
    stalled = emu.wait("Stalled NoProgress event", lambda: [e for e in emu.objects("events", ns)
                                                           if e["reason"] == "NoProgress" and e["type"] == "Warning"])
    assert "shard 0 of stage scaffold committed no sample for" in stalled[0]["message"]
    assert "progressDeadlineSeconds 2" in stalled[0]["message"] and first in stalled[0]["message"]
    emu.wait("the hung pod deleted (its GPUs freed)",
             lambda: first not in {p["metadata"]["name"] for p in emu.objects("pods", ns)})
    st = wait_phase(emu, doc, "Failed", timeout=60)  # the retry hangs too: retries=1 is spent
    scaffold = stage(st, "scaffold")
    assert scaffold["reason"] == "NoProgress" and "committed no sample" in scaffold["message"]
    assert not [p for p in emu.objects("pods", ns) if p["status"].get("phase") == "Running"]
    assert emu.kubelet.jobs[jobs(emu, doc)[0]["metadata"]["uid"]].attempts == {0: 2}


@pytest.mark.parametrize(("raw", "at_exit", "says"), [
    (b"{not json", "final", "CorruptReport"),
    (b"[" * 200_000, "final", "CorruptReport"),           # nested far deeper than any parser should go
    (b" " * (17 << 20), "final", "larger than 16 MiB"),   # read no further than the bound
    # the Pod exits 0, the Job names its index completed, but its final report is not there: not a success
    (None, "running", "exited 0 but left a report still marked running"),
    (None, "none", "exited 0 but left no report"),
], ids=["corrupt", "nested", "huge", "never-final", "cleared"])
def test_an_unreadable_shard_report_fails_its_shard_not_the_operator(emu: Emulator, tmp_path: Path, raw: bytes | None,
                                                                     at_exit: str, says: str) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(
        raw_report=raw if (stage, index) == ("scaffold", 1) else None, seconds=0.1,
        at_exit=at_exit if (stage, index) == ("scaffold", 1) else "final")
    doc = make_scenejob(tmp_path, samples=4, shard_size=2, continueOnError=True)
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed", "PartiallySucceeded", timeout=60)
    scaffold = stage(st, "scaffold")
    assert scaffold["reason"] == "CorruptReport" and says in scaffold["message"], scaffold
    assert scaffold["shards"]["failed"] == 1 and scaffold["shards"]["succeeded"] == 1
    assert len(scaffold["message"]) <= 4096
    (tmp_path / "next").mkdir()
    other = make_scenejob(tmp_path / "next", samples=1)  # the operator still serves everyone
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.1)
    emu.apply(other)
    assert wait_phase(emu, other, "Succeeded")["phase"] == "Succeeded"


def test_stalled_pod_deleted_then_recovers(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    emu.kubelet.replacement_delay = 3.0
    doc = make_scenejob(tmp_path, samples=2, retries=3)
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    wait_status(emu, doc, "running", lambda st: stage(st, "scaffold").get("shards", {}).get("ready") == 1)
    pod = emu.objects("pods", ns)[0]
    emu.delete("pods", pod["metadata"]["name"], ns)
    st = wait_status(emu, doc, "Stalled PodDeleted", lambda st: condition(st, "Stalled").get("reason") == "PodDeleted")
    assert pod["metadata"]["name"] in condition(st, "Stalled")["message"]
    wait_status(emu, doc, "recovered", lambda st: condition(st, "Stalled").get("status") == "False", timeout=15)
    emu.kubelet.release("scaffold")
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.1)
    assert wait_phase(emu, doc, "Succeeded")["phase"] == "Succeeded"


def test_stalled_node_lost_then_recovers_without_burning_a_retry(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    doc = make_scenejob(tmp_path, samples=2, retries=0)
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    wait_status(emu, doc, "running", lambda st: stage(st, "scaffold").get("shards", {}).get("ready") == 1)
    pod = emu.objects("pods", ns)[0]["metadata"]["name"]
    emu.call(emu.kubelet.lose_node, pod, ns)
    st = wait_status(emu, doc, "Stalled NodeLost", lambda st: condition(st, "Stalled").get("reason") == "NodeLost")
    assert "unresponsive" in condition(st, "Stalled")["message"]
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.1)
    emu.call(emu.kubelet.evict, pod, ns)
    assert wait_phase(emu, doc, "Succeeded", "Failed")["phase"] == "Succeeded"  # retries=0 and still fine


def test_suspend_and_resume_pass_through_to_the_jobs(emu: Emulator, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, samples=2, suspend=True)
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    st = wait_phase(emu, doc, "Suspended")
    emu.wait("suspended job", lambda: jobs(emu, doc))
    assert all(j["spec"]["suspend"] for j in jobs(emu, doc)) and not emu.objects("pods", ns)
    assert condition(st, "Suspended")["status"] == "True"
    emu.apply({**doc, "spec": {**doc["spec"], "suspend": False}})
    st = wait_phase(emu, doc, "Succeeded")
    assert condition(st, "Suspended")["status"] == "False" and st["observedGeneration"] == 2


def test_spec_change_reruns_only_the_changed_stage_and_downstream(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc = make_scenejob(tmp_path, samples=2)
    emu.apply(doc)
    wait_phase(emu, doc, "Succeeded")
    before = {j["metadata"]["labels"]["genfab.dev/stage"]: j["metadata"]["uid"] for j in jobs(emu, doc)}
    emu.apply({**doc, "spec": {**doc["spec"], "gaussians": {"steps": 7000}}})
    wait_status(emu, doc, "generation 2 done", lambda st: st.get("observedGeneration") == 2
                     and st["phase"] == "Succeeded")
    after = {j["metadata"]["labels"]["genfab.dev/stage"]: j["metadata"]["uid"] for j in jobs(emu, doc)}
    assert after["scaffold"] == before["scaffold"] and after["expansion"] == before["expansion"]
    assert after["gaussians"] != before["gaussians"] and len(after) == 3  # the old gaussians Job is gone
    emu.apply({**doc, "spec": {**doc["spec"], "gaussians": {"steps": 7000},
                               "worldexplorer": {**OWN_METHODS,
                                                 "expansion": {"method": "walk", "numFrames": 60}}}})
    wait_status(emu, doc, "generation 3 done", lambda st: st.get("observedGeneration") == 3
                and st["phase"] == "Succeeded")
    final = {j["metadata"]["labels"]["genfab.dev/stage"]: j["metadata"]["uid"] for j in jobs(emu, doc)}
    assert final["scaffold"] == before["scaffold"]
    assert final["expansion"] != after["expansion"] and final["gaussians"] != after["gaussians"]


def test_deleting_a_resource_removes_children_and_keeps_outputs(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    doc = make_scenejob(tmp_path, samples=2)
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    emu.apply(doc)
    emu.wait("pods", lambda: emu.objects("pods", ns))
    emu.delete("scenejobs", name, ns)
    emu.wait("children gone", lambda: not any(emu.objects(p, ns) for p in ("jobs", "pods", "configmaps")))
    assert list((tmp_path / "out" / "_genfab" / "progress").rglob("shard-*.json"))


def test_recreating_with_the_same_spec_reuses_finished_work(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc = make_scenejob(tmp_path, samples=2)
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    emu.apply(doc)
    first = wait_phase(emu, doc, "Succeeded")
    emu.delete("scenejobs", name, ns)
    emu.wait("children gone", lambda: not emu.objects("jobs", ns))
    emu.apply(doc)
    second = wait_phase(emu, doc, "Succeeded")
    # same config hashes, so the same output prefixes and per-sample markers: stage Pods skip them
    assert [s["configHash"] for s in first["stages"]] == [s["configHash"] for s in second["stages"]]


def test_invalid_spec_gets_invalid_spec_and_no_jobs(emu: Emulator, tmp_path: Path) -> None:
    doc = make_scenejob(tmp_path, samples=2, shardSize=0)
    emu.apply(doc)
    st = wait_status(emu, doc, "InvalidSpec", lambda st: condition(st, "InvalidSpec").get("status") == "True")
    assert "spec.shardSize" in condition(st, "InvalidSpec")["message"]
    assert condition(st, "Accepted")["status"] == "False" and st["phase"] == "Failed"
    assert not jobs(emu, doc)


def test_api_server_errors_are_retried_with_backoff(emu: Emulator, operator: OperatorProcess,
                                                    tmp_path: Path) -> None:
    emu.cluster.faults["POST jobs"] = 3
    doc = make_scenejob(tmp_path, samples=2)
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    emu.apply(doc)
    assert wait_phase(emu, doc, "Succeeded", timeout=40)["phase"] == "Succeeded"
    assert emu.cluster.faults["POST jobs"] == 0
    assert 'genfab_reconcile_errors_total{error="Temporary",kind="SceneJob"}' in operator.metrics()


def test_metrics_are_exported(emu: Emulator, operator: OperatorProcess, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc = make_scenejob(tmp_path, samples=3)
    emu.apply(doc)
    wait_phase(emu, doc, "Succeeded")
    text = operator.metrics()
    for name in ("genfab_resources{", "genfab_stage_duration_seconds_bucket", "genfab_samples_total{",
                 "genfab_pending_shards", "genfab_reconcile_errors_total", "genfab_create_to_job_seconds_bucket"):
        assert name in text, name
    assert 'genfab_samples_total{kind="SceneJob",outcome="succeeded",stage="gaussians"}' in text


def test_two_hundred_resources_at_once_all_reach_running(emu: Emulator, tmp_path: Path) -> None:
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    docs = []
    for i in range(200):
        (tmp_path / f"r{i}").mkdir()
        docs.append(make_scenejob(tmp_path / f"r{i}", samples=1))
    for doc in docs:
        emu.apply(doc)

    def all_running() -> bool:
        return all(emu.status(d["kind"], d["metadata"]["name"], d["metadata"]["namespace"]).get("phase") == "Running"
                   for d in docs)
    emu.wait("200 resources Running", all_running, timeout=90, interval=0.5)
    for doc in docs:
        emu.delete("scenejobs", doc["metadata"]["name"], doc["metadata"]["namespace"])


def test_manual_selection_waits_without_pods_and_goes_on_once_final_is_complete(emu: Emulator,
                                                                                 tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    from tests.helpers import ROOT

    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc = make_scenejob(tmp_path, samples=2, shard_size=1,
                        worldexplorer={**OWN_METHODS, "scaffold": {"method": "scaffold_gen", "selection": "manual"}})
    ns = doc["metadata"]["namespace"]
    emu.apply(doc)
    st = wait_status(emu, doc, "AwaitingSelection", lambda st: condition(st, "AwaitingSelection").get("status")
                     == "True")
    message = condition(st, "AwaitingSelection")["message"]
    assert "2 sample(s) await a person's choice: photorealistic/index_0000 (final/001.png, final/003.png, " \
           "final/005.png, final/007.png); photorealistic/index_0001" in message
    assert f"{tmp_path.as_uri()}/out/<sample>/scaffold/candidates/" in message and "genfab select" in message
    assert stage(st, "scaffold")["phase"] == "Succeeded" and stage(st, "expansion")["phase"] == "Waiting"
    assert stage(st, "expansion")["reason"] == "AwaitingSelection"
    assert st["phase"] == "AwaitingSelection"  # a phase of its own, as the local run's
    assert [j["metadata"]["labels"]["genfab.dev/stage"] for j in jobs(emu, doc)] == ["scaffold"]
    # No Pod is held while a person chooses: the scaffold's Pods ended, no other exists.
    assert all(p["status"].get("phase") in ("Succeeded", "Failed") for p in emu.objects("pods", ns))

    # The stage wrote the candidates (the fake kubelet only writes reports: put them there), a person
    # chooses one sample with `genfab select` and the other by copying files, as the seed does.
    out = tmp_path / "out"
    for i in range(2):
        folder = out / f"photorealistic/index_{i:04d}/scaffold"
        (folder / "candidates").mkdir(parents=True)
        (folder / "final").mkdir()
        for gap in ("001", "003", "005", "007"):
            for k in range(2):
                (folder / "candidates" / f"{gap}_{k:02d}.png").write_bytes(f"{i}-{gap}-{k}".encode())
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", ""))}
    chosen = subprocess.run([sys.executable, "-m", "genfab.cli.main", "select", str(tmp_path / "job.yaml"),
                             *(a for gap in ("001", "003", "005", "007")
                               for a in ("--choose", f"photorealistic/index_0000:{gap}=1"))],
                            capture_output=True, text=True, env=env)  # one call for the four views
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.splitlines()[0] == (
        "photorealistic/index_0000: final/001.png <- candidates/001_01.png; final/003.png <- candidates/003_01.png; "
        "final/005.png <- candidates/005_01.png; final/007.png <- candidates/007_01.png; final/ is complete")
    st = wait_status(emu, doc, "one sample still awaited", lambda st: "1 sample(s) await" in
                     condition(st, "AwaitingSelection")["message"])
    assert "photorealistic/index_0001" in condition(st, "AwaitingSelection")["message"]
    assert [j["metadata"]["labels"]["genfab.dev/stage"] for j in jobs(emu, doc)] == ["scaffold"]
    folder = out / "photorealistic/index_0001/scaffold"
    for gap in ("001", "003", "005", "007"):
        (folder / "final" / f"{gap}.png").write_bytes((folder / "candidates" / f"{gap}_00.png").read_bytes())
    st = wait_phase(emu, doc, "Succeeded")  # the operator noticed by itself: expansion and 3DGS ran
    assert condition(st, "AwaitingSelection")["status"] == "False"
    assert condition(st, "AwaitingSelection")["reason"] == "Chosen"
    assert [counts(st, s)[:3] for s in STAGES] == [("Succeeded", 2, 2)] * 3
    import json

    batch = emu.wait("batch_summary.json", lambda: (out / "batch_summary.json").is_file()
                     and json.loads((out / "batch_summary.json").read_text()))  # written by the operator
    assert batch["phase"] == "Succeeded" and batch["counts"] == {"succeeded": 2, "failed": 0, "incomplete": 0}
    assert [r["sample"] for r in batch["samples"]] == ["photorealistic/index_0000", "photorealistic/index_0001"]


def test_a_rerun_token_reruns_the_named_stages_once(emu: Emulator, tmp_path: Path) -> None:
    """`spec.rerun` through the operator (GitOps' way of saying "do it again"): a new token makes the named
    stages' Jobs again, once; the same token with other changes that decide nothing starts nothing."""
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
    doc = make_scenejob(tmp_path, samples=2)
    emu.apply(doc)
    wait_phase(emu, doc, "Succeeded")

    def uids() -> dict[str, str]:
        return {j["metadata"]["labels"]["genfab.dev/stage"]: j["metadata"]["uid"] for j in jobs(emu, doc)}

    def applied(generation: int, **spec: Any) -> dict[str, Any]:
        emu.apply({**doc, "spec": {**doc["spec"], **spec}})
        return wait_status(emu, doc, f"generation {generation} done",
                           lambda st: st.get("observedGeneration") == generation and st["phase"] == "Succeeded")

    before = uids()
    forced = applied(2, rerun={"token": "2026-11-23", "stages": ["gaussians"]})
    after = uids()
    assert {n: after[n] == before[n] for n in STAGES} == {"scaffold": True, "expansion": True, "gaussians": False}
    assert stage(forced, "gaussians")["configHash"] != stage(forced, "expansion")["configHash"]
    applied(3, rerun={"token": "2026-11-23", "stages": ["gaussians"]}, retries=3)  # same token: nothing new
    assert uids() == after
    applied(4, rerun={"token": "2026-11-24", "stages": ["gaussians"]})
    final = uids()
    assert final["gaussians"] != after["gaussians"] and final["expansion"] == before["expansion"]


def test_the_operator_says_what_made_each_stages_samples_and_writes_the_runs_summary(
        emu: Emulator, tmp_path: Path) -> None:
    """`status.stages[].producedBy` from the shard reports while the run goes, and at the end the
    `_genfab/summary.json` that `status.outputs.summary` points at (`genfab run`'s schema), its dropped
    samples' CSV and `batch_summary.json`'s counts, all written by the operator."""
    import csv
    import json

    made = {0: "seva", 1: "flux-walk (stand-in: no seva.image)", 2: "seva"}
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(
        made_by=made[index] if stage == "expansion" else f"{stage}-backend",
        fail_samples=1 if (stage, index) == ("gaussians", 2) else 0)
    doc = make_scenejob(tmp_path, samples=5, shard_size=2, continueOnError=True)
    emu.apply(doc)
    st = wait_phase(emu, doc, "PartiallySucceeded")
    assert stage(st, "expansion")["producedBy"] == {"seva": 3, "flux-walk (stand-in: no seva.image)": 2}
    assert stage(st, "scaffold")["producedBy"] == {"scaffold-backend": 5}
    assert stage(st, "gaussians")["producedBy"] == {"gaussians-backend": 4}
    out = tmp_path / "out"
    assert st["outputs"]["summary"] == f"file://{out}/_genfab/summary.json"
    summary = emu.wait("summary.json", lambda: (out / "_genfab" / "summary.json").is_file()
                       and json.loads((out / "_genfab" / "summary.json").read_text()))
    assert (summary["executor"], summary["phase"], summary["kind"]) == ("operator", "PartiallySucceeded", "SceneJob")
    rows = {r["name"]: r for r in summary["stages"]}
    assert rows["expansion"]["producedBy"] == {"seva": 3, "flux-walk (stand-in: no seva.image)": 2}
    assert (rows["gaussians"]["succeeded"], rows["gaussians"]["failed"]) == (4, 1)
    assert rows["gaussians"]["dropped"] == {"SampleError": {"count": 1, "examples": ["photorealistic/index_0003"]}}
    assert summary["dropped"] == 1 and summary["statusUri"] is None
    assert all(r["seconds"] is not None for r in summary["stages"])
    dropped = list(csv.DictReader((out / "_genfab" / "dropped_samples.csv").read_text().splitlines()))
    assert [(d["stage"], d["sample_id"], d["reason"]) for d in dropped] == [
        ("gaussians", "photorealistic/index_0003", "SampleError")]
    batch = json.loads((out / "batch_summary.json").read_text())
    assert batch["producedBy"]["expansion"] == {"seva": 3, "flux-walk (stand-in: no seva.image)": 2}


def test_the_labs_methods_without_their_images_are_refused_before_any_job(emu: Emulator, tmp_path: Path) -> None:
    """worldexplorer's unset expansion method means the lab's SEVA (and VGGT on its path): without their
    images the resource is refused in one line naming both fixes, and no Job is made."""
    doc = make_scenejob(tmp_path, samples=1, worldexplorer={"scaffold": {"method": "scaffold_gen"}})
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed")
    message = condition(st, "InvalidSpec")["message"]
    assert message.startswith("stage expansion: worldexplorer.expansion.method unset (the lab's worldexplorer "
                              "script's SEVA) runs SEVA"), message
    assert "set worldexplorer.seva.image" in message and "or set worldexplorer.expansion.method: walk" in message
    assert jobs(emu, doc) == []


def test_a_resource_whose_stages_need_models_without_a_model_location_is_refused_before_any_job(
        emu: Emulator, tmp_path: Path) -> None:
    """Every stage Pod would fail loading its models: the operator refuses the resource in one line
    naming the stages, the models and the fix (as `genfab run` refuses it with exit 2), and makes no Job."""
    doc = make_scenejob(tmp_path, samples=1)
    del doc["spec"]["models"]
    emu.apply(doc)
    st = wait_phase(emu, doc, "Failed")
    message = condition(st, "InvalidSpec")["message"]
    assert message.startswith("stages scaffold, expansion of pipeline worldexplorer load "), message
    assert "black-forest-labs/FLUX.1-Fill-dev" in message and "none is configured: set spec.models.uri" in message
    assert jobs(emu, doc) == []


def test_a_watch_lagging_behind_the_operators_writes_never_starts_a_stage_again(emu: Emulator,
                                                                               tmp_path: Path) -> None:
    """Every watch event comes 0.6 s late, as from a loaded API server: the operator's status write (a new
    stage Job among its children) is answered at once, and the watch then delivers the versions before it.
    Taken back into its cache, one of those made the next reconcile start that stage again, clearing the
    reports its Pods had just written: the stage then "succeeded" with 0 of its samples (seen on CI, two
    operator shards on a loaded machine)."""
    emu.kubelet.script = lambda stage_name, index, attempt: Behaviour(seconds=0.05)
    emu.cluster.watch_lag = 0.6
    try:
        doc = make_scenejob(tmp_path, samples=2, shard_size=1)
        emu.apply(doc)
        st = wait_phase(emu, doc, "Succeeded", "Failed", timeout=60)
    finally:
        emu.cluster.watch_lag = 0.0
    assert st["phase"] == "Succeeded", st
    assert [(s["name"], s["samples"]["succeeded"]) for s in st["stages"]] == [
        ("scaffold", 2), ("expansion", 2), ("gaussians", 2)]
