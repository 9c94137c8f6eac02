"""The operator is killed (SIGKILL) mid-run and restarted: no duplicate Jobs, status continues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import make_scenejob
from tests.emulator.harness import Emulator, OperatorProcess
from tests.emulator.kubelet import Behaviour
from tests.emulator.reading import counts, wait_phase, wait_status

pytestmark = pytest.mark.emulator


def held_run(emu: Emulator, tmp_path: Path, ns: str, samples: int = 4) -> tuple[OperatorProcess, dict[str, Any]]:
    """An operator of namespace `ns` alone, and a SceneJob of `samples` there whose shards hold until
    released (not applied yet)."""
    emu.kubelet.released.clear()
    emu.kubelet.script = lambda stage, index, attempt: Behaviour(hold=True)
    op = OperatorProcess(emu, tmp_path, GENFAB_RESYNC_SECONDS="1").start("-n", ns)
    doc = make_scenejob(tmp_path, samples=samples)
    doc["metadata"]["namespace"] = ns
    return op, doc


def test_killed_operator_restarts_without_duplicate_jobs(emulator: Emulator, tmp_path: Path) -> None:
    emu = emulator
    op, doc = held_run(emu, tmp_path, "restart-ns")
    created: list[str] = []

    def record(type_: str, res: tuple[str, str, str], obj: dict[str, object]) -> None:
        meta: dict[str, str] = obj["metadata"]  # type: ignore[assignment]
        if type_ == "ADDED" and res[2] == "jobs" and meta["namespace"] == "restart-ns":
            created.append(meta["name"])
    emu.cluster.hooks.append(record)
    emu.apply(doc)
    try:
        wait_status(emu, doc, "scaffold running", lambda st: counts(st, "scaffold")[0] == "Running")
        op.kill()
        emu.kubelet.release("scaffold", 0)  # progress while no operator runs
        op = OperatorProcess(emu, tmp_path, GENFAB_RESYNC_SECONDS="1").start("-n", "restart-ns")
        wait_status(emu, doc, "shard 0 seen after restart", lambda st: counts(st, "scaffold")[4] == 1)
        op.kill()
        emu.kubelet.release("scaffold")
        emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
        op = OperatorProcess(emu, tmp_path, GENFAB_RESYNC_SECONDS="1").start("-n", "restart-ns")
        st = wait_phase(emu, doc, "Succeeded", timeout=60)
        assert [counts(st, s)[:4] for s in ("scaffold", "expansion", "gaussians")] == [("Succeeded", 4, 4, 0)] * 3
        jobs = emu.objects("jobs", "restart-ns")
        assert len(jobs) == 3
        assert len(created) == len(set(created)) == 3  # every stage Job created exactly once
    finally:
        op.stop()
        emu.cluster.hooks.remove(record)


def test_an_upgraded_operator_keeps_the_jobs_an_older_one_made(emulator: Emulator, tmp_path: Path) -> None:
    """Operators before `status.children` recorded stage Jobs by name only, and built them a little
    differently: after the upgrade (stopped, status without children, a Job older than this builder), the
    running Job is kept and adopted, not refused as NameTaken nor made again."""
    from tests.emulator.cluster import res_for

    emu = emulator
    op, doc = held_run(emu, tmp_path, "upgrade-ns", samples=2)
    emu.apply(doc)
    try:
        wait_status(emu, doc, "scaffold running", lambda st: counts(st, "scaffold")[0] == "Running")
        op.kill()
        job = emu.objects("jobs", "upgrade-ns")[0]
        key = (res_for("jobs"), "upgrade-ns", job["metadata"]["name"])
        scene = (res_for("scenejobs"), "upgrade-ns", doc["metadata"]["name"])
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]

        def as_older_operator() -> None:
            template = {"spec": {"containers": [{**job["spec"]["template"]["spec"]["containers"][0],
                                                 "env": [*env, {"name": "GENFAB_OLD", "value": "1"}]}]}}
            emu.cluster.patch(key, {"spec": {"template": template}})
            emu.cluster.patch(scene, {"status": {"children": None}}, "status")
        emu.call(as_older_operator)
        emu.kubelet.release("scaffold")
        emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
        op = OperatorProcess(emu, tmp_path, GENFAB_RESYNC_SECONDS="1").start("-n", "upgrade-ns")
        st = wait_phase(emu, doc, "Succeeded", timeout=60)
        kept = next(j for j in emu.objects("jobs", "upgrade-ns") if j["metadata"]["name"] == job["metadata"]["name"])
        assert kept["metadata"]["uid"] == job["metadata"]["uid"]
        assert any(c["uid"] == job["metadata"]["uid"] for c in st["children"])
    finally:
        op.stop()


def test_a_job_whose_status_was_never_written_keeps_its_reports_after_a_restart(emulator: Emulator,
                                                                                 tmp_path: Path) -> None:
    """Killed after it created a stage's Job and before the status write that records it (here: the
    status wiped while no operator runs, which is what that restart finds), the operator comes back to a
    Job whose Pods wrote their reports meanwhile. It adopts the Job and keeps them: it used to clear them,
    its first GET skipped for a resource whose status named no Job, and the stage counted shards that had
    committed samples as having none."""
    from tests.emulator.cluster import res_for

    emu = emulator
    op, doc = held_run(emu, tmp_path, "unrecorded-ns")
    emu.apply(doc)
    try:
        wait_status(emu, doc, "scaffold running", lambda st: counts(st, "scaffold")[0] == "Running")
        op.kill()
        emu.kubelet.release("scaffold")  # every shard commits and reports while no operator runs
        scene = (res_for("scenejobs"), "unrecorded-ns", doc["metadata"]["name"])
        emu.call(lambda: emu.cluster.patch(scene, {"status": None}, "status"))
        emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
        op = OperatorProcess(emu, tmp_path, GENFAB_RESYNC_SECONDS="1").start("-n", "unrecorded-ns")
        st = wait_phase(emu, doc, "Succeeded", timeout=60)
        assert [counts(st, s)[:4] for s in ("scaffold", "expansion", "gaussians")] == [("Succeeded", 4, 4, 0)] * 3
    finally:
        op.stop()


def test_a_streaming_stage_cut_off_between_its_configmap_and_its_job_is_adopted_after_a_restart(
        emulator: Emulator, tmp_path: Path) -> None:
    """Killed after it made a streaming stage's ConfigMap (its upstream still running) and before that
    stage's Job (here: the API server refuses the Job's create until then), then restarted once the
    upstream has ended: the operator makes the same ConfigMap and adopts it, and the run succeeds. It
    used to start the stage as after any ended upstream (listed, no stream section), so the ConfigMap it
    had made was not what it would make now and was refused as not genfab's: the resource Failed with
    NameTaken (found by a burst of 50 SceneJobs with the operator killed three times, 1 of 150)."""
    emu, ns = emulator, "streamstart-ns"
    op, doc = held_run(emu, tmp_path, ns)
    emu.apply(doc)
    refusal = ("POST jobs", ns)
    try:
        wait_status(emu, doc, "scaffold running", lambda st: counts(st, "scaffold")[0] == "Running")
        emu.cluster.refusals[refusal] = (500, "InternalError", "injected: the Job's create is cut off")
        emu.kubelet.release("scaffold", 0)  # a first upstream shard ends: expansion may start streaming
        emu.wait("expansion's ConfigMap, and no Job", lambda: any(
            "expansion" in c["metadata"]["name"] for c in emu.objects("configmaps", ns)) and not any(
            "expansion" in j["metadata"]["name"] for j in emu.objects("jobs", ns)), timeout=30)
        op.kill()
        del emu.cluster.refusals[refusal]
        emu.kubelet.release("scaffold")  # the upstream ends while no operator runs
        emu.kubelet.script = lambda stage, index, attempt: Behaviour(seconds=0.05)
        op = OperatorProcess(emu, tmp_path, GENFAB_RESYNC_SECONDS="1").start("-n", ns)
        st = wait_phase(emu, doc, "Succeeded", timeout=60)
        assert [counts(st, s)[:4] for s in ("scaffold", "expansion", "gaussians")] == [("Succeeded", 4, 4, 0)] * 3
    finally:
        emu.cluster.refusals.pop(refusal, None)
        op.stop()
